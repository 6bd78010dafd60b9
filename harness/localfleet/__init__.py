"""The embedded local fleet: start, watch and stop real llama.cpp servers serving the bundled model on loopback
ports, and write the fleet file that points the dispatcher at them (``harness fleet up`` / ``down``)."""
