"""``grading.judges`` in a suite: bad entries are refused before anything runs, exit 2, naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from _runs import main_exit

from harness.config.grading import PRIMARY_JUDGE, GradingConfig, JudgeConfig
from harness.config.suite import load_suite
from harness.errors import ConfigError

HEAD = """name: j
corpus: restoration
generation: {}
grading:
  rate: 1.0
  judges:
"""
TAIL = """cases:
  - {id: a, question: 'q?', reference: 'r.', category: c, generate: true, relevant: {d: 1}}
"""
OLLAMA = "{name: qwen, kind: ollama, url: 'http://127.0.0.1:9', model: 'qwen2.5:7b'}"


def write(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "judges.yaml"
    path.write_text(HEAD + "".join(f"    - {entry}\n" for entry in entries) + TAIL, encoding="utf-8")
    return path


def test_the_default_is_claude_alone_and_second_judges_follow_it(tmp_path: Path) -> None:
    assert [j.name for j in GradingConfig().judges] == [PRIMARY_JUDGE] and GradingConfig().second_judges == []
    suite = load_suite(write(tmp_path, "{name: claude}", OLLAMA, "{name: big, host: gpu-1}"))
    assert [j.name for j in suite.grading.judges] == ["claude", "qwen", "big"]
    qwen, big = suite.grading.second_judges
    assert qwen.base_url == "http://127.0.0.1:9" and qwen.kind == "ollama" and big.host == "gpu-1"


# line 7 is the first entry, 8 the second, 9 the third
@pytest.mark.parametrize(("entries", "line", "words"), [
    ((OLLAMA,), 7, "the first judge must be {name: claude}"),
    (("{name: claude}", OLLAMA, OLLAMA), 9, "duplicate judge name 'qwen'"),
    (("{name: claude}", "{name: qwen, kind: ollama, url: 'http://x:1'}"), 8, "missing: model"),
    (("{name: claude}", "{name: qwen, model: m}"), 8, "missing: url, kind"),
    (("{name: claude}", "{name: qwen, kind: ollama, url: 'http://x:1', model: m, temprature: 0}"), 8,
     "unknown key 'temprature'"),
    (("{name: claude, url: 'http://x:1'}",), 7, "takes no url"),
    (("{name: claude, model: claude-opus-4-1}",), 7, "takes no model"),
    (("{name: claude}", "{name: other, kind: anthropic}"), 8, "kind: anthropic is the primary judge only"),
    (("{name: claude}", "{name: qwen, kind: vllm, url: 'http://x:1', model: m}"), 8, "kind"),
    (("{name: claude}", "{name: qwen, kind: ollama, url: 'not a url', model: m}"), 8, "url"),
    (("{name: claude}", "{name: qwen, host: h0, model: m}"), 8, "takes its model from the fleet file"),
    (("{name: claude}", "{name: 'bad name', host: h0}"), 8, "name"),
    (("{name: claude}", "{name: qwen, kind: openai, url: 'http://x:1', model: m, cost: {watts: 10}, "
      "price: {input: 1, output: 2}}"), 8, "not both"),
    (("{name: claude}", "{name: qwen, kind: openai, url: 'http://x:1', model: m, price: {input: -1, output: 2}}"),
     8, "greater than or equal to 0"),
])
def test_a_bad_judges_entry_exits_2_naming_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], entries: tuple[str, ...],
                                                    line: int, words: str) -> None:
    path = write(tmp_path, *entries)
    with pytest.raises(ConfigError) as raised:
        load_suite(path)
    assert raised.value.line == line and words in raised.value.message, raised.value.message
    monkeypatch.chdir(tmp_path)
    assert main_exit(monkeypatch, "run", str(path)) == 2
    err = capsys.readouterr().err
    assert f"judges.yaml:{line}" in err and "Traceback" not in err


def test_an_empty_judges_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "judges.yaml"
    path.write_text(HEAD.replace("  judges:\n", "  judges: []\n") + TAIL, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_suite(path)
    assert raised.value.line == 6 and "judges" in str(raised.value)


def test_a_model_built_in_code_is_held_to_the_same_rules() -> None:
    with pytest.raises(ValueError, match="first judge must be"):
        GradingConfig(judges=[JudgeConfig(name="qwen", kind="ollama", url="http://x:1", model="m")])


def test_a_judge_host_missing_from_the_fleet_exits_2_naming_the_host_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fixture = Path(__file__).parent / "fixtures" / "mini_corpus"
    path = write(tmp_path, "{name: claude}", "{name: big,\n       host: gpu-9}")
    path.write_text(path.read_text().replace("corpus: restoration", f"corpus: {fixture}")
                    .replace("relevant: {d: 1}", "relevant: {code-r905-1-2-marlow: 1}"), encoding="utf-8")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("strategy: single\nhosts:\n  - {name: h0, url: 'http://127.0.0.1:9', kind: ollama, model: m}\n",
                     encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main_exit(monkeypatch, "run", str(path), "--fleet", str(fleet), "--run-id", "r") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "judges.yaml:9" in err and "'gpu-9', which the fleet file does not have" in err
    assert "hosts in the fleet file: h0" in err
    assert not (tmp_path / "reports" / "j" / "r").exists()  # refused before the run directory is claimed


def test_second_judges_are_built_without_an_anthropic_key_and_the_plan_line_names_their_cost(tmp_path: Path) -> None:
    from harness.config.suite import Case, GenerationConfig, Suite
    from harness.grading.setup import NO_KEY_REASON, build_grading
    from harness.money.budget import Budget

    grading = GradingConfig(rate=1.0, judges=[
        JudgeConfig(name="claude"),
        JudgeConfig(name="qwen", kind="ollama", url="http://127.0.0.1:9", model="qwen2.5:7b"),
        JudgeConfig(name="hosted", kind="openai", url="http://127.0.0.1:9/v1", model="m",
                    price={"input": 1.0, "output": 4.0}),  # type: ignore[arg-type]
    ])
    suite = Suite(name="s", generation=GenerationConfig(), grading=grading, cases=[
        Case(id=f"c{i}", question="q?", reference="r.", category="c", generate=True) for i in range(3)])
    setup = build_grading(suite, Budget(5.0), answering_tiers=2, key_present=False)
    assert setup.plan is not None and setup.plan.grader is None
    assert [j.name for j in setup.plan.judges] == ["qwen", "hosted"]
    assert setup.judges_projected_usd["qwen"] == 0.0 and setup.judges_projected_usd["hosted"] > 0
    assert setup.projected_usd == pytest.approx(setup.judges_projected_usd["hosted"])
    line = setup.plan_line() or ""
    assert line.startswith(NO_KEY_REASON)
    assert "second judge qwen (qwen2.5:7b on ollama server; self-hosted, no cost model given: counted as $0)" in line
    assert "second judge hosted (m on openai server; paid: up to $" in line
    manifest = setup.manifest()
    assert [(j["name"], j["kind"], j["paid"]) for j in manifest["second_judges"]] == [
        ("qwen", "ollama", False), ("hosted", "openai", True)]
    hosted = setup.plan.judges[1]
    assert hosted.budget.parent is setup.budget and setup.plan.judges[0].budget.parent is None
    import asyncio

    for judge in setup.plan.judges:
        asyncio.run(judge.aclose())
