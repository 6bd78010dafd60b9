"""Pure metric functions: retrieval metrics (trec_eval definitions), answer metrics, and A/B statistics.

Nothing here does I/O or imports a network or storage library; everything is a function of its arguments.
Import the submodule you need (``from harness.metrics.stats import intervals``): importing this package loads none
of them, so code that needs only ``answer`` does not pay for pandas and scipy.
"""
