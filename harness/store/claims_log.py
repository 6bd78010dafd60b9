"""Claim diagnostics in the run store: ``claims.jsonl``, one line per diagnosed answer, appended and flushed.

Like grades, claims have a log of their own: they are made after the answers are logged, by the grader, and only on
the graded sample when the suite sets ``grading.diagnose: true``. The newest entry per (case, variant, tier) wins.
Each entry holds the claims of the reference and of the answer, each with its verdict against every passage the
prompt carried (in prompt order) and against the other text, so a viewer or a later analysis can show them and
recompute every metric of :mod:`harness.metrics.claims`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import RunStoreError
from harness.metrics.claims import Verdict
from harness.store.jsonl_log import append_entries, read_entries

CLAIMS = "claims.jsonl"
CLAIMS_LOG_VERSION = 1

ClaimsKey = tuple[str, str, str]  # case id, variant, tier
ClaimsStatus = Literal["diagnosed", "unmeasured", "diagnose_error"]


class ClaimRecord(BaseModel):
    """One claim and its entailment verdicts: per passage, and against the other text (reference <-> answer)."""

    model_config = ConfigDict(extra="forbid")

    text: str
    passages: list[Verdict] = Field(description="verdict against each passage, in prompt order")
    other: Verdict = Field(description="reference claim: against the answer; answer claim: against the reference")


class ClaimsRecord(BaseModel):
    """The claims of one answer, or why there are none (unmeasured with a reason, or a diagnose_error)."""

    model_config = ConfigDict(extra="forbid")

    status: ClaimsStatus
    reason: str | None = None
    passages: list[str] = Field(default_factory=list, description="chunk ids of the passages checked, in order")
    reference_claims: list[ClaimRecord] = Field(default_factory=list)
    answer_claims: list[ClaimRecord] = Field(default_factory=list)
    grader_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cost_usd: float | None = None
    batch_id: str | None = None


class ClaimsEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = CLAIMS_LOG_VERSION
    case_id: str
    variant: str
    tier: str
    claims: ClaimsRecord

    @property
    def key(self) -> ClaimsKey:
        return (self.case_id, self.variant, self.tier)


def append_claims(run_dir: Path, entries: Iterable[ClaimsEntry]) -> None:
    append_entries(run_dir / CLAIMS, entries)


def read_claims(run_dir: Path) -> dict[ClaimsKey, ClaimsRecord]:
    """The newest claims per answer. A torn last line is ignored (the process died writing it); a newer log version
    is refused with both versions named."""
    entries = read_entries(run_dir / CLAIMS, _entry, "claims entry", "remove or repair that line, then resume")
    return {entry.key: entry.claims for entry in entries}


def _entry(data: Any, where: str) -> ClaimsEntry:
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > CLAIMS_LOG_VERSION:
        raise RunStoreError(f"{where}: claims log version {version}; this harness reads version {CLAIMS_LOG_VERSION}",
                            hint="read this run with the newer harness that wrote it")
    return ClaimsEntry.model_validate(data)
