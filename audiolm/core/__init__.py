"""Layer 1, core: configs, errors, the checkpoint and corpus-manifest formats, audio I/O, paths.

Imports nothing else from audiolm (the layers are checked by tests/test_layers.py)."""
