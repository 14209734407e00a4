"""Layer 4, training: one Trainer for every model; a Task says what differs (data, parts,
batch -> loss). Per-model tasks, losses and datasets live in the subpackages; data/ builds and
reads corpora and token shards.

Imports only core, models and inference."""
