"""Evaluation and benchmarks of the wavenet model."""
