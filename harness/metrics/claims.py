"""Claim-level diagnostics of one answer, after RAGChecker (Ru et al., NeurIPS 2024; amazon-science/RAGChecker,
``ragchecker/computation.py``). Pure functions over entailment verdicts.

Notation for one answer: ``R`` the claims of the reference answer, ``A`` the claims of the answer, ``P`` the passages
its prompt carried. Each claim carries a verdict per passage and one against the other text (a reference claim
against the answer, an answer claim against the reference): ``entailed``, ``contradicted`` or ``neutral``.

- ``p ⊨ c``: passage ``p`` entails claim ``c``; ``P ⊨ c``: some passage does.
- an answer claim ``a`` is **correct** when the reference entails it (``ref ⊨ a``);
- a passage is **relevant** when it entails at least one reference claim (RAGChecker's definition, from the claims
  themselves, not from the suite's ``relevant:`` grades).

Where ours differs from RAGChecker, and why:

- RAGChecker scores an answer with no claims (or no passages) 0 on every metric; we return ``None`` (unmeasured), so an
  empty denominator is counted apart and never averaged in as a zero.
- RAGChecker extracts claims with one model call and checks each claim against each text with others; we ask the
  grader for both in one structured call per answer (:mod:`harness.grading.claims`), which fits the grading budget.
  Like RAGChecker, only ``entailed`` counts as support: ``contradicted`` and ``neutral`` both count as not supported.
  ``contradicted`` is kept to pick the report's most telling claims.
- Names: RAGChecker's overall *recall* is our ``claim_recall`` and its retriever *claim recall* is our
  ``context_recall`` (the issue's and Ragas' names); its *noise sensitivity in irrelevant* is our
  ``noise_sensitivity`` and *in relevant* our ``noise_sensitivity_relevant``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Verdict = Literal["entailed", "contradicted", "neutral"]
ENTAILED: Verdict = "entailed"


class CheckedClaim(Protocol):
    """A claim with its verdict per passage (in prompt order) and against the other text."""

    @property
    def passages(self) -> Sequence[str]: ...

    @property
    def other(self) -> str: ...


def _in_passages(claim: CheckedClaim, which: Sequence[bool] | None = None) -> bool:
    return any(v == ENTAILED and (which is None or which[i]) for i, v in enumerate(claim.passages))


def _share(count: int, total: int) -> float | None:
    return None if total == 0 else count / total


def relevant_passages(reference: Sequence[CheckedClaim], passages: int) -> list[bool]:
    """Passage ``k`` is relevant when it entails at least one reference claim."""
    return [any(len(r.passages) > k and r.passages[k] == ENTAILED for r in reference) for k in range(passages)]


def claim_recall(reference: Sequence[CheckedClaim], answer: Sequence[CheckedClaim]) -> float | None:
    """Reference claims the answer covers: ``|{r ∈ R : answer ⊨ r}| / |R|`` (RAGChecker: overall recall)."""
    return _share(sum(r.other == ENTAILED for r in reference), len(reference))


def context_recall(reference: Sequence[CheckedClaim], answer: Sequence[CheckedClaim]) -> float | None:
    """Reference claims the passages support: ``|{r ∈ R : P ⊨ r}| / |R|`` (RAGChecker: retriever claim recall)."""
    return _share(sum(_in_passages(r) for r in reference), len(reference))


def context_precision(reference: Sequence[CheckedClaim], answer: Sequence[CheckedClaim]) -> float | None:
    """Passages that are relevant: ``|{p ∈ P : ∃ r ∈ R, p ⊨ r}| / |P|``; the number of passages is read from the
    claims' verdict lists (None without a claim to read it from)."""
    count = max((len(c.passages) for c in (*reference, *answer)), default=0)
    return _share(sum(relevant_passages(reference, count)), count)


def context_utilisation(reference: Sequence[CheckedClaim], answer: Sequence[CheckedClaim]) -> float | None:
    """Of the reference claims the passages support, those the answer covers:
    ``|{r ∈ R : P ⊨ r ∧ answer ⊨ r}| / |{r ∈ R : P ⊨ r}|``."""
    supported = [r for r in reference if _in_passages(r)]
    return _share(sum(r.other == ENTAILED for r in supported), len(supported))


def faithfulness(reference: Sequence[CheckedClaim], answer: Sequence[CheckedClaim]) -> float | None:
    """Answer claims the passages support: ``|{a ∈ A : P ⊨ a}| / |A|``."""
    return _share(sum(_in_passages(a) for a in answer), len(answer))


def hallucination(reference: Sequence[CheckedClaim], answer: Sequence[CheckedClaim]) -> float | None:
    """Answer claims neither supported nor correct: ``|{a ∈ A : ¬(P ⊨ a) ∧ ¬(ref ⊨ a)}| / |A|``."""
    return _share(sum(not _in_passages(a) and a.other != ENTAILED for a in answer), len(answer))


def self_knowledge(reference: Sequence[CheckedClaim], answer: Sequence[CheckedClaim]) -> float | None:
    """Correct answer claims the passages do not hold: ``|{a ∈ A : ¬(P ⊨ a) ∧ ref ⊨ a}| / |A|``."""
    return _share(sum(not _in_passages(a) and a.other == ENTAILED for a in answer), len(answer))


def noise_sensitivity(reference: Sequence[CheckedClaim], answer: Sequence[CheckedClaim]) -> float | None:
    """Wrong answer claims that come from passages not relevant to the question (and from no relevant one):
    ``|{a ∈ A : ¬(ref ⊨ a) ∧ P_irr ⊨ a ∧ ¬(P_rel ⊨ a)}| / |A|``, with ``P_rel`` the relevant passages and ``P_irr``
    the others (RAGChecker: noise sensitivity in irrelevant)."""
    count = max((len(c.passages) for c in (*reference, *answer)), default=0)
    relevant = relevant_passages(reference, count)
    irrelevant = [not r for r in relevant]
    wrong = [a for a in answer if a.other != ENTAILED]
    return _share(sum(_in_passages(a, irrelevant) and not _in_passages(a, relevant) for a in wrong), len(answer))


def noise_sensitivity_relevant(reference: Sequence[CheckedClaim], answer: Sequence[CheckedClaim]) -> float | None:
    """Wrong answer claims taken from a relevant passage: ``|{a ∈ A : ¬(ref ⊨ a) ∧ P_rel ⊨ a}| / |A|``
    (RAGChecker: noise sensitivity in relevant)."""
    count = max((len(c.passages) for c in (*reference, *answer)), default=0)
    relevant = relevant_passages(reference, count)
    return _share(sum(a.other != ENTAILED and _in_passages(a, relevant) for a in answer), len(answer))


ClaimMetric = Callable[[Sequence[CheckedClaim], Sequence[CheckedClaim]], "float | None"]


@dataclass(frozen=True)
class ClaimMetricInfo:
    fn: ClaimMetric
    higher_is_better: bool
    blames: Literal["retrieval", "generation"]


CLAIM_METRICS: dict[str, ClaimMetricInfo] = {
    "claim_recall": ClaimMetricInfo(claim_recall, True, "generation"),
    "context_recall": ClaimMetricInfo(context_recall, True, "retrieval"),
    "context_precision": ClaimMetricInfo(context_precision, True, "retrieval"),
    "context_utilisation": ClaimMetricInfo(context_utilisation, True, "generation"),
    "faithfulness": ClaimMetricInfo(faithfulness, True, "generation"),
    "hallucination": ClaimMetricInfo(hallucination, False, "generation"),
    "noise_sensitivity": ClaimMetricInfo(noise_sensitivity, False, "generation"),
    "noise_sensitivity_relevant": ClaimMetricInfo(noise_sensitivity_relevant, False, "generation"),
    "self_knowledge": ClaimMetricInfo(self_knowledge, True, "generation"),
}
"""Every claim metric by name: the one list the report, the frames and the tests read."""


def score_claims(reference: Sequence[CheckedClaim], answer: Sequence[CheckedClaim]) -> dict[str, float | None]:
    return {name: info.fn(reference, answer) for name, info in CLAIM_METRICS.items()}
