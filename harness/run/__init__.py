"""Running a suite: the session that wires a run together, the async runner, answer tiers, the response cache,
shards, signals and resume checks, and the run's verdict. What a run writes goes through :mod:`harness.store`."""
