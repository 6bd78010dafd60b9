"""``harness view``: the local web viewer over run stores, or (``--export``) its pages as a static bundle."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from harness.cli.console import errors, plain
from harness.errors import InputError

if TYPE_CHECKING:  # loading the viewer (pandas, jinja2) waits for the command itself
    from harness.grading.passages import Passages
    from harness.store.loaded import RunView
    from harness.store.records import Manifest
    from harness.view.summary import ReportOutline

DEFAULT_PORT = 8765


def report_outline(view: RunView) -> ReportOutline | None:
    """The run's report verdict, advice and sections, for the run page (the viewer cannot import the report)."""
    from harness.report.markdown import build_report
    from harness.view.summary import ReportOutline

    if view.manifest.suite is None:
        return None
    report = build_report(view)
    advice = next((s for s in report.sections if s.title == "Tiering advice"), None)
    return ReportOutline(
        verdict=list(report.verdict),
        banner=report.banner,
        advice="\n\n".join(block.markdown for block in advice.blocks) if advice is not None else None,
        sections=[(s.title, s.anchor, s.level) for s in report.sections],
    )


def run_passages(run_dir: Path, manifest: Manifest) -> Passages:
    """The run's passages rebuilt from its suite and corpus, as the terminal labeller shows them (the viewer cannot
    load a suite itself), or why they cannot be."""
    from harness.cli.label import load_passages

    suite, corpus = manifest.suite, manifest.corpus
    return load_passages(run_dir, suite.path if suite else None, corpus.fingerprint if corpus else None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def view(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="the reports folder to serve (default reports); with --export, the run directories to bundle",
        show_default=False)] = None,
    host: Annotated[str, typer.Option("--host", help="address to bind; anything but loopback is reachable by others")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on")] = DEFAULT_PORT,
    read_only: Annotated[bool, typer.Option("--read-only", help="no labelling: nothing is ever written")] = False,
    export: Annotated[Path | None, typer.Option("--export", help="write a static bundle of RUN_DIRs to this folder "
                                                "(opens from disk; no labelling)", show_default=False)] = None,
) -> None:
    """Browse runs in a web browser: runs, cases (filter, sort), one case whole, diffs of two runs, blind labelling."""
    if export is not None:
        from harness.view.export import export_bundle

        if not paths:
            raise InputError("--export needs the run directories to bundle",
                             hint="harness view --export bundle/ reports/<suite>/<run-id> ...")
        written = export_bundle(export, list(paths), report_outline, run_passages)
        errors.print(plain(f"wrote {len(written)} pages to {export}; open {export / 'index.html'}"))
        return
    if paths and len(paths) > 1:
        raise InputError("harness view serves one reports folder",
                         hint="pass one folder, or bundle several runs with --export DIR RUN_DIR...")
    reports = paths[0] if paths else Path("reports")
    if not reports.is_dir():
        raise InputError(f"no reports folder at {reports}", hint="pass the folder `harness run` writes runs into")
    import uvicorn

    from harness.view.app import create_app

    if not is_loopback(host):
        errors.print(plain(f"warning: binding to {host}: anyone who can reach this address can read every run "
                           "under the folder" + ("" if read_only else " and write labels (add --read-only)"),
                           "yellow"))
    app = create_app(reports, read_only=read_only, outline=report_outline, passages=run_passages)
    shown = f"[{host}]" if ":" in host else host
    errors.print(plain(f"harness view: http://{shown}:{port}/ serving {reports}"
                       + (" (read-only)" if read_only else "") + "; Ctrl-C stops"))
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command()(view)
