"""Capacity: open-loop load against the fleet, the knee of each strategy, and a recommendation (`harness fleet bench`).

Pure parts (no I/O): :mod:`.schedule` (Poisson arrivals), :mod:`.summary` (one load point's figures with intervals),
:mod:`.knee` (the knee and the one-box bottleneck), :mod:`.recommend` (strategy and hosts for a daily volume).
I/O: :mod:`.loadgen` (drives one schedule), :mod:`.sweep` (strategies x rates through the dispatcher),
:mod:`.prompts` (requests built from a suite as a run builds them).
"""
