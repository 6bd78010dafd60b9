"""The run store: typed versioned records, the append-only logs, upgrades, schemas, merge, and runs loaded as frames."""
