"""Evaluation and benchmarks of the codec model."""
