"""A ladder of five tiers end to end over loopback fakes: three fleets (two OpenAI-compatible, one Ollama) and two
Claude models behind the Anthropic fake (per-model answers, scripted grades, through the real SDK).

The scripted truth: fleet-small is wrong everywhere; fleet-8b is right on code questions and wrong on county ones;
fleet-32b and both Claude models are right everywhere, but fleet-32b's hardware makes it costlier than the reference.
So the advice is fleet-8b for code-section and haiku for jurisdiction.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _runs import invoke, records
from _wait import eventually

from harness.fakes import FakeAnthropic, FakeOllama, FakeOpenAI, RecordedRequest, Reply
from harness.fakes.anthropic import grade_json
from harness.fakes.script import by_model
from harness.money import costs
from harness.money.lifecycle import TODAY_ENV
from harness.store.loaded import load_run
from harness.store.records import Manifest, TierInfo

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"
REPO = Path(__file__).resolve().parent.parent
DOCS = ["code-r905-1-2-marlow", "code-r905-1-2-model", "code-r905-1-2-port-ellis", "code-s500-drying-industry",
        "est-clm-24-0117-carrier", "est-clm-24-0117-contractor"]
RIGHT = "At least 36 inches inside the wall."
WRONG = "WRONG: 12 inches is enough everywhere."
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-6"
TIER_WORDS = ("fleet-small", "fleet-8b", "fleet-32b", "haiku", "sonnet", "small0", "b8", "b32", "gemma", "qwen")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(TODAY_ENV, "2026-12-07")
    monkeypatch.delenv(costs.PRICING_ENV, raising=False)
    monkeypatch.delenv("HARNESS_CHROMA_URL", raising=False)
    costs.use_pricing()
    return tmp_path


GATE = (
    "gate:\n  non_inferiority:\n"
    "    - {metric: graded_score, tier: haiku, non_inferiority_to: sonnet, margin: 0.05}\n"
    "    - {metric: graded_score, tier: fleet-8b, non_inferiority_to: sonnet, margin: 0.05, category: code-section}\n"
    "    - {metric: graded_score, tier: fleet-8b, non_inferiority_to: sonnet, margin: 0.05, category: jurisdiction,"
    " name: county-8b}\n"
    "  failure_rate:\n    - {tier: fleet-32b, max: 0.1}\n"
)


def suite_text(tiers: str, cases_per_category: int = 6, reference: str = "sonnet", extra: str = "") -> str:
    cases = []
    for category, topic in (("code-section", "code"), ("jurisdiction", "county")):
        for i in range(cases_per_category):
            cases.append(
                f"  - {{id: {topic}-{i}, question: 'Question {i} about the {topic} rule?', reference: '{RIGHT}', "
                f"relevant: {{{DOCS[i % len(DOCS)]}: 3}}, category: {category}, generate: true}}"
            )
    return (
        f"name: ladder\ncorpus: {FIXTURE}\nk: 3\nmetrics: [recall@3]\nvariants:\n  - {{name: bm25, retriever: bm25}}\n"
        f"generation:\n  context_chunks: 1\n  max_tokens: 32\n  tiers:\n{tiers}  reference: {reference}\n"
        "grading: {rate: 1.0}\n"
        "advice: {tolerance: 0.05, calls_per_day: 10000}\n" + extra +
        "cases:\n" + "\n".join(cases) + "\n"
    )


LADDER = (
    "    - {name: fleet-small, fleet: fleets/small.yaml}\n"
    "    - {name: fleet-8b, fleet: fleets/8b.yaml}\n"
    "    - {name: fleet-32b, fleet: fleets/missing.yaml}\n"  # overridden with --fleet fleet-32b=FILE
    f"    - {{name: haiku, cloud: {HAIKU}}}\n"
    f"    - {{name: sonnet, cloud: {SONNET}}}\n"
)


def fleet_text(host: str, url: str, kind: str, model: str, hardware: float, timeout: float = 5) -> str:
    endpoint = ", endpoint: completion" if kind == "openai" else ""
    return (f"strategy: single\ntimeout_s: {timeout}\nfallback: none\nhosts:\n"
            f"  - {{name: {host}, url: '{url}', kind: {kind}{endpoint}, model: '{model}', "
            f"cost: {{watts: 65, usd_per_kwh: 0.15, hardware_usd_per_hour: {hardware}}}}}\n")


def county(request: RecordedRequest) -> bool:
    return "about the county rule" in json.dumps(request.body)


def small_answer(request: RecordedRequest) -> Reply:
    return Reply.ok(WRONG)


def eight_b_answer(request: RecordedRequest) -> Reply:
    return Reply.ok(WRONG if county(request) else RIGHT)


def grade(request: RecordedRequest) -> Reply:
    """The grader (blind: it sees the question, reference and answer only) scores a WRONG answer 0, others 3."""
    answer = request.body["messages"][0]["content"].split("<answer>")[1].split("</answer>")[0]
    if "WRONG" in answer:
        return Reply.ok(grade_json(0, 0, 0, confident_but_wrong=True, rationale="Contradicts the reference."))
    return Reply.ok(grade_json(3, 3, 3))


def claude(request: RecordedRequest) -> Reply:
    """Haiku and Sonnet answer right; a request with ``output_config`` is a grade (Sonnet 4.6 is the grader too)."""
    if "output_config" in request.body:
        return grade(request)
    return Reply.ok(RIGHT)


class Fleets:
    """Three fleet fakes and the Anthropic fake, with their fleet files under ``fleets/``."""

    def __init__(self, workdir: Path, small: object = small_answer) -> None:
        self.small = FakeOpenAI(script=small_answer if small is small_answer else small)  # type: ignore[arg-type]
        self.eight = FakeOpenAI(script=eight_b_answer)
        self.big = FakeOllama(script=Reply.ok(RIGHT), models=("qwen2.5:32b",))
        self.cloud = FakeAnthropic(script=by_model({HAIKU: claude, SONNET: claude}))
        self.dir = workdir / "fleets"
        self.dir.mkdir(exist_ok=True)

    def __enter__(self) -> Fleets:
        for fake in (self.small, self.eight, self.big, self.cloud):
            fake.start()
        (self.dir / "small.yaml").write_text(fleet_text("small0", self.small.url, "openai", "gemma3-270m", 0.005))
        (self.dir / "8b.yaml").write_text(fleet_text("b8", self.eight.url, "openai", "llama3.1-8b", 0.01))
        (self.dir / "32b.yaml").write_text(fleet_text("b32", self.big.url, "ollama", "qwen2.5:32b", 0.5))
        return self

    def __exit__(self, *exc: object) -> None:
        for fake in (self.small, self.eight, self.big, self.cloud):
            fake.stop()

    def env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", self.cloud.url)

    @property
    def override(self) -> list[str]:
        return ["--fleet", f"fleet-32b={self.dir / '32b.yaml'}"]


def test_the_advice_follows_the_scripted_truth_per_category(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = workdir / "ladder.yaml"
    suite.write_text(suite_text(LADDER, extra=GATE), encoding="utf-8")
    with Fleets(workdir) as fleets:
        fleets.env(monkeypatch)
        invoke("run", str(suite), "--run-id", "e2e", *fleets.override, "--budget", "5", "--quiet")
        messages = fleets.cloud.requests_to("/v1/messages")
        answered = {fake: len(fake.requests_to(path)) for fake, path in (
            (fleets.small, "/v1/completions"), (fleets.eight, "/v1/completions"), (fleets.big, "/api/chat"))}
    run_dir = workdir / "reports" / "ladder" / "e2e"
    manifest = Manifest.model_validate_json((run_dir / "manifest.json").read_text())
    assert manifest.schema_version == 5 and manifest.status == "complete"
    assert {name: (info.status, info.kind) for name, info in manifest.tiers.items()} == {
        "fleet-small": ("run", "local"), "fleet-8b": ("run", "local"), "fleet-32b": ("run", "local"),
        "haiku": ("run", "cloud"), "sonnet": ("run", "cloud")}
    assert manifest.tiers["haiku"].model == HAIKU and manifest.tiers["fleet-32b"].fleet is not None
    # each fleet answered every generation case through its own dispatcher
    assert all(count == 12 for count in answered.values()), answered
    answers = [m for m in messages if "output_config" not in m.body]
    assert sorted({m.body["model"] for m in answers}) == [HAIKU, SONNET] and len(answers) == 24
    # the grader is blind: no grade request names a tier, a host or a fleet model
    grades = [m for m in messages if "output_config" in m.body]
    assert len(grades) == 5 * 12
    for request in grades:
        text = json.dumps(request.body["messages"]).lower()
        assert not any(word in text for word in TIER_WORDS), text
    # the same cases are graded on every tier
    gen = load_run(run_dir).generation
    graded = gen[gen["grade_status"] == "graded"]
    assert set(graded["case_id"]) == {f"{t}-{i}" for t in ("code", "county") for i in range(6)}
    assert len(graded) == 60 and graded.groupby("tier").size().to_dict() == dict.fromkeys(manifest.tiers, 12)

    report = (run_dir / "report.md").read_text()
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[:3] == ["## Verdict", "## Contents", "## Ladder of tiers"], sections  # the first section
    ladder = report.split("## Ladder of tiers")[1].split("\n## ")[0]
    order = [line.split("|")[1].strip().strip("*") for line in ladder.splitlines()
             if line.startswith("| ") and not line.startswith("| tier")]
    assert order == ["fleet-small", "fleet-8b", "haiku", "sonnet", "fleet-32b"], order  # cheapest first
    advice = report.split("## Tiering advice over the ladder")[1].split("\n## ")[0]
    assert "| code-section | **fleet-8b** |" in advice, advice
    assert "| jurisdiction | **haiku** |" in advice, advice
    assert "Bonferroni over 6 decisions" in advice  # 2 categories x 3 tiers cheaper than the reference
    assert "all on the reference" in advice and "break-even" in advice
    drift = report.split("## Drift against the reference (sonnet)")[1].split("\n## ")[0]
    county_8b = next(line for line in drift.splitlines() if line.startswith("| fleet-8b | jurisdiction |"))
    assert "| 6 | 6 | -1.000 [-1.000, -1.000] n=6" in county_8b
    cheap = report.split("### Cheap metric against the reference")[1].split("\n## ")[0]
    assert all(f"| {tier} | (all) |" in cheap for tier in ("fleet-small", "fleet-8b", "haiku")), cheap
    assert "| fleet-32b |" not in cheap  # costlier than the reference: not compared
    assert "Local vs cloud" not in report  # the built-in pair's section has no place in a ladder's report
    html = (run_dir / "report.html").read_text()
    assert "quality against cost" in html or html.count("data:image/png;base64,") >= 1

    # gate rules name tiers: haiku holds against sonnet; fleet-8b holds on code questions, not on county ones
    gate = json.loads(invoke("gate", str(run_dir), "--json", code=1))
    verdicts = {rule["name"]: rule["verdict"] for rule in gate["rules"]}
    assert verdicts == {"grade_score[tier=haiku] vs sonnet": "pass",
                        "grade_score[tier=fleet-8b, category=code-section] vs sonnet": "pass",
                        "county-8b": "fail", "failure_rate[tier=fleet-32b]": "pass"}, verdicts
    history = invoke("history", "ladder", "--reports", str(workdir / "reports"), "--json")
    assert all(f"graded_score[{tier}]" in history for tier in manifest.tiers), history


def test_a_missing_fleet_file_without_override_exits_2_naming_the_line(workdir: Path) -> None:
    suite = workdir / "ladder.yaml"
    suite.write_text(suite_text(LADDER), encoding="utf-8")
    with Fleets(workdir):
        out = invoke("run", str(suite), "--run-id", "nope", "--quiet", code=2)
    assert "ladder.yaml:13" in out and "fleet-32b" in out and "does not exist" in out, out
    assert not (workdir / "reports" / "ladder" / "nope").exists()


@pytest.mark.parametrize(("entries", "reference", "line", "words"), [
    ("    - {name: a, cloud: claude-haiku-4-5}\n    - {name: a, cloud: claude-sonnet-4-6}\n", "a", 12,
     "duplicate tier name 'a' (first at line 11)"),
    ("    - {name: a, cloud: claude-haiku-4-5, fleet: f.yaml}\n", "a", 11, "both fleet: and cloud:"),
    ("    - {name: a, cloud: claude-haiku-4-5}\n", "opus", 12, "unknown reference tier 'opus'"),
    ("    - {name: a, cloud: claude-haiku-9}\n", "a", 11, "unknown Claude model 'claude-haiku-9'"),
    ("    - {name: a, cloud: claude-3-haiku}\n", "a", 11, "retired on"),
    ("    - {name: 9a, cloud: claude-haiku-4-5}\n", "9a", 11, "should match pattern"),
])
def test_a_bad_tier_list_exits_2_naming_the_line(workdir: Path, entries: str, reference: str, line: int,
                                                 words: str) -> None:
    suite = workdir / "bad.yaml"
    suite.write_text(suite_text(entries, cases_per_category=1, reference=reference), encoding="utf-8")
    out = invoke("run", str(suite), "--run-id", "bad", "--quiet", code=2)
    assert f"bad.yaml:{line}" in out and words in out, out
    assert "Traceback" not in out
    assert not (workdir / "reports").exists()


def test_a_dead_fleet_tier_fails_the_run_with_exit_3(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = workdir / "ladder.yaml"
    suite.write_text(suite_text(LADDER), encoding="utf-8")
    with Fleets(workdir, small=Reply.error(500, "the server is down")) as fleets:
        fleets.env(monkeypatch)
        out = invoke("run", str(suite), "--run-id", "dead", *fleets.override, "--quiet", code=3)
    assert "fleet-small" in out, out
    manifest = json.loads((workdir / "reports" / "ladder" / "dead" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["verdict"]["tiers"]["fleet-small"]["answered"] == 0
    assert manifest["verdict"]["tiers"]["fleet-8b"]["failed"] == 0
    assert any("fleet-small" in reason for reason in manifest["verdict"]["reasons"])


def test_shards_of_a_ladder_run_merge(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = workdir / "ladder.yaml"
    suite.write_text(suite_text(LADDER), encoding="utf-8")
    runs = workdir / "reports" / "ladder"
    with Fleets(workdir) as fleets:
        fleets.env(monkeypatch)
        for shard in ("1/2", "2/2"):
            invoke("run", str(suite), "--run-id", f"s{shard[0]}", *fleets.override, "--quiet", "--no-cache",
                   "--shard", shard)
    out = json.loads(invoke("merge", str(runs / "s1"), str(runs / "s2"), "--run-id", "joined", "--json"))
    assert out["status"] == "complete", out
    joined = records(runs / "joined")
    assert len(joined) == 12
    assert all(set(r["generations"]) == {"fleet-small", "fleet-8b", "fleet-32b", "haiku", "sonnet"} for r in joined)
    report = (runs / "joined" / "report.md").read_text()
    assert "| code-section | **fleet-8b** |" in report and "| jurisdiction | **haiku** |" in report


def test_a_ladder_run_killed_and_resumed_completes_without_duplicates(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = workdir / "ladder.yaml"
    suite.write_text(suite_text(LADDER), encoding="utf-8")
    run_dir = workdir / "reports" / "ladder" / "killed"
    log = run_dir / "cases.jsonl"

    def stall_last(request: RecordedRequest) -> Reply:  # the last county case never answers until the resume
        return Reply.hang() if "Question 5 about the county" in json.dumps(request.body) else eight_b_answer(request)

    with Fleets(workdir) as fleets:
        fleets.eight.script = stall_last
        (fleets.dir / "8b.yaml").write_text(fleet_text("b8", fleets.eight.url, "openai", "llama3.1-8b", 0.01, 120))
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": fleets.cloud.url, TODAY_ENV: "2026-12-07"}
        command = [sys.executable, "-m", "harness.cli.main", "run", str(suite), "--run-id", "killed",
                   *fleets.override, "--quiet", "--no-cache", "--concurrency", "1"]
        child = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:  # every case but the stalled one is logged, or the run ended early
            eventually(lambda: child.poll() is not None or (log.exists() and len(log.read_text().splitlines()) >= 11),
                       timeout=300)
            assert child.poll() is None, child.communicate()
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=30)
        assert len(log.read_text().splitlines()) == 11
        fleets.eight.script = eight_b_answer
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fleets.cloud.url)
        invoke("run", str(suite), "--resume", "killed", *fleets.override, "--quiet", "--no-cache")
    done = records(run_dir)
    assert len(done) == 12 and len({r["case_id"] for r in done}) == 12
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    report = (run_dir / "report.md").read_text()
    assert "| code-section | **fleet-8b** |" in report and "| jurisdiction | **haiku** |" in report


def test_a_version_2_manifest_reads_its_tiers_as_the_built_in_pair(tmp_path: Path) -> None:
    """Before schema 5 a tier had no kind: its name is its kind, and a v2 run still reads (lifted to 5)."""
    assert TierInfo(status="run").kind_of("cloud") == "cloud"
    assert TierInfo(status="run").kind_of("local") == "local"
    from harness.store.records import SuiteInfo
    from harness.store.store import RunStore

    suite = SuiteInfo(name="old", path="old.yaml", sha256="0" * 64, cases=0, variants=["dense"], metrics=[], k=5)
    RunStore.create(tmp_path / "run", Manifest(run_id="run", suite=suite,
                                               tiers={"local": TierInfo(status="run")}))
    data = json.loads((tmp_path / "run" / "manifest.json").read_text())
    data["schema_version"] = 2
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(data))
    view = load_run(tmp_path / "run")
    assert view.manifest.schema_version == 5 and view.manifest.tiers["local"].kind_of("local") == "local"


def test_a_fleet_tiers_cloud_fallback_is_reported_as_its_fallback(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fleet-small's host is down and its fleet falls back to Haiku: those answers stay fleet-small's, marked as
    fallbacks, and the haiku tier's own calls and cost are not mixed with them."""
    suite = workdir / "ladder.yaml"
    suite.write_text(suite_text(LADDER), encoding="utf-8")
    with Fleets(workdir, small=Reply.error(500, "the server is down")) as fleets:
        fleets.env(monkeypatch)
        text = fleet_text("small0", fleets.small.url, "openai", "gemma3-270m", 0.005)
        text = text.replace("fallback: none", f"fallback: cloud\ncloud_model: {HAIKU}")
        (fleets.dir / "small.yaml").write_text(text)
        invoke("run", str(suite), "--run-id", "fb", *fleets.override, "--budget", "5", "--quiet")
        haiku_calls = [m for m in fleets.cloud.requests_to("/v1/messages")
                       if m.body["model"] == HAIKU and "output_config" not in m.body]
    run_dir = workdir / "reports" / "ladder" / "fb"
    gen = load_run(run_dir).generation
    small = gen[gen["tier"] == "fleet-small"]
    assert len(small) == 12 and small["fallback"].all() and (small["status"] == "ok").all()
    assert len(gen[gen["tier"] == "haiku"]) == 12 and not gen[gen["tier"] == "haiku"]["fallback"].any()
    assert len(haiku_calls) == 24  # haiku's own 12, and fleet-small's 12 fallbacks
    ladder = (run_dir / "report.md").read_text().split("## Ladder of tiers")[1].split("\n## ")[0]
    haiku_row = next(line for line in ladder.splitlines() if line.startswith("| haiku |"))
    assert haiku_row.split("|")[5].strip().endswith("n=12")  # $ per 1,000 calls over haiku's own 12 calls
    small_row = next(line for line in ladder.splitlines() if line.startswith("| fleet-small |"))
    assert "no fresh call" in small_row  # its fallbacks are not priced as the fleet's own calls
