"""The grading cost projected before a run against what the grader then sends, counted by a real tokenizer.

The token estimate is calibrated against the bundled model's tokenizer (``harness/money/tokens.py``), so that tokenizer
is the oracle here: the projection must never be below the cost of the real request, and may be above it by at most
the estimator's stated over-count. Requests are captured by the loopback Anthropic fake, sent by the official SDK.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _suites import FIXTURE, generation, variants, write_suite
from test_grading_cli import fleet_file, run

from harness.config.grading import DEFAULT_GRADER_MODEL
from harness.config.suite import Suite
from harness.corpus.chunking import chunk_corpus
from harness.corpus.documents import load_corpus
from harness.errors import LocalFleetError
from harness.fakes import FakeAnthropic, FakeOpenAI, Reply
from harness.fakes.anthropic import grade_json
from harness.fakes.claims import claims_json
from harness.grading.claims import claims_input
from harness.grading.rubric import grade_inputs
from harness.grading.setup import build_grading
from harness.localfleet.prompt import shown_texts
from harness.money.budget import Budget
from harness.money.costs import cloud_cost_usd
from harness.money.tokens import TOKEN_ESTIMATE_MAX_OVER, estimate_tokens
from harness.providers.types import Usage

CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "restoration"
GRADER = DEFAULT_GRADER_MODEL
# Plain words that cost one token each, so the fakes' word-count cut at max_tokens is a real-token cut too.
PROSE = " ".join(["the roof was wet and the old felt under it had torn along the edge"] * 40)

Count = Callable[[str], int]


@pytest.fixture(scope="module")
def real_tokens() -> Count:
    """The bundled model's tokenizer (vocabulary only: no weights are loaded, no server is started)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from harness.localfleet.model import bundled_gguf

    try:
        path = bundled_gguf()
    except LocalFleetError as exc:
        pytest.skip(f"no bundled model to take the tokenizer from: {exc.message}")
    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    return lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def request_cost(body: dict[str, Any], count: Count) -> float:
    """The most a captured grader request can cost, its tokens counted by the oracle: a cache-marked rubric at the
    cache-write rate, the user message at the input rate, ``max_tokens`` out."""
    blocks = body["system"]
    system = count("".join(block["text"] for block in blocks))
    cached = system if any("cache_control" in block for block in blocks) else 0
    user = count(body["messages"][0]["content"])
    usage = Usage(input_tokens=user + system - cached, output_tokens=body["max_tokens"],
                  cache_creation_input_tokens=cached)
    cost = cloud_cost_usd(body["model"], usage)
    assert cost is not None
    return cost


def graded_requests(fake: FakeAnthropic) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests_to("/v1/messages") if "output_config" in r.body]


def _largest_case_suite(*, diagnose: bool) -> tuple[Suite, dict[str, Any], list[str], str]:
    """A suite whose long case is graded with its passages the four densest chunks, cut as the runner cuts them
    (shown_texts, the answer prompt's budget), and an answer of max_tokens real tokens."""
    chunks = chunk_corpus(load_corpus(CORPUS), Suite.model_fields["chunking"].default_factory())  # type: ignore[misc]
    densest = sorted(chunks, key=lambda chunk: estimate_tokens(chunk.text), reverse=True)
    long_case = {"id": "long", "category": "c", "generate": True, "reference": densest[5].text[:600],
                 "question": "What does the carrier's estimate allow for " + densest[6].text[:300] + "?"}
    suite = Suite.model_validate({
        "cases": [{"id": "short", "category": "c", "generate": True, "question": "Drip edge?"}, long_case],
        "generation": {"context_chunks": 4, "max_context_tokens": 700, "max_tokens": 96},
        "grading": {"model": GRADER, "rate": 1.0, "diagnose": diagnose},
    })
    generation_config = suite.generation
    assert generation_config is not None
    context = shown_texts(densest[:4], generation_config.max_context_tokens)
    assert sum(estimate_tokens(text) for text in context) >= 0.9 * generation_config.max_context_tokens  # full
    answer = " ".join(PROSE.split()[:generation_config.max_tokens])
    return suite, long_case, context, answer


def test_the_projection_bounds_the_largest_real_grader_request_within_the_estimators_over_count(
    real_tokens: Count, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite, long_case, context, answer = _largest_case_suite(diagnose=False)
    assert suite.generation is not None and real_tokens(answer) <= suite.generation.max_tokens
    item = grade_inputs(long_case["question"], long_case["reference"], context, answer)

    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with FakeAnthropic(script=Reply.ok(grade_json())) as fake:
        setup = build_grading(suite, Budget(None), 1, key_present=True, base_url=fake.url)
        assert setup.plan is not None and setup.plan.grader is not None and setup.projected_usd is not None
        grade = asyncio.run(setup.plan.grader.grade(item))
        [body] = graded_requests(fake)
    assert grade.status == "graded"

    real = request_cost(body, real_tokens)
    projected_per_call = setup.projected_usd / setup.calls
    assert setup.calls == 2 and setup.claims_projected_usd is None
    assert real <= projected_per_call <= real * TOKEN_ESTIMATE_MAX_OVER, (real, projected_per_call)


def test_the_projection_counts_the_claims_checks_and_bounds_the_largest_real_one(
    real_tokens: Count, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite, long_case, context, answer = _largest_case_suite(diagnose=True)
    item = claims_input(long_case["question"], long_case["reference"], context,
                        [f"doc-{i}#0" for i in range(len(context))], answer)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    reply = Reply.ok(claims_json([("a claim", ["entailed"] * len(context), "entailed")], []))
    with FakeAnthropic(script=reply) as fake:
        setup = build_grading(suite, Budget(None), 1, key_present=True, base_url=fake.url)
        plan = setup.plan
        assert plan is not None and plan.diagnoser is not None and plan.grader is not None
        claims = asyncio.run(plan.diagnoser.diagnose(item))
        [body] = graded_requests(fake)
    assert claims.status == "diagnosed", claims.reason
    assert setup.claims_projected_usd is not None and setup.projected_usd is not None
    grades_only = build_grading(suite.model_copy(update={"grading": suite.grading.model_copy(
        update={"diagnose": False})}), Budget(None), 1, key_present=True, base_url="http://127.0.0.1:9")
    assert grades_only.projected_usd is not None
    assert setup.projected_usd == pytest.approx(grades_only.projected_usd + setup.claims_projected_usd)

    real = request_cost(body, real_tokens)
    projected_per_call = setup.claims_projected_usd / setup.calls
    assert real <= projected_per_call <= real * TOKEN_ESTIMATE_MAX_OVER, (real, projected_per_call)
    assert "and as many claims checks" in (setup.plan_line() or "")


def test_a_runs_projected_grading_cost_is_at_least_what_its_grader_spends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_tokens: Count
) -> None:
    """Every generating case graded (rate 1) on two tiers, the answers as long as max_tokens allows, the passages cut
    by a small context budget: the figure printed before the run bounds the fake's bill and the oracle's count."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_CHROMA_URL", raising=False)
    write_suite(
        tmp_path / "graded.yaml",
        name="graded",
        corpus=str(FIXTURE),
        variants=variants("bm25"),
        generation=generation(tiers=["local", "cloud"], context_chunks=3, max_context_tokens=120),
        grading={"rate": 1, "min_per_category": 0, "model": GRADER},
    )
    with FakeOpenAI(script=Reply.ok(PROSE)) as local, FakeAnthropic(
        script=lambda r: Reply.ok(grade_json()) if "output_config" in r.body else Reply.ok(PROSE)
    ) as cloud:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        code, output, run_dir = run(tmp_path, "--run-id", "r1", "--fleet", str(fleet_file(tmp_path / "f.yaml", local)),
                                    "--budget", "5")  # fmt: skip
        bodies = graded_requests(cloud)
    assert code == 0, output
    printed = re.search(r"projected grading cost: up to \$([0-9.]+) for (\d+) grades", " ".join(output.split()))
    assert printed is not None, output
    manifest = json.loads((run_dir / "manifest.json").read_text())["grader"]
    assert int(printed.group(2)) == len(bodies) == manifest["calls"] == 6  # 3 generating cases x 2 tiers
    assert float(printed.group(1)) == pytest.approx(manifest["projected_usd"], abs=5e-5)
    assert 0 < manifest["spent_usd"] <= manifest["projected_usd"]
    assert sum(request_cost(body, real_tokens) for body in bodies) <= manifest["projected_usd"]
