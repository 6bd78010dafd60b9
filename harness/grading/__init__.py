"""Sampled grading of answers (the grader seam and its sampler)."""
