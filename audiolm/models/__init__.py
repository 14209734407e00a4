"""Layer 2, models: the networks (codec, semantic, lm, wavenet) with their load/save; no training code.

Imports only audiolm.core."""
