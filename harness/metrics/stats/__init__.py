"""Statistics: one Interval type, bootstrap and paired intervals, tests, PPI++, power and control charts."""
