"""``harness fleet``: ask the fleet a question, and show each host's status.

``fleet up``/``fleet down`` (the embedded llama.cpp fleet) register on the same ``fleet_app``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.cli.console import console, errors, plain, print_error, print_json
from harness.cli.options import JsonOpt
from harness.config.fleet import DEFAULT_FLEET, Fleet, Strategy, load_fleet
from harness.errors import HarnessError, InputError
from harness.localfleet.fleetfile import STREAM as LOCAL_STREAM
from harness.providers.base import HostStatus, Provider
from harness.providers.types import Generation, GenerationRequest

fleet_app = typer.Typer(
    name="fleet",
    help="Operate the local fleet: ask it a question, show its status.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

FleetOpt = Annotated[
    Path | None,
    typer.Option("--fleet", "-f", help=f"fleet file (default: {DEFAULT_FLEET}, written by `harness fleet up`)"),
]


@contextmanager
def _harness_errors() -> Iterator[None]:
    """Print a HarnessError as message + hint and exit with its code, also when this app runs on its own."""
    try:
        yield
    except HarnessError as exc:
        print_error(exc)
        raise typer.Exit(exc.exit_code) from None


def warn_models(warnings: list[str]) -> None:
    """Print the warnings about models that retire soon (untrusted text: no markup)."""
    for warning in warnings:
        errors.print(Text("warning: ", style="yellow").append(warning), highlight=False, soft_wrap=True)


def fleet_file(path: Path | None) -> Path:
    """The fleet file given, else ``.harness/fleet.yaml``; an InputError with a hint when there is none."""
    if path is None:
        if not DEFAULT_FLEET.exists():
            raise InputError(
                f"no --fleet given and {DEFAULT_FLEET} does not exist",
                hint="pass --fleet FILE, or start the bundled local fleet with `harness fleet up`",
            )
        path = DEFAULT_FLEET
    return path


def ask_request(fleet: Fleet, source: Path, question: str, *, system: str | None, max_tokens: int) -> GenerationRequest:
    """The question in the prompt style of the fleet's hosts, with no retrieved context.

    A completion host serves a base model: it needs the few-shot document and the stop sequences that end its answer
    at the line break, or it runs on. Chat hosts get the instructions as the system message.

    Raises:
        InputError: the fleet mixes completion and chat hosts (one request cannot suit both).
    """
    from harness.localfleet.prompt import build_request, fleet_prompt_style

    style = fleet_prompt_style(fleet, source)
    request = build_request(question, [], style=style, max_tokens=max_tokens)
    # No context to fit, so no context window to ask for: a num_ctx unlike the loaded one makes Ollama reload.
    request = replace(request, num_ctx=None)
    return replace(request, system=system) if system is not None else request


async def _ask(fleet: Fleet, source: Path, request: GenerationRequest, strategy: Strategy | None) -> Generation:
    from harness.dispatch import Dispatcher
    from harness.localfleet.liveness import local_liveness

    async with Dispatcher.from_fleet(fleet, host_probe=local_liveness(fleet, source)) as dispatcher:
        if dispatcher.cloud_off_reason:
            errors.print(f"[yellow]warning:[/] {escape(dispatcher.cloud_off_reason)}", highlight=False)
        return await dispatcher.generate(request, strategy=strategy)


@fleet_app.command()
def ask(
    question: Annotated[
        str, typer.Argument(help="the question, put in the hosts' prompt style (completion/chat)", show_default=False)
    ],
    fleet: FleetOpt = None,
    strategy: Annotated[
        Strategy | None, typer.Option("--strategy", "-s", help="override the fleet file's strategy")
    ] = None,
    system: Annotated[
        str | None, typer.Option("--system", help="replace the prompt style's instructions (chat: the system message)")
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="most tokens to generate")] = 256,
    json_out: JsonOpt = False,
) -> None:
    """Send one question through the dispatcher; print the answer, the winning host and every attempt.

    The question goes in the prompt style of the fleet's hosts, without retrieved context: completion hosts get the
    few-shot document with its stop sequences, chat hosts the answering instructions as the system message.
    """
    with _harness_errors():
        source = fleet_file(fleet)
        fleet_config = load_fleet(source)
        from harness.run.model_uses import check_fleet_models

        warn_models(check_fleet_models(fleet_config, source))
        request = ask_request(fleet_config, source, question, system=system, max_tokens=max_tokens)
        generation = asyncio.run(_ask(fleet_config, source, request, strategy))
    if json_out:
        print_json(generation.to_dict())
        return
    console.print(generation.text, markup=False, highlight=False)
    console.print()
    cost = "unknown" if generation.cost_usd is None else f"${generation.cost_usd:.6f}"
    console.print(
        f"[bold]winner:[/] {escape(generation.host)} ({generation.tier}, {escape(generation.model)}) "
        f"in {generation.latency_s * 1000:.0f} ms, cost {cost}",
        highlight=False,
    )
    console.print(attempts_table(generation))


def attempts_table(generation: Generation) -> Table:
    """Every attempt of one dispatched call, in launch order."""
    table = Table(title="attempts", title_justify="left")
    for column in ("host", "outcome", "status", "latency ms", "cancelled", "error"):
        table.add_column(
            column, justify="right" if column in ("status", "latency ms") else "left", no_wrap=column != "error"
        )
    colours = {"ok": "green", "error": "red", "timeout": "red", "cancelled": "yellow", "skipped": "dim"}
    for attempt in generation.attempts:
        table.add_row(
            plain(attempt.host),
            f"[{colours[attempt.outcome]}]{attempt.outcome}[/]",
            "" if attempt.status is None else str(attempt.status),
            f"{attempt.latency_s * 1000:.0f}",
            "yes" if attempt.cancelled else "",
            plain(attempt.error or ""),
        )
    return table


async def _probe(fleet: Fleet) -> list[tuple[HostStatus, float]]:
    """Each host's status() and how long it took, all hosts at once; never raises for an unreachable host."""
    from harness.providers.base import provider_for

    providers = [provider_for(host) for host in fleet.hosts]

    async def timed(provider: Provider) -> tuple[HostStatus, float]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(fleet.timeout_s):
                status = await provider.status()
        except TimeoutError:
            status = HostStatus(host=provider.name, reachable=False, error=f"no answer within {fleet.timeout_s:g}s")
        return status, time.perf_counter() - started

    try:
        return list(await asyncio.gather(*(timed(p) for p in providers)))
    finally:
        for provider in providers:
            await provider.aclose()


# `fleet status` exit codes. A host is up when it answers and does not lack its model.
EXIT_ALL_UP = 0
EXIT_NONE_UP = 3  # the fleet cannot answer: a runtime failure, like every other
EXIT_SOME_UP = 4  # degraded: it answers, with fewer hosts than configured


def status_exit_code(statuses: list[HostStatus]) -> int:
    """0 when every host is up, 3 when none is, 4 when some are."""
    up = sum(1 for s in statuses if s.reachable and s.model_present is not False)
    if up == len(statuses):
        return EXIT_ALL_UP
    return EXIT_NONE_UP if up == 0 else EXIT_SOME_UP


@fleet_app.command()
def status(fleet: FleetOpt = None, json_out: JsonOpt = False) -> None:
    """Show each host's reachability, server version, whether its model is present, and the probe's latency.

    Exit code: 0 when every host is up (reachable, model present), 3 when none is, 4 when only some are.
    """
    with _harness_errors():
        source = fleet_file(fleet)
        fleet_config = load_fleet(source)
        probes = _with_exit_reasons(fleet_config, source, asyncio.run(_probe(fleet_config)))
    code = status_exit_code([host_status for host_status, _ in probes])
    _show_status(fleet_config, probes, json_out)
    if code != EXIT_ALL_UP:
        raise typer.Exit(code)


def _with_exit_reasons(
    fleet_config: Fleet, source: Path, probes: list[tuple[HostStatus, float]]
) -> list[tuple[HostStatus, float]]:
    """For an embedded server that is gone, say how it ended instead of the connection error."""
    from harness.localfleet.liveness import local_liveness

    liveness = local_liveness(fleet_config, source)
    if liveness is None:
        return probes
    out = []
    for host_status, latency in probes:
        down = liveness(host_status.host) if not host_status.reachable else None
        out.append((replace(host_status, error=down) if down else host_status, latency))
    return out


def _show_status(fleet_config: Fleet, probes: list[tuple[HostStatus, float]], json_out: bool) -> None:
    if json_out:
        rows: list[dict[str, Any]] = []
        for host, (host_status, latency) in zip(fleet_config.hosts, probes, strict=True):
            rows.append({**asdict(host_status), "url": host.base_url, "kind": host.kind, "model": host.model,
                         "latency_s": latency})
        print_json(rows)
        return
    table = Table(title=f"fleet: {len(fleet_config.hosts)} host(s), strategy {fleet_config.strategy}, "
                  f"fallback {fleet_config.fallback}", title_justify="left")
    for column in ("host", "url", "kind", "model", "reachable", "version", "model present", "latency ms", "error"):
        table.add_column(
            column,
            justify="right" if column == "latency ms" else "left",
            no_wrap=column in ("host", "model"),
            overflow="fold",
        )
    for host, (host_status, latency) in zip(fleet_config.hosts, probes, strict=True):
        present = {None: "?", True: "[green]yes[/]", False: "[red]no[/]"}[host_status.model_present]
        table.add_row(  # names, urls, models, versions and errors come from files and servers: shown as text
            plain(host.name),
            plain(host.base_url),
            plain(host.kind),
            plain(host.model),
            "[green]yes[/]" if host_status.reachable else "[red]no[/]",
            plain(host_status.version or ""),
            present,
            f"{latency * 1000:.0f}",
            plain(host_status.error or ""),
        )
    console.print(table)


# --------------------------------------------------------------------------------------------------------------------
# The embedded local fleet: `fleet up` / `fleet down` start and stop llama.cpp servers with the bundled model
# (harness.localfleet). Kept in one block so the commands above stay independent of it.

StateDirOpt = Annotated[
    Path, typer.Option("--state-dir", help="where the local fleet keeps its state file, fleet file and logs")
]


@fleet_app.command()
def up(
    local: Annotated[int, typer.Option("--local", "-n", min=1, help="how many llama.cpp servers to start")] = 2,
    state_dir: StateDirOpt = DEFAULT_FLEET.parent,
    base_port: Annotated[
        int | None, typer.Option("--base-port", help="first port (then +1, +2 ...); default: free ports")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPU threads per server")] = 1,
    ctx: Annotated[int, typer.Option("--ctx", min=256, help="context window per server, in tokens")] = 2048,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="seconds to wait for every server to become healthy")
    ] = 120.0,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream/--no-stream",
            help="stream answers, so a cancelled race loser stops at once (streamed, the servers report no output "
            "token counts)",
        ),
    ] = LOCAL_STREAM,
    json_out: JsonOpt = False,
) -> None:
    """Start the embedded local fleet (llama.cpp servers with the bundled Gemma 3 270M) and write its fleet file."""
    from harness.localfleet.servers import start_local_fleet

    with _harness_errors():
        running = start_local_fleet(local, state_dir=state_dir, base_port=base_port, threads=threads, ctx=ctx,
                                    startup_timeout_s=timeout, stream=stream)
    if json_out:
        print_json({"fleet_file": str(running.fleet_path), "model": str(running.model_path), "stream": stream,
                    "servers": [asdict(server) | {"url": server.url} for server in running.servers]})
        return
    table = Table(title=f"local fleet: {len(running.servers)} llama.cpp server(s), model {running.model_alias}",
                  title_justify="left")
    for column in ("host", "url", "pid", "ready s", "log"):
        table.add_column(column, justify="right" if column in ("pid", "ready s") else "left")
    for server in running.servers:
        ready = "" if server.ready_s is None else f"{server.ready_s:.1f}"
        table.add_row(server.name, server.url, str(server.pid), ready, server.log)
    console.print(table)
    console.print(f"fleet file: {running.fleet_path}   (answers {'streamed' if stream else 'not streamed'}; "
                  "stop with `harness fleet down`)", highlight=False)


@fleet_app.command()
def down(state_dir: StateDirOpt = DEFAULT_FLEET.parent, json_out: JsonOpt = False) -> None:
    """Stop the embedded local fleet: only the servers `fleet up` started, checked by PID, start time and command."""
    from harness.localfleet.servers import stop_local_fleet

    with _harness_errors():
        report = stop_local_fleet(state_dir)
    if json_out:
        print_json(asdict(report))
        return
    if not (report.stopped or report.already_gone or report.not_ours):
        console.print(f"no local fleet recorded in {state_dir}", highlight=False)
        return
    console.print(f"stopped {len(report.stopped)} server(s)" + (f": pid {', '.join(map(str, report.stopped))}"
                                                                 if report.stopped else ""), highlight=False)
    if report.already_gone:
        console.print(f"already gone: pid {', '.join(map(str, report.already_gone))}", highlight=False)
    if report.not_ours:
        console.print(f"[yellow]left alone[/] (PID now belongs to another process): "
                      f"pid {', '.join(map(str, report.not_ours))}", highlight=False)

from harness.cli.fleet_bench import bench as _bench  # noqa: E402 -- its own module; registered here, after fleet_app

fleet_app.command("bench")(_bench)
