"""``--shard i/n``: a stable, hash-based subset of a suite's cases, so n machines can share one suite.

A case belongs to shard ``1 + int(sha256(case id)) mod n``. The assignment depends only on the case's id and ``n``:
adding, removing or reordering other cases never moves a case to another shard, and every variant of a case runs in
the same shard, so paired comparisons stay within one run. ``harness merge`` joins the shards into one run.
"""

from __future__ import annotations

import hashlib
import re

from harness.config.suite import Suite
from harness.errors import InputError
from harness.store.records import ShardInfo

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; shards are numbered from 1."""
    match = _SPEC.match(spec)
    if not match:
        raise InputError(f"--shard {spec!r} is not of the form i/n", hint="e.g. --shard 1/4 … --shard 4/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise InputError(f"--shard {spec}: i must be between 1 and n", hint="shards are numbered 1..n, e.g. 1/4")
    return index, count


def shard_of(case_id: str, count: int) -> int:
    return 1 + int.from_bytes(hashlib.sha256(case_id.encode("utf-8")).digest()[:8], "big") % count


def shard_suite(suite: Suite, index: int, count: int) -> tuple[Suite, ShardInfo]:
    """The suite narrowed to shard ``index`` of ``count``, and what the run's manifest records about it."""
    cases = [case for case in suite.cases if shard_of(case.id, count) == index]
    if not cases:
        raise InputError(
            f"shard {index}/{count} of suite {suite.name!r} has no cases ({len(suite.cases)} cases in all)",
            hint="use fewer shards than cases",
        )
    info = ShardInfo(index=index, count=count, suite_cases=len(suite.cases), case_ids=[case.id for case in cases])
    return suite.model_copy(update={"cases": cases}), info


def apply_shard(suite: Suite, spec: str | None) -> tuple[Suite, ShardInfo | None]:
    if spec is None:
        return suite, None
    index, count = parse_shard(spec)
    return shard_suite(suite, index, count)


def check_resumed_shard(recorded: ShardInfo | None, wanted: ShardInfo | None, run_id: str) -> None:
    """A shard resumes as the same shard; anything else would mix cases of two shards in one run."""
    def label(info: ShardInfo | None) -> str:
        return "the whole suite" if info is None else f"shard {info.index}/{info.count}"

    same = (recorded is None and wanted is None) or (
        recorded is not None and wanted is not None and (recorded.index, recorded.count) == (wanted.index, wanted.count)
    )
    if not same:
        raise InputError(
            f"run {run_id} ran {label(recorded)}, not {label(wanted)}",
            hint="resume with the --shard it was started with",
        )
