"""The grader through the real ``anthropic`` SDK against the loopback fake: structured grades, retries, errors,
prompt caching and its price, and the budget under concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from harness.config.grading import GradingConfig
from harness.fakes import FakeAnthropic, Reply
from harness.fakes.anthropic import grade_json
from harness.grading.grader import ClaudeGrader
from harness.grading.rubric import grade_inputs
from harness.money.budget import Budget
from harness.providers.anthropic_grader import AnthropicGraderClient

MODEL = "claude-sonnet-4-6"
# Anthropic list prices for Sonnet 4.5, USD per million tokens (input, output, 5-minute cache write, cache read):
# the oracle the recorded costs are checked against, written out here rather than read from our table.
PRICE = {"input": 3.00, "output": 15.00, "cache_write": 3.75, "cache_read": 0.30}
ITEM = grade_inputs("How far must the ice barrier reach?", "36 inches inside the wall line.", ["36 inches."], "24")


def expected_cost(grade: object) -> float:
    g = grade  # a GradeRecord
    return (
        g.input_tokens * PRICE["input"]  # type: ignore[attr-defined]
        + g.output_tokens * PRICE["output"]  # type: ignore[attr-defined]
        + g.cache_creation_input_tokens * PRICE["cache_write"]  # type: ignore[attr-defined]
        + g.cache_read_input_tokens * PRICE["cache_read"]  # type: ignore[attr-defined]
    ) / 1e6


CLIENTS: list[AnthropicGraderClient] = []


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server
        while CLIENTS:
            await CLIENTS.pop().aclose()


def client_for(fake: FakeAnthropic, model: str = MODEL) -> AnthropicGraderClient:
    CLIENTS.append(AnthropicGraderClient(model, api_key="test-key", base_url=fake.url, max_retry_wait_s=5))
    return CLIENTS[-1]


def grader(fake: FakeAnthropic, cap: float | None = 1.0, **config: object) -> ClaudeGrader:
    return ClaudeGrader(client_for(fake), GradingConfig(**config), Budget(cap, name="grading"))  # type: ignore[arg-type]


async def test_a_scripted_grade_is_parsed_scored_and_priced_with_its_cache_tokens(fake: FakeAnthropic) -> None:
    fake.script = [Reply.ok(grade_json(1, 2, 1, confident_but_wrong=True, rationale="Says 24, not 36.")),
                   Reply.ok(grade_json(3, 3, 3))]  # fmt: skip
    g = grader(fake)
    first, second = await g.grade(ITEM), await g.grade(ITEM)
    assert first.status == "graded" and first.scores == {"correctness": 1, "faithfulness": 2, "completeness": 1}
    assert first.score == pytest.approx(4 / 9) and first.confident_but_wrong is True
    assert first.rationale == "Says 24, not 36." and first.grader_model == MODEL and first.batch_id is None
    # The rubric is long enough to cache on Sonnet: written by the first call, read by the second.
    assert first.cache_creation_input_tokens > 0 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    for grade in (first, second):
        assert grade.cost_usd == pytest.approx(expected_cost(grade), rel=1e-9)
    assert g.budget.spent_usd == pytest.approx(first.cost_usd + second.cost_usd)  # type: ignore[operator]
    body = fake.requests_to("/v1/messages")[0].body
    assert body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert "temperature" not in body and "top_p" not in body  # no sampling parameters unless the suite sets them


async def test_sampling_parameters_are_sent_only_when_set(fake: FakeAnthropic) -> None:
    await grader(fake, temperature=0.0).grade(ITEM)
    body = fake.requests_to("/v1/messages")[0].body
    assert body["temperature"] == 0.0 and "top_p" not in body


async def test_haiku_does_not_mark_a_rubric_too_short_for_its_cache(fake: FakeAnthropic) -> None:
    await ClaudeGrader(client_for(fake, "claude-haiku-4-5"), GradingConfig(), Budget(1.0)).grade(ITEM)
    assert "cache_control" not in fake.requests_to("/v1/messages")[0].body["system"][0]


@pytest.mark.parametrize(
    "failure",
    [Reply.rate_limited(retry_after=0.05), Reply.overloaded(), Reply.error(500)],
    ids=["429-retry-after", "529", "500"],
)
async def test_transient_failures_are_retried_then_graded(fake: FakeAnthropic, failure: Reply) -> None:
    fake.script = [failure, Reply.ok(grade_json(2, 2, 2))]
    grade = await grader(fake).grade(ITEM)
    assert grade.status == "graded" and grade.score == pytest.approx(2 / 3)
    assert len(fake.requests_to("/v1/messages")) == 2


async def test_persistent_overload_is_a_grade_error_with_its_reason(fake: FakeAnthropic) -> None:
    fake.script = Reply.overloaded()
    g = grader(fake)
    grade = await g.grade(ITEM)
    assert grade.status == "grade_error" and "529" in (grade.reason or "") and grade.score is None
    assert len(fake.requests_to("/v1/messages")) == 3  # the first try and the provider's two retries
    assert g.budget.spent_usd == 0.0 and g.budget.reserved_usd == 0.0  # failed calls are not billed


async def test_the_spend_limit_is_never_retried_and_stops_later_grades(fake: FakeAnthropic) -> None:
    fake.script = [Reply.spend_limit(), Reply.ok(grade_json())]
    g = grader(fake)
    first = await g.grade(ITEM)
    assert first.status == "grade_error" and "spend limit" in (first.reason or "")
    later = await g.grade(ITEM)
    assert later.status == "unmeasured" and "spend limit" in (later.reason or "")
    assert len(fake.requests_to("/v1/messages")) == 1


async def test_malformed_output_gets_one_retry(fake: FakeAnthropic) -> None:
    # The usage each call reports is scripted, so the cost can be worked out by hand from Sonnet 4.5's list prices:
    #   1st: 1,200 in x $3 + 7 out x $15 + 2,000 cache written (5 min) x $3.75 = $3,600 + $105 + $7,500 per million
    #   2nd: 1,200 in x $3 + 20 out x $15 + 2,000 cache read x $0.30          = $3,600 + $300 + $600 per million
    #   together $15,705 per million tokens = $0.015705
    written = {"cache_creation_input_tokens": 2000, "cache_read_input_tokens": 0,
               "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0}}
    read = {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 2000,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}}
    fake.script = [Reply.ok('{"correctness": 3, "faith', usage={"input_tokens": 1200, "output_tokens": 7, **written}),
                   Reply.ok(grade_json(3, 2, 3), usage={"input_tokens": 1200, "output_tokens": 20, **read})]
    grade = await grader(fake).grade(ITEM)
    assert grade.status == "graded" and grade.scores == {"correctness": 3, "faithfulness": 2, "completeness": 3}
    assert len(fake.requests_to("/v1/messages")) == 2
    # both calls are paid for
    assert (grade.input_tokens, grade.output_tokens) == (2400, 27)
    assert (grade.cache_creation_input_tokens, grade.cache_read_input_tokens) == (2000, 2000)
    assert grade.cost_usd == pytest.approx(0.015705, rel=1e-9)


async def test_malformed_twice_is_a_grade_error_that_still_counts_its_cost(fake: FakeAnthropic) -> None:
    fake.script = [Reply.ok("not json at all"), Reply.ok('{"correctness": 9}')]
    grade = await grader(fake).grade(ITEM)
    assert grade.status == "grade_error" and grade.score is None and grade.scores is None
    assert (grade.reason or "").startswith("bad grader output twice: malformed grader output")
    assert grade.output_tokens == 4 + 2 and grade.cost_usd == pytest.approx(expected_cost(grade), rel=1e-9)
    assert len(fake.requests_to("/v1/messages")) == 2


async def test_twenty_concurrent_graders_under_a_cap_never_exceed_it(fake: FakeAnthropic) -> None:
    fake.script = Reply.ok(grade_json(), latency=0.05)  # every call in flight at once
    g = grader(fake, cap=None)
    probe = await g.grade(ITEM)  # one call, to learn what a grade really costs
    assert probe.cost_usd is not None
    cap = 0.02
    g = grader(fake, cap=cap)
    fake.reset_counters()
    grades = await asyncio.gather(*(g.grade(ITEM) for _ in range(20)))
    made = len(fake.requests_to("/v1/messages"))
    assert g.budget.spent_usd <= cap
    assert sum(grade.cost_usd or 0.0 for grade in grades) == pytest.approx(g.budget.spent_usd)
    assert 0 < made < 20 and fake.max_in_flight == made  # they were concurrent, and the cap stopped the rest
    skipped = [grade for grade in grades if grade.status == "unmeasured"]
    assert len(skipped) == 20 - made and all((s.reason or "").startswith("budget: grading budget") for s in skipped)


async def test_a_tiny_budget_makes_no_call_it_cannot_pay_for(fake: FakeAnthropic) -> None:
    g = grader(fake, cap=0.0001)
    grade = await g.grade(ITEM)
    assert grade.status == "unmeasured" and "budget" in (grade.reason or "")
    assert len(fake.requests_to("/v1/messages")) <= 1 and g.budget.spent_usd <= 0.0001
