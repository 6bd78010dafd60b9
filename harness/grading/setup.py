"""Build a run's grading from the suite's ``grading:`` section: the sample, the judges, the budget and projection.

Claude (the primary judge) is built only with an API key; the second judges are built whatever the key, since they
need none of Anthropic's. A paid second judge's projection is added to the grading projection and its calls to the
grading budget; a self-hosted one is shown as costing its host's cost model, outside the cloud budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.config.fleet import Fleet
from harness.config.suite import Case, Suite
from harness.grading.grader import ClaudeGrader, Judge
from harness.grading.phase import GradingPlan
from harness.grading.rubric import grade_inputs
from harness.grading.sampling import stratified_sample
from harness.grading.second_judge import HttpJudge, build_second_judge
from harness.money.budget import Budget
from harness.money.tokens import estimate_tokens
from harness.store.grade_log import PENDING, read_second_judges

if TYPE_CHECKING:
    from harness.grading.claims import ClaimsDiagnoser
    from harness.providers.structured import StructuredRequest

NO_KEY_REASON = "grader skipped: ANTHROPIC_API_KEY is not set"


@dataclass
class GradingSetup:
    plan: GradingPlan | None
    calls: int  # grader calls the run would make (sampled cases x generating variants x answering tiers)
    projected_usd: float | None  # Claude's grades and claims checks, and the paid second judges' calls
    budget: Budget | None
    judges_projected_usd: dict[str, float] = field(default_factory=dict)  # per second judge; 0 when self-hosted
    claims_projected_usd: float | None = None  # the claims checks alone (``grading.diagnose``), inside projected_usd

    def plan_line(self) -> str | None:
        """One line for the console before the run: the projected grading cost, or why there is no grading."""
        plan = self.plan
        if plan is None:
            return None
        judges = "".join(f"; second judge {_judge_line(j, self.judges_projected_usd.get(j.name, 0.0))}"
                         for j in plan.judges)
        if plan.grader is None:
            return plan.reason + judges
        cap = f"grading.max_usd ${self.budget.cap_usd:.2f}" if self.budget and self.budget.cap_usd else "no grading cap"
        how = "Message Batches" if plan.batch else "direct calls"
        cost = f"up to ${self.projected_usd:.4f}" if self.projected_usd is not None else "nothing"
        claims = (f" and as many claims checks (up to ${self.claims_projected_usd:.4f} of it, direct calls)"
                  if self.claims_projected_usd is not None else "")
        return (
            f"projected grading cost: {cost} for {self.calls} grades{claims} of {len(plan.sample)} sampled cases "
            f"({plan.describe}; {plan.grader.model}, {how}; {cap}, inside the run budget){judges}"
        )

    def manifest(self) -> dict[str, Any]:
        if self.plan is None:
            return {"status": "unmeasured", "reason": "the suite generates no answers"}
        grader = self.plan.grader
        return {
            "status": "run" if grader is not None else "skipped",
            "reason": None if grader is not None else self.plan.reason,
            "model": grader.model if grader is not None else None,
            "sample_cases": len(self.plan.sample),
            "sample": self.plan.describe,
            "batch": self.plan.batch,
            "max_usd": self.budget.cap_usd if self.budget is not None else None,
            "projected_usd": self.projected_usd,
            "second_judges": [
                {"name": j.name, "kind": j.kind, "model": j.model, "where": j.where, "paid": j.paid}
                for j in self.plan.judges
            ],
        }


def build_grading(
    suite: Suite,
    run_budget: Budget,
    answering_tiers: int,
    *,
    key_present: bool,
    batch: bool | None = None,
    base_url: str | None = None,
    fleet: Fleet | None = None,
) -> GradingSetup:
    """The grading plan of a run; the Claude client is built only with a key (its SDK import stays lazy).

    Raises:
        InputError: a second judge names a host the fleet file does not have (the caller names the suite's line).
    """
    generation = suite.generation
    if generation is None:
        return GradingSetup(None, 0, None, None)
    config = suite.grading
    batch = config.batch if batch is None else batch
    sample = stratified_sample(
        ((c.id, c.category) for c in suite.cases if c.generate), config.rate, config.min_per_category, config.seed
    )
    describe = f"{config.rate:.0%} of each category, at least {config.min_per_category}, seed {config.seed}"
    calls = len(sample) * len(suite.generating_variants()) * answering_tiers
    plan = GradingPlan(sample, describe, seed=config.seed, batch=batch, concurrency=config.concurrency)
    budget = Budget(config.max_usd, name="grading", parent=run_budget)
    plan.judges = [build_second_judge(judge, config, fleet, budget) for judge in config.second_judges]
    paid = {judge.name: (_upper_estimate_usd(suite, judge, calls, batch=False) or 0.0) if judge.paid else 0.0
            for judge in plan.judges}
    plan_paid = sum(paid.values())
    if not key_present:
        plan.reason = NO_KEY_REASON
        return GradingSetup(plan, calls, plan_paid or None, budget if plan.judges else None, paid)
    from harness.providers.anthropic_grader import AnthropicGraderClient

    client = AnthropicGraderClient(config.model, base_url=base_url)
    grader = plan.grader = ClaudeGrader(client, config, budget)
    claims = None
    if config.diagnose:
        from harness.grading.claims import ClaimsDiagnoser

        plan.diagnoser = ClaimsDiagnoser(client, config, budget)  # the same grading budget holds both
        claims = _claims_upper_estimate_usd(suite, plan.diagnoser, calls)
    plan.poll_s = config.batch_poll_s
    plan.timeout_s = config.batch_timeout_s
    claude = _upper_estimate_usd(suite, grader, calls, batch=batch)
    known = [usd for usd in (claude, claims) if usd is not None]
    projected = sum(known) + plan_paid if known or plan_paid else None
    return GradingSetup(plan, calls, projected, budget, paid, claims)


def _judge_line(judge: HttpJudge, paid_usd: float) -> str:
    """How the console names a second judge before the run, with what it will cost."""
    if judge.paid:
        money = f"paid: up to ${paid_usd:.4f}, held to the grading budget call by call"
    elif judge.host_cost is not None:
        money = "self-hosted: its host's cost model, outside the cloud budget"
    else:
        money = "self-hosted, no cost model given: counted as $0"
    return f"{judge.name} ({judge.model} on {judge.where}; {money})"


def _upper_estimate_usd(suite: Suite, grader: Judge, calls: int, *, batch: bool) -> float | None:
    """Upper estimate shown before the run: ``calls`` times the grader's request for the case with the longest
    question and reference, its passages filling ``max_context_tokens`` and its answer ``max_tokens``.

    The request is the one the grader will send, built from the rubric and the case's real text with empty passages
    and an empty answer; the passages and the answer it cannot see yet are added as token counts. The runner cuts the
    grader's passages to ``max_context_tokens`` as the answer prompt does (``shown_texts``), so that bound holds, up
    to the HTML escaping of ``&``, ``<`` and ``>`` in them (a few tokens, inside the estimate's own over-count).
    """
    largest = _largest_request(suite, calls, lambda case, passages: grader.request(
        grade_inputs(case.question, case.reference, passages, "")))
    if largest is None:
        return None
    return grader.projected_usd(largest, batch=batch, calls=calls, unseen_user_tokens=_unseen_tokens(suite))


def _claims_upper_estimate_usd(suite: Suite, diagnoser: ClaimsDiagnoser, calls: int) -> float | None:
    """The same bound for the claims checks: one per graded answer, its prompt built from the same case the same
    way (a reply that does not parse is retried once; that retry is not in the bound, as a grade's is not)."""
    from harness.grading.claims import claims_input

    largest = _largest_request(suite, calls, lambda case, passages: diagnoser.request(
        claims_input(case.question, case.reference or "", passages, [""] * len(passages), "")))
    if largest is None:
        return None
    return diagnoser.projected_usd(largest, calls=calls, unseen_user_tokens=_unseen_tokens(suite))


def _largest_request(suite: Suite, calls: int, build: Callable[[Case, list[str]], StructuredRequest]
                     ) -> StructuredRequest | None:
    """The longest request ``build`` makes for a generating case with empty passages; None when nothing is graded."""
    generation = suite.generation
    if generation is None or not calls:
        return None
    empty_passages = [""] * generation.context_chunks
    requests = [build(case, empty_passages) for case in suite.cases if case.generate]
    return max(requests, key=lambda request: estimate_tokens(request.user), default=None)


def _unseen_tokens(suite: Suite) -> int:
    """What a grading prompt holds that the projection cannot see yet: passages up to the context cap, the answer."""
    generation = suite.generation
    return generation.max_context_tokens + generation.max_tokens if generation is not None else 0


def grading_summary(store: Any, setup: GradingSetup | None, outcome: Any) -> dict[str, Any]:
    """The manifest's ``grader`` after the run: what it spent and how many answers ended in each status."""
    if setup is None:
        return {}
    counts: dict[str, int] = {}
    for record in store.records():
        for generation in record.generations.values():
            status = generation.grade.status
            if status == "unmeasured" and generation.grade.reason == PENDING:
                status = "pending"
            counts[status] = counts.get(status, 0) + 1
    info = setup.manifest()
    grader = setup.plan.grader if setup.plan is not None else None
    info.update(
        counts=counts,
        spent_usd=setup.budget.spent_usd if setup.budget is not None else None,
        calls=setup.budget.calls if setup.budget is not None else None,
        batch_id=getattr(outcome, "batch_id", None),
        note=getattr(outcome, "note", None) or (grader.stopped if grader is not None else None),
    )
    judges = setup.plan.judges if setup.plan is not None else []
    logged = read_second_judges(store.path) if judges else {}
    for entry, judge in zip(info.get("second_judges", []), judges, strict=True):
        judge_counts: dict[str, int] = {}
        for grade in logged.get(judge.name, {}).values():
            judge_counts[grade.status] = judge_counts.get(grade.status, 0) + 1
        entry.update(counts=judge_counts, spent_usd=judge.budget.spent_usd, calls=judge.budget.calls,
                     note=judge.stopped)
    return {"grader": info}
