"""Layer 5, evaluation: metrics, evaluation tables and benchmarks.

Imports only core, models, inference and training."""
