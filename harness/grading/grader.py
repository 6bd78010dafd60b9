"""The graders: a judge scores one answer with the rubric, blind to who wrote it (call, then parse, then score).

:class:`Judge` holds what every judge shares (the request, the retry, parsing, scoring, the budget); a judge differs
only in its client and how it prices a call. :class:`ClaudeGrader` is the primary judge; the second judges
(:mod:`harness.grading.second_judge`) ask an Ollama or OpenAI-compatible server for the same structured output.

Every grader call reserves its projected cost on the grading budget (a budget inside the run's) before it is made and
settles it after, so concurrent graders cannot pass the cap together. A reply that does not parse is retried once;
after that the grade is a ``grade_error`` with the reason. A call that fails (after the provider's own bounded
retries of 429/529/5xx) is a ``grade_error`` too. The spend-limit 429 and billing errors also stop every later
grader call: those grades are unmeasured, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from harness.config.grading import PRIMARY_JUDGE, GradingConfig
from harness.errors import BudgetExceeded, ProviderError
from harness.grading.parse import ParsedGrade, parse_grade
from harness.grading.rubric import GradeInput, RubricOutput, system_prompt, user_prompt
from harness.grading.score import overall_score
from harness.grading.spend import Spend
from harness.money import projection
from harness.money.budget import Budget
from harness.money.costs import cloud_cost_usd
from harness.money.tokens import estimate_tokens
from harness.providers.structured import StructuredReply, StructuredRequest
from harness.store.records import GradeRecord

ATTEMPTS = 2  # the first call and one retry on bad output


class StructuredClient(Protocol):
    """The call half of a judge: one structured-output call."""

    @property
    def model(self) -> str: ...

    async def structured(self, request: StructuredRequest) -> StructuredReply: ...


class GradingClient(StructuredClient, Protocol):
    """Claude's: ``harness.providers.anthropic_grader.AnthropicGraderClient`` in production."""

    def caches_system(self, request: StructuredRequest) -> bool: ...


@dataclass
class Judge:
    """Grades answers one call at a time. Subclasses price a call (``projected_usd`` before, ``price`` after)."""

    client: StructuredClient
    config: GradingConfig
    budget: Budget
    name: str = PRIMARY_JUDGE
    stopped: str | None = None  # why later calls are not made (spend limit, billing)
    calls: int = 0

    @property
    def model(self) -> str:
        return self.client.model

    def request(self, item: GradeInput) -> StructuredRequest:
        sampling = {
            k: v for k, v in (("temperature", self.config.temperature), ("top_p", self.config.top_p)) if v is not None
        }
        return StructuredRequest(
            system=system_prompt(),
            user=user_prompt(item),
            output=RubricOutput,
            max_tokens=self.config.max_tokens,
            cache_ttl=self.config.cache_ttl,
            sampling=sampling,
        )

    def projected_usd(
        self, request: StructuredRequest, *, batch: bool, calls: int = 1, unseen_user_tokens: int = 0
    ) -> float:
        """Upper estimate of ``calls`` calls of ``request``, held by the budget before a call is made.

        ``unseen_user_tokens`` are tokens the user message will carry beyond its present text: the projection made
        before a run counts the passages and the answer it cannot see yet that way.
        """
        raise NotImplementedError

    def price(self, reply: StructuredReply, *, batch: bool) -> float | None:
        """What one call cost; None when it cannot be priced (never a silent zero)."""
        raise NotImplementedError

    async def grade(self, item: GradeInput) -> GradeRecord:
        """One answer's grade; never raises for a grader-side failure (it is recorded instead)."""
        request = self.request(item)
        projected = self.projected_usd(request, batch=False)
        spend = Spend()
        bad: list[str] = []
        for _ in range(ATTEMPTS):
            if self.stopped:
                return self._after_stop(spend, bad)
            try:
                held = self.budget.reserve(projected, "grade")
            except BudgetExceeded as exc:
                if spend.calls:
                    return self.error(f"bad output ({bad[-1]}); the retry was refused: {exc.message}", spend)
                return GradeRecord.unmeasured(f"budget: {exc.message}")
            try:
                self.calls += 1
                reply = await self.client.structured(request)
            except ProviderError as exc:
                self.budget.release(held)  # the API bills no failed request
                if exc.status in (402, 429) and not exc.retryable:
                    self.stopped = f"grader stopped after: {exc.message}"
                return self.error(f"grader call failed: {exc.message}", spend)
            except BaseException:
                self.budget.release(held)
                raise
            cost = self.price(reply, batch=False)
            self.budget.settle(held, cost)
            outcome = self.finish(reply, spend, cost)
            if isinstance(outcome, GradeRecord):
                return outcome
            bad.append(outcome)
        return self.error("bad grader output twice: " + "; ".join(bad), spend)

    def finish(
        self, reply: StructuredReply, spend: Spend, cost: float | None, batch_id: str | None = None
    ) -> GradeRecord | str:
        """Count the call, parse its reply and score it: the grade, or why the reply was unusable."""
        spend.add(reply.usage, cost)
        parsed = parse_grade(reply.text, reply.stop_reason)
        if not isinstance(parsed, ParsedGrade):
            return parsed.reason
        return GradeRecord(
            status="graded",
            scores=parsed.scores,
            score=overall_score(parsed.scores),
            confident_but_wrong=parsed.confident_but_wrong,
            rationale=parsed.rationale,
            grader_model=self.model,
            batch_id=batch_id,
            **spend.fields(),
        )

    def error(self, reason: str, spend: Spend, batch_id: str | None = None) -> GradeRecord:
        return GradeRecord(
            status="grade_error", reason=reason, grader_model=self.model, batch_id=batch_id, **spend.fields()
        )

    def _after_stop(self, spend: Spend, bad: list[str]) -> GradeRecord:
        if spend.calls:
            return self.error(f"bad output ({bad[-1]}); no retry: {self.stopped}", spend)
        return GradeRecord.unmeasured(str(self.stopped))


@dataclass
class ClaudeGrader(Judge):
    """The primary judge: Claude, priced from the run's pricing table (the direct path; the batch path in
    :mod:`harness.grading.phase` shares ``request``, ``price`` and ``finish``)."""

    client: GradingClient

    def projected_usd(
        self, request: StructuredRequest, *, batch: bool, calls: int = 1, unseen_user_tokens: int = 0
    ) -> float:
        """The rubric at the cache-write rate when it is marked for caching (the dearest case: a write), the user
        message at the input rate, ``max_tokens`` out."""
        return projected_request_usd(self.model, self.client, request, batch=batch, calls=calls,
                                     unseen_user_tokens=unseen_user_tokens)  # fmt: skip

    def price(self, reply: StructuredReply, *, batch: bool) -> float | None:
        return cloud_cost_usd(self.model, reply.usage, batch=batch, cache_ttl=self.config.cache_ttl)


def projected_request_usd(
    model: str, client: GradingClient, request: StructuredRequest, *, batch: bool = False, calls: int = 1,
    unseen_user_tokens: int = 0,
) -> float:
    """Upper estimate of ``calls`` calls of one structured grader request (a grade or a claims check): its system
    text at the cache-write rate when the client marks it for caching, its user text at the input rate, ``max_tokens``
    out."""
    system, user = estimate_tokens(request.system), estimate_tokens(request.user) + unseen_user_tokens
    cached = system if client.caches_system(request) else 0
    return projection.projected_usd(
        model, system - cached + user, request.max_tokens, cache_write_tokens=cached, calls=calls, batch=batch,
        cache_ttl=request.cache_ttl,
    )
