"""Metrics, evaluation tables and benchmarks."""
