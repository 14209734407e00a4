"""Evaluation and benchmarks of the lm model."""
