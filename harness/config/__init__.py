"""Validated configuration: suites, fleets, pricing and gates."""
