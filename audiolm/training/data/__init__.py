"""Training data: corpus building, crops, token shards and tokenization."""
