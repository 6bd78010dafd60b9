"""The command-line options several commands share, defined once so each means the same wherever it appears."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SuiteArg = Annotated[Path, typer.Argument(help="suite YAML, e.g. suites/retrieval.yaml", show_default=False)]
ReportsOpt = Annotated[Path, typer.Option("--reports", help="where run directories go")]
StoreOpt = Annotated[Path, typer.Option("--store", help="local index directory (Chroma + BM25)")]
ChromaOpt = Annotated[
    str | None,
    typer.Option(
        "--chroma-url",
        envvar="HARNESS_CHROMA_URL",
        help="use a Chroma server (http://host:port) instead of the embedded store",
    ),
]
PricingOpt = Annotated[
    Path | None,
    typer.Option(
        "--pricing",
        envvar="HARNESS_PRICING",
        help="cloud pricing table (YAML) to use instead of the bundled harness/money/pricing.yaml",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
MaxFailureRateOpt = Annotated[
    float | None,
    typer.Option(
        "--max-failure-rate",
        min=0.0,
        max=1.0,
        help="share of a tier's calls that may fail before the run fails with exit 3 (default: the suite's "
        "generation.max_failure_rate, else 0.2); a tier that answers nothing always fails it",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        is_flag=False,
        flag_value="local",
        metavar="[ADDRESS]",
        help="run on Ray: alone, a local instance; HOST:6379 joins a cluster from one of its nodes; "
        "ray://HOST:10001 through Ray Client. Needs a Chroma server (HARNESS_CHROMA_URL) and the ray extra",
    ),
]
RayBatchOpt = Annotated[
    int, typer.Option("--ray-batch-size", min=1, help="with --ray: chunks per embedding batch of one actor")
]
CacheOpt = Annotated[
    bool | None,
    typer.Option(
        "--cache/--no-cache",
        help="--cache: replay answers stored in .harness/cache/ and store new ones (their latency and cost are then "
        "not measured); --no-cache: neither read nor fill it. Default: the suite's `cache:`, else the command's",
        show_default=False,
    ),
]
FreshOpt = Annotated[
    bool,
    typer.Option("--fresh", help="call every model (fresh latency and cost) and still fill .harness/cache/"),
]
CloudModelOpt = Annotated[
    str | None,
    typer.Option(
        "--cloud-model",
        help="Claude model for the cloud tier and the fleet's cloud fallback, instead of the fleet file's cloud_model "
        "(`harness models` lists them); a retired one is refused before the run starts",
    ),
]
