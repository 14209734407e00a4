"""Semantic tokens: a w2v-BERT-style SSL encoder, k-means, and adapters for pretrained encoders.

    from audiolm.semantic import SemanticTokenizer
    tokens = SemanticTokenizer.from_pretrained().encode(wav, sample_rate)  # [B, T] at .frame_rate

Names are imported lazily so importing the package (and the CLI) does not load transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SemanticTokenizer": "audiolm.semantic.tokenizer",
    "SSLConfig": "audiolm.semantic.config",
    "TokenizerConfig": "audiolm.semantic.config",
    "SSLEncoder": "audiolm.semantic.encoder",
    "W2vBertModel": "audiolm.semantic.pretraining",
    "fit_kmeans": "audiolm.semantic.kmeans",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiolm.semantic' has no attribute {name!r}")
