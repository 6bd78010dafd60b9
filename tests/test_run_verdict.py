"""A dead tier fails the run: the verdict (pure), and ``harness run`` end to end against loopback fakes.

The oracle for the pure part is counting by hand over records built here; for the end-to-end part it is the fake
servers' own scripts (which calls fail is known before the run starts).
"""

from __future__ import annotations

import json
from pathlib import Path

import _suites as suites
import pytest
from test_run_end_to_end import fleet_file, records, write_suite

from harness.cli.main import main
from harness.fakes import FakeOpenAI, Reply
from harness.fakes.script import RecordedRequest
from harness.run.verdict import DEFAULT_MAX_FAILURE_RATE, TierTally, judge, resolve_max_failure_rate, tally_tiers


def test_tally_counts_each_tier_asked_to_run_and_ignores_skipped_ones() -> None:
    outcomes = [
        ("local", "ok", None, False),
        ("cloud", "skipped", None, False),
        ("local", "failed", "fleet unavailable (a: down)", False),
        ("local", "failed", "fleet unavailable (a: down)", False),
        ("local", "failed", "timeout", False),
        ("local", "ok", None, True),  # replayed from the cache: no call, so neither answered nor failed
        ("cloud", "skipped", None, False),
    ]
    tallies = tally_tiers(outcomes, ["local"])
    assert set(tallies) == {"local"}
    local = tallies["local"]
    assert (local.calls, local.answered, local.failed, local.replayed) == (4, 1, 3, 1)
    assert local.failure_rate == pytest.approx(0.75)
    assert local.commonest_error() == ("fleet unavailable (a: down)", 2)


def test_a_tier_that_replayed_every_answer_made_no_call_and_is_not_judged() -> None:
    replayed = tally_tiers([("local", "ok", None, True)] * 6, ["local"])["local"]
    assert (replayed.calls, replayed.replayed, replayed.failure_rate) == (0, 6, None)
    assert not judge({"local": replayed}, 0.2).failed
    # replays do not hide a dead fleet: the calls it did make all failed
    dead = tally_tiers([("local", "ok", None, True)] * 5 + [("local", "failed", "timeout", False)] * 2, ["local"])
    assert judge(dead, 0.2).reasons[0].startswith("local tier answered none of its 2 calls")


def test_a_tier_that_answered_nothing_fails_the_run_whatever_the_limit() -> None:
    tallies = {"local": TierTally("local", answered=0, failed=80)}
    verdict = judge(tallies, 1.0)
    assert verdict.failed
    assert verdict.reasons == ("local tier answered none of its 80 calls",)
    assert verdict.to_manifest().status == "failed"
    local = verdict.to_manifest().tiers["local"].model_dump()
    assert local == {"calls": 80, "answered": 0, "failed": 80, "failure_rate": 1.0, "replayed": 0}


@pytest.mark.parametrize(
    ("failed", "limit", "fails"),
    [(16, 0.2, False), (17, 0.2, True), (0, 0.0, False), (1, 0.0, True), (79, 1.0, False)],
)
def test_the_failure_share_is_judged_against_the_limit(failed: int, limit: float, fails: bool) -> None:
    verdict = judge({"local": TierTally("local", answered=80 - failed, failed=failed)}, limit)
    assert verdict.failed is fails
    if fails:
        [reason] = verdict.reasons
        assert f"{failed} of 80 calls failed ({failed / 80:.0%}), over the limit of {limit:.0%}" in reason


def test_each_failing_tier_has_its_own_reason_and_a_tier_without_calls_is_not_judged() -> None:
    tallies = {
        "local": TierTally("local", answered=0, failed=3),
        "cloud": TierTally("cloud", answered=1, failed=2),
        "idle": TierTally("idle"),
    }
    verdict = judge(tallies, 0.2)
    assert [reason.split(" tier")[0] for reason in verdict.reasons] == ["local", "cloud"]
    assert not judge({"idle": TierTally("idle")}, 0.2).failed


def test_limit_precedence_and_range() -> None:
    assert resolve_max_failure_rate(None, None) == DEFAULT_MAX_FAILURE_RATE == 0.2
    assert resolve_max_failure_rate(None, 0.5) == 0.5
    assert resolve_max_failure_rate(0.0, 0.5) == 0.0  # the command line wins, even when it says zero
    with pytest.raises(ValueError, match="between 0 and 1"):
        judge({}, 1.5)


# ---------------------------------------------------------------------------------------------------- end to end


def harness(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """Run the ``harness`` console entry point in-process: exit code, stdout, stderr, as a shell would see them."""
    monkeypatch.setattr("sys.argv", ["harness", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def _fails_anchorage(request: RecordedRequest) -> Reply:
    # The "nowhere" case asks about Anchorage: 2 of the 6 local calls (its dense and hybrid variants) fail.
    return Reply.error(500, "model crashed") if "Anchorage" in json.dumps(request.body) else Reply.ok("36 inches")


def test_a_dead_local_tier_exits_3_and_the_manifest_and_report_say_why(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = write_suite(workdir / "mini.yaml", generation=True)
    with FakeOpenAI(script=Reply.error(500, "out of memory")) as dead:
        fleet = fleet_file(workdir / "fleet.yaml", dead)
        code, _, err = harness(capsys, monkeypatch, "run", str(suite), "--run-id", "dead", "--fleet", str(fleet), "-q")
    assert code == 3, err
    assert "run failed: local tier answered none of its 6 calls" in " ".join(err.split())
    assert "Traceback" not in err
    run_dir = workdir / "reports" / "mini" / "dead"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["verdict"]["tiers"]["local"] == {"calls": 6, "answered": 0, "failed": 6, "failure_rate": 1.0,
                                                     "replayed": 0}
    assert manifest["error"].startswith("local tier answered none of its 6 calls")
    assert "out of memory" in manifest["error"]  # the commonest error names the host's own complaint
    assert "cloud" not in manifest["verdict"]["tiers"]  # skipped (no key): not judged
    assert len(records(run_dir)) == 12  # every record was still written
    first_lines = (run_dir / "report.md").read_text().splitlines()[:3]
    assert any(line.startswith("**Run failed:** local tier answered none of its 6 calls") for line in first_lines)


def test_failures_over_the_limit_fail_the_run_and_a_higher_limit_lets_it_pass(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = write_suite(workdir / "mini.yaml", generation=True)
    with FakeOpenAI(script=_fails_anchorage) as host:
        fleet = fleet_file(workdir / "fleet.yaml", host)
        # --fresh: every answer is a call (the cache would answer a context dense and hybrid share only once)
        over = harness(capsys, monkeypatch, "run", str(suite), "--run-id", "over", "--fleet", str(fleet), "--json",
                       "--fresh")
        under = harness(capsys, monkeypatch, "run", str(suite), "--run-id", "under", "--fleet", str(fleet), "--json",
                        "--max-failure-rate", "0.5", "--fresh")
    assert over[0] == 3, over[2]
    summary = json.loads(over[1])  # --json still prints the summary before exiting 3
    assert summary["status"] == "failed"
    assert summary["failure_reasons"][0].startswith("local tier: 2 of 6 calls failed (33%), over the limit of 20%")
    assert under[0] == 0, under[2]
    assert json.loads(under[1])["status"] == "ok"
    run_dir = workdir / "reports" / "mini" / "under"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["error"] is None
    assert manifest["verdict"] == {
        "status": "passed", "reasons": [], "max_failure_rate": 0.5,
        "tiers": {"local": {"calls": 6, "answered": 4, "failed": 2, "failure_rate": pytest.approx(1 / 3),
                            "replayed": 0}},
    }
    report = (run_dir / "report.md").read_text()
    assert "Run failed" not in report
    assert "### Failed calls" in report  # failures under the limit are still listed


def test_the_suite_can_set_the_limit(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = suites.generation(tiers=["local", "cloud"], variants=["dense", "hybrid"], max_failure_rate=0.4)
    suite = suites.write_suite(workdir / "mini.yaml", generation=limited)
    with FakeOpenAI(script=_fails_anchorage) as host:
        fleet = fleet_file(workdir / "fleet.yaml", host)
        code, _, err = harness(capsys, monkeypatch, "run", str(suite), "--run-id", "s", "--fleet", str(fleet), "-q")
    assert code == 0, err
    manifest = json.loads((workdir / "reports" / "mini" / "s" / "manifest.json").read_text())
    assert manifest["verdict"]["max_failure_rate"] == 0.4
