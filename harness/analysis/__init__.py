"""Analysis of runs: drift, advice, tier costs, the gate, compare and history. Frames in, dataclasses out; no I/O."""
