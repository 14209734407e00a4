"""Training data: corpus building (synthesizers, soundfonts, the reserved held-out voices), corpus
import of your own audio, streamed crops, token shards and tokenization."""
