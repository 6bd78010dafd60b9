"""localfleet."""
