"""A run with Claude and a second judge, end to end through the CLI and the loopback fakes (the real ``anthropic`` SDK
for Claude, the Ollama and OpenAI-compatible providers for the second judge).

The scenario has a known truth: every answer carries its true quality level (0..3). Claude's fake grades the level,
plus a scripted bonus on answers in the cloud's own style (they open with "Certainly."): self-preference. The second
judge grades the level, with a little symmetric noise and no bonus. The difference of gaps between the judges must
come out near the bonus, with an interval that covers it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from _runs import invoke

from harness.config.grading import DEFAULT_GRADER_MODEL
from harness.fakes import FakeAnthropic, FakeOllama, FakeOpenAI, RecordedRequest, Reply
from harness.fakes.anthropic import grade_json
from harness.store.loaded import load_run
from harness.store.records import SCHEMA_VERSION

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"
DOCS = ["code-r905-1-2-marlow", "code-r905-1-2-model", "code-r905-1-2-port-ellis", "code-s500-drying-industry",
        "est-clm-24-0117-carrier", "est-clm-24-0117-contractor"]
PER_CATEGORY = 12
BONUS = 1 / 9  # +1 on one criterion of three, each 0..3: a ninth of the 0..1 score
JUDGE_MODEL = "qwen2.5:7b"


def suite_text(judges: str, grading: str = "rate: 1.0") -> str:
    cases = []
    for category, topic in (("code-section", "code"), ("jurisdiction", "county")):
        for i in range(PER_CATEGORY):
            cases.append(
                f"  - {{id: {topic}-{i}, question: 'Question {i} about the {topic} rule?', "
                f"reference: 'At least 36 inches inside the wall.', relevant: {{{DOCS[i % 6]}: 3}}, "
                f"category: {category}, generate: true}}"
            )
    return (
        f"name: judges\ncorpus: {FIXTURE}\nk: 3\nmetrics: [recall@3]\nvariants:\n  - {{name: bm25, retriever: bm25}}\n"
        "generation: {context_chunks: 1, max_tokens: 32, tiers: [local, cloud]}\n"
        f"grading:\n  {grading}\n  judges:\n{judges}"
        "advice: {tolerance: 0.05, calls_per_day: 1000}\n"
        "cases:\n" + "\n".join(cases) + "\n"
    )


def case_number(text: str) -> int:
    return int(re.search(r"Question (\d+)", text).group(1))  # type: ignore[union-attr]


def local_answer(request: RecordedRequest) -> Reply:
    if "response_format" in request.body:  # the fleet host asked to judge (see the host: judge test)
        return unbiased_grade(request.body["messages"][1]["content"])
    return Reply.ok(f"Level {case_number(json.dumps(request.body)) % 4}: at least 36 inches.", latency=0.01)


def answer_of(prompt: str) -> str:
    return prompt.split("<answer>")[1].split("</answer>")[0]


def claude(request: RecordedRequest) -> Reply:
    """The cloud tier's answers, and Claude's grades: the true level, + 1 correctness on the cloud's own style."""
    if "output_config" not in request.body:
        return Reply.ok(f"Certainly. Level {(case_number(json.dumps(request.body)) + 1) % 3}: at least 36 inches.")
    answer = answer_of(request.body["messages"][0]["content"])
    level = int(re.search(r"Level (\d)", answer).group(1))  # type: ignore[union-attr]
    bonus = 1 if answer.startswith("Certainly.") else 0
    return Reply.ok(grade_json(min(level + bonus, 3), level, level))


def unbiased_grade(prompt: str) -> Reply:
    """The other family: the true level, completeness off by one now and then (symmetric, away from the ends)."""
    answer = answer_of(prompt)
    level = int(re.search(r"Level (\d)", answer).group(1))  # type: ignore[union-attr]
    noise = (-1, 0, 0, 0, 1)[hashlib.sha256(prompt.encode()).digest()[0] % 5] if 1 <= level <= 2 else 0
    return Reply.ok(grade_json(level, level, level + noise))


def second_judge(request: RecordedRequest) -> Reply:
    return unbiased_grade(request.body["messages"][1]["content"])


def fleet_text(url: str) -> str:
    host = (f"{{name: h0, url: '{url}', kind: openai, endpoint: completion, model: gemma3-270m, "
            "cost: {watts: 65, usd_per_kwh: 0.15, hardware_usd_per_hour: 0.02}}")
    return f"strategy: single\ntimeout_s: 5\nfallback: none\nhosts:\n  - {host}\n"


def grade_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "grades.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    return tmp_path


def test_claude_and_a_second_judge_grade_the_same_sample_blind_and_the_self_preference_shows(env: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(script=local_answer) as local, FakeAnthropic(script=claude) as cloud, \
            FakeOllama(script=second_judge, models=(JUDGE_MODEL,)) as judge:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        judges = ("    - {name: claude}\n"
                  f"    - {{name: qwen, kind: ollama, url: '{judge.url}', model: '{JUDGE_MODEL}'}}\n")
        (env / "judges.yaml").write_text(suite_text(judges), encoding="utf-8")
        (env / "fleet.yaml").write_text(fleet_text(local.url), encoding="utf-8")
        invoke("run", "judges.yaml", "--run-id", "e2e", "--fleet", "fleet.yaml", "--budget", "5", "--quiet")
        run = env / "reports" / "judges" / "e2e"
        answers = 2 * PER_CATEGORY * 2
        asked = judge.generations
        # a resumed run asks no judge again for what it has graded
        invoke("run", "judges.yaml", "--resume", "e2e", "--fleet", "fleet.yaml", "--budget", "5", "--quiet")
        assert judge.generations == asked == answers
        claude_prompts = sorted(r.body["messages"][0]["content"] for r in cloud.requests
                                if r.path == "/v1/messages" and "output_config" in r.body)
        judge_prompts = sorted(r.body["messages"][1]["content"] for r in judge.requests if r.path == "/api/chat")
        judge_systems = {r.body["messages"][0]["content"] for r in judge.requests if r.path == "/api/chat"}

    # the same sample, the same blind prompts as Claude's: nothing names a host or model (the corpus says "local")
    assert judge_prompts == claude_prompts and len(judge_prompts) == answers
    assert len(judge_systems) == 1
    for text in [*judge_prompts, *judge_systems]:
        assert not re.search(rf"\b(h0|gemma3-270m|{re.escape(DEFAULT_GRADER_MODEL)}|qwen2\.5:7b|tier: )\b", text, re.I)

    lines = grade_lines(run)
    by_judge = {name: [line for line in lines if line["judge"] == name] for name in ("claude", "qwen")}
    assert len(by_judge["claude"]) == len(by_judge["qwen"]) == answers and len(lines) == 2 * answers
    assert all(line["schema_version"] == 2 and line["grade"]["status"] == "graded" for line in lines)
    assert {line["grade"]["grader_model"] for line in by_judge["qwen"]} == {JUDGE_MODEL}
    assert all(line["grade"]["cost_usd"] == 0.0 for line in by_judge["qwen"])  # self-hosted, no cost model

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    [info] = manifest["grader"]["second_judges"]
    assert info["name"] == "qwen" and info["kind"] == "ollama" and info["model"] == JUDGE_MODEL
    assert info["paid"] is False and info["counts"] == {"graded": answers}

    # Claude's grade stays the one on the case record (the drift reads it)
    view = load_run(run)
    assert {g.grade.grader_model for r in view.records for g in r.generations.values()} == {DEFAULT_GRADER_MODEL}
    assert set(view.second_judges) == {"qwen"} and len(view.second_judges["qwen"]) == answers

    result = json.loads(invoke("judge", str(run), "--json"))
    [comparison] = result["judges"]
    assert comparison["judge"] == "qwen" and comparison["both_graded"] == answers and comparison["enough"]
    overall = next(c for c in comparison["criteria"] if c["name"] == "overall")
    assert overall["n"] == answers and overall["kappa"]["low"] is not None and overall["alpha"]["low"] is not None
    assert 0.5 < overall["kappa"]["estimate"] < 1.0  # close, but Claude's bonus keeps them apart
    rows = {row["category"]: row for row in comparison["gaps"]}
    assert set(rows) == {"code-section", "jurisdiction", "(all)"}
    everything = rows["(all)"]["difference"]
    assert everything["n"] == 2 * PER_CATEGORY
    assert abs(everything["estimate"] - BONUS) < 0.04
    assert everything["low"] < BONUS < everything["high"] and everything["low"] > 0
    # each judge's own gap: Claude's is the other's minus the bonus
    assert rows["(all)"]["primary_gap"]["estimate"] == pytest.approx(rows["(all)"]["second_gap"]["estimate"]
                                                                   - everything["estimate"])

    report = (run / "report.md").read_text()
    section = report.split("### Judge against judge")[1].split("\n## ")[0]
    assert "difference (qwen − claude)" in section and "| (all) | 24 |" in section


def test_a_fleet_host_can_judge_at_its_cost_model_outside_the_cloud_budget(env: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(script=local_answer) as local, FakeAnthropic(script=claude) as cloud:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        (env / "judges.yaml").write_text(suite_text("    - {name: claude}\n    - {name: fleet-judge, host: h0}\n",
                                                    "rate: 0.25\n  min_per_category: 2"), encoding="utf-8")
        (env / "fleet.yaml").write_text(fleet_text(local.url), encoding="utf-8")
        invoke("run", "judges.yaml", "--run-id", "host", "--fleet", "fleet.yaml", "--budget", "5", "--quiet")
        structured = [r for r in local.requests if isinstance(r.body, dict) and "response_format" in r.body]
    run = env / "reports" / "judges" / "host"
    sampled = 2 * 3  # 25% of 12 per category
    assert len(structured) == sampled * 2
    assert all(r.path == "/v1/chat/completions" for r in structured)  # the chat endpoint, whatever the host's
    mine = [line for line in grade_lines(run) if line["judge"] == "fleet-judge"]
    assert len(mine) == sampled * 2 and all(line["grade"]["status"] == "graded" for line in mine)
    assert all(line["grade"]["cost_usd"] > 0 for line in mine)  # the host's watts and hardware, for the time it took
    manifest = json.loads((run / "manifest.json").read_text())
    [info] = manifest["grader"]["second_judges"]
    assert info["where"] == "fleet host h0" and info["paid"] is False
    assert info["spent_usd"] == pytest.approx(sum(line["grade"]["cost_usd"] for line in mine))
    claude_spent = manifest["grader"]["spent_usd"]
    assert claude_spent == pytest.approx(sum(line["grade"]["cost_usd"] for line in grade_lines(run)
                                             if line["judge"] == "claude"))  # none of the judge's local dollars


def test_a_paid_judge_is_held_to_the_grading_budget(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(script=local_answer) as local, FakeAnthropic(script=claude) as cloud, \
            FakeOpenAI(script=lambda r: unbiased_grade(r.body["messages"][1]["content"]), model="gpt-judge") as paid:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        monkeypatch.setenv("JUDGE_TOKEN", "sk-test-judge")
        judges = (f"    - {{name: claude}}\n    - {{name: paid, kind: openai, url: '{paid.url}/v1', model: gpt-judge, "
                  "token_env: JUDGE_TOKEN, price: {input: 20, output: 80}}\n")
        (env / "judges.yaml").write_text(suite_text(judges, "rate: 1.0\n  max_usd: 0.5"), encoding="utf-8")
        (env / "fleet.yaml").write_text(fleet_text(local.url), encoding="utf-8")
        output = invoke("run", "judges.yaml", "--run-id", "paid", "--fleet", "fleet.yaml", "--budget", "5")
        auth = {r.headers.get("authorization") for r in paid.requests}
    assert auth == {"Bearer sk-test-judge"}
    assert "second judge paid (gpt-judge on openai server; paid: up to $" in " ".join(output.split())
    run = env / "reports" / "judges" / "paid"
    grades = grade_lines(run)
    mine = [line["grade"] for line in grades if line["judge"] == "paid"]
    graded = [g for g in mine if g["status"] == "graded"]
    refused = [g for g in mine if g["status"] == "unmeasured"]
    # at these list prices a grade costs a few cents: the grading cap stops the judge part way, and says why
    assert graded and refused and all(g["reason"].startswith("budget: grading budget") for g in refused)
    for g in graded:
        assert g["cost_usd"] == pytest.approx((g["input_tokens"] * 20 + g["output_tokens"] * 80) / 1e6)
    manifest = json.loads((run / "manifest.json").read_text())
    claude_usd = sum(line["grade"]["cost_usd"] or 0 for line in grades if line["judge"] == "claude")
    assert manifest["grader"]["spent_usd"] == pytest.approx(claude_usd + sum(g["cost_usd"] for g in graded))
    assert manifest["grader"]["spent_usd"] <= 0.5 + 1e-9
    [info] = manifest["grader"]["second_judges"]
    assert info["paid"] is True and info["spent_usd"] == pytest.approx(sum(g["cost_usd"] for g in graded))


def test_merged_shards_keep_every_judges_grades(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(script=local_answer) as local, FakeAnthropic(script=claude) as cloud:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        (env / "judges.yaml").write_text(suite_text("    - {name: claude}\n    - {name: fleet-judge, host: h0}\n",
                                                    "rate: 0.25\n  min_per_category: 2"), encoding="utf-8")
        (env / "fleet.yaml").write_text(fleet_text(local.url), encoding="utf-8")
        for shard in ("1/2", "2/2"):
            invoke("run", "judges.yaml", "--run-id", f"s{shard[0]}", "--fleet", "fleet.yaml", "--quiet",
                   "--shard", shard)
    runs = env / "reports" / "judges"
    invoke("merge", str(runs / "s1"), str(runs / "s2"), "--run-id", "joined", "--json")
    shards = {name: grades for s in ("s1", "s2") for name, grades in load_run(runs / s).second_judges.items()}
    joined = load_run(runs / "joined").second_judges
    expected = {key for s in ("s1", "s2") for key in load_run(runs / s).second_judges.get("fleet-judge", {})}
    assert set(joined) == set(shards) == {"fleet-judge"} and set(joined["fleet-judge"]) == expected
    view = load_run(runs / "joined")
    claude_graded = {(r.case_id, r.variant, t) for r in view.records for t, g in r.generations.items()
                     if g.grade.status == "graded"}
    assert expected == claude_graded and len(expected) >= 2 * 2 * 2  # the same sample as Claude, in every shard
