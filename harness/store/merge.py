"""``harness merge``: join the shard runs of one suite into one run directory.

Shards are joined only when they ran the same suite file over the same corpus with the same fleet, tiers and shard
count; otherwise the merge is refused and the message names each field that differs. A case × variant found in two
shards is refused as a duplicate. The shards' logs beside the records join too: human labels (``labels.jsonl``),
second judges' grades and claim diagnostics (``claims.jsonl``).
Missing cases (a shard not given, or a shard that did not finish) are listed, and
the merged run is then ``partial``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.store.claims_log import ClaimsEntry, append_claims, read_claims
from harness.store.grade_log import GradeEntry, append_grades, read_second_judges
from harness.store.labels import append_labels, read_labels
from harness.store.records import CaseRecord, Manifest, ShardInfo
from harness.store.store import RunStore

MUST_MATCH: tuple[tuple[str, str], ...] = (
    ("suite name", "suite.name"),
    ("suite file (sha256)", "suite.sha256"),
    ("corpus (fingerprint)", "corpus.fingerprint"),
    ("fleet", "fleet"),
    ("tiers", "tiers"),
    ("shard count", "shard.count"),
)


@dataclass
class MergeReport:
    run_dir: Path
    shards: list[str]
    records: int
    expected: int
    missing: list[str] = field(default_factory=list)  # "case|variant" or "shard i/n"
    status: str = "complete"


def _field(manifest: Manifest, dotted: str) -> Any:
    value: Any = manifest.model_dump(mode="json")
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_compatible(manifests: dict[str, Manifest]) -> None:
    """Refuse shards of different suites, corpora or configurations, naming every field that differs."""
    not_shards = [run for run, m in manifests.items() if m.shard is None or m.shard.index is None]
    if not_shards:
        raise InputError(f"not shard runs: {', '.join(not_shards)}",
                         hint="merge runs made with `harness run SUITE --shard i/n`")
    first_id, first = next(iter(manifests.items()))
    problems = []
    for label, dotted in MUST_MATCH:
        expected = _field(first, dotted)
        others = [run for run, m in manifests.items() if _field(m, dotted) != expected]
        if others:
            problems.append(f"{label} differs: {', '.join(others)} vs {first_id}")
    if problems:
        raise InputError("cannot merge these shards: " + "; ".join(problems),
                         hint="merge only shards of one suite file, corpus and fleet, run with the same --shard n")


def merge_runs(run_dirs: list[Path], target: Path) -> MergeReport:
    """Write the merged run to ``target`` (which must not exist yet) and report what is missing."""
    if not run_dirs:
        raise InputError("no run directories to merge", hint="pass the shard runs, e.g. reports/nightly/shard-*")
    # A list, not a dict by path: the same shard given twice must show up as duplicates, not vanish.
    stores = [(str(path), RunStore.open(path)) for path in run_dirs]
    manifests = {path: store.manifest() for path, store in stores}
    check_compatible(manifests)
    seen: dict[tuple[str, str], str] = {}
    duplicates: list[str] = []
    merged: list[CaseRecord] = []
    for path, store in stores:
        for record in store.records():
            if record.key in seen:
                duplicates.append(f"{record.case_id}|{record.variant} ({seen[record.key]} and {path})")
                continue
            seen[record.key] = path
            merged.append(record)
    if duplicates:
        shown = "; ".join(duplicates[:10]) + (f"; … {len(duplicates) - 10} more" if len(duplicates) > 10 else "")
        raise InputError(f"{len(duplicates)} case(s) appear in two shards: {shown}",
                         hint="pass each shard once (was one shard given twice, or run twice?)")
    first = next(iter(manifests.values()))
    assert first.shard is not None and first.suite is not None
    count = first.shard.count
    variants = first.suite.variants
    indices = {m.shard.index for m in manifests.values() if m.shard is not None}
    missing = [f"shard {i}/{count}" for i in range(1, count + 1) if i not in indices]
    for manifest in manifests.values():
        assert manifest.shard is not None
        missing += [f"{case}|{variant}" for case in manifest.shard.case_ids for variant in variants
                    if (case, variant) not in seen]
    expected = first.shard.suite_cases * len(variants)
    status = "complete" if not missing and len(merged) == expected else "partial"
    shard_ids = [m.run_id or Path(p).name for p, m in manifests.items()]
    manifest = first.model_copy(
        update={
            "run_id": target.name,
            "status": status,
            "suite": first.suite.model_copy(update={"cases": first.shard.suite_cases}),
            "shard": ShardInfo(index=None, count=count, suite_cases=first.shard.suite_cases, merged_from=shard_ids),
            "records_expected": expected,
            "records_written": len(merged),
            "generation_failures": sum(m.generation_failures or 0 for m in manifests.values()),
            "cloud_spent_usd": _sum_or_none([m.cloud_spent_usd for m in manifests.values()]),
            "started_at": min((m.started_at for m in manifests.values() if m.started_at), default=None),
            "finished_at": max((m.finished_at for m in manifests.values() if m.finished_at), default=None),
        }
    )
    store = RunStore.create(target, manifest)
    for record in sorted(merged, key=lambda r: r.key):
        store.append(record)
    # Each shard's labels are of its own answers, so they join without overlap; append_labels refuses any that do.
    append_labels(target, [label for path, _ in stores for label in read_labels(Path(path))])
    # Claude's grades are on the records written above; the second judges' live only in the grade log, so carry them.
    append_grades(target, [
        GradeEntry(case_id=key[0], variant=key[1], tier=key[2], grade=grade, judge=judge)
        for path, _ in stores for judge, grades in read_second_judges(Path(path)).items()
        for key, grade in grades.items()
    ])
    append_claims(target, [
        ClaimsEntry(case_id=key[0], variant=key[1], tier=key[2], claims=claims)
        for path, _ in stores for key, claims in read_claims(Path(path)).items()
    ])
    return MergeReport(target, shard_ids, len(merged), expected, missing, status)


def _sum_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None
