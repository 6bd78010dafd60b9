"""Grading answers: the rubric, the sampler, the Claude grader (a call, a parse into a model, a pure score), and the
grading phase of a run with its setup and spend."""
