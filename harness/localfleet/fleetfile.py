"""Write the fleet file for a running embedded fleet, with the cost figures explained in comments."""

from __future__ import annotations

import os
from pathlib import Path

from harness.config.fleet import load_fleet

# Cost model of one embedded server, per host. Estimates, documented so they can be replaced with local figures.
#
# Power: a 2-core machine (small desktop, mini PC or 2-vCPU VM share) draws roughly 10 W idle and 30-35 W with both
# cores busy. Each server keeps one core busy while it answers (--n_threads 1), so it is charged half of the loaded
# draw: 15 W per thread.
WATTS_PER_THREAD = 15.0
# Electricity: about $0.17 per kWh, the 2024 US average residential retail price (US EIA, Electric Power Monthly,
# table 5.3: 16-17 cents/kWh). Commercial rates are lower (about 13 cents).
USD_PER_KWH = 0.17
# Hardware: a 2-vCPU on-demand cloud VM lists at about $0.07-0.09 per hour (2024 prices, e.g. a c7i.large in
# us-east-1 at about $0.089/h). A server is charged per core it uses: $0.04/h. Set it to 0 for hardware you own.
HARDWARE_USD_PER_THREAD_HOUR = 0.04

# One call with four retrieved chunks (1,000-1,600 prompt tokens) took 2-9 s on one core of a busy 2-core box
# (bench/local_fleet.py), and a call may first wait behind another on the same server. The default 8 s would time
# out ordinary calls; 60 s only cuts off a server that is stuck.
TIMEOUT_S = 60.0

# Streaming: llama-cpp-python finishes a non-streamed answer whose client has gone (a cancelled race loser) before its
# next request; a streamed one stops at its next token but reports no output token counts. Identical servers racing
# leave a loser little to finish and an eval wants its token counts, so answers are not streamed by default (the
# bench/race_streaming.py figures are in the README, "Benchmarks").
STREAM = False


def render_fleet_yaml(hosts: list[tuple[str, str]], *, model: str, threads: int, stream: bool = STREAM) -> str:
    """Return the fleet file text for ``(name, url)`` hosts serving ``model``."""
    if stream:
        stream_note = "stream: true            # a cancelled race loser stops at its next token; no output token counts"
    else:
        stream_note = "stream: false           # token counts reported; a cancelled loser finishes its answer first"
    lines = [
        "# The embedded local fleet: llama.cpp servers started by `harness fleet up` on loopback ports.",
        "# Written by `harness fleet up`; removed by `harness fleet down`. Edit a copy, not this file.",
        "# stream: llama-cpp-python goes on generating a non-streamed answer after its client is gone, so a race",
        "# loser keeps its server busy until it has finished; a streamed answer stops at the next token. Streamed,",
        "# the server reports no token counts: the prompt is counted with its /extras/tokenize/count, the answer is",
        "# left unmeasured. Measured with bench/race_streaming.py; `harness fleet up --no-stream` turns it off.",
        "strategy: race          # every host gets the call; the first answer wins and the others are cancelled",
        f"timeout_s: {TIMEOUT_S:g}",
        "fallback: none          # no cloud fallback: the local tier is measured on its own",
        "hosts:",
    ]
    for name, url in hosts:
        lines += [
            f"  - name: {name}",
            f"    url: {url}",
            "    kind: openai            # llama_cpp.server speaks the OpenAI API",
            "    endpoint: completion    # a base model: raw completion prompts, no chat template",
            f"    model: {model}",
            "    max_concurrency: 1      # one llama.cpp context per server; parallel calls would only queue",
            f"    {stream_note}",
            "    cost:",
            f"      watts: {WATTS_PER_THREAD * threads:g}  # {threads} busy core(s) at ~15 W each; a 2-core box draws "
            "~30 W loaded",
            f"      usd_per_kwh: {USD_PER_KWH:g}  # 2024 US average residential price (EIA)",
            f"      hardware_usd_per_hour: {HARDWARE_USD_PER_THREAD_HOUR * threads:g}  # ~$0.04/h per core of a "
            "~$0.08/h 2-vCPU VM; 0 if you own the box",
        ]
    return "\n".join(lines) + "\n"


def write_fleet_file(
    path: Path, hosts: list[tuple[str, str]], *, model: str, threads: int = 1, stream: bool = STREAM
) -> Path:
    """Write the fleet file atomically and check it loads as a valid fleet.

    Returns:
        The path written.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_fleet_yaml(hosts, model=model, threads=threads, stream=stream))
    try:
        load_fleet(tmp)  # raises ConfigError if our own template drifts from the schema
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path
