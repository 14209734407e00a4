"""Evaluation and benchmarks of the semantic model."""
