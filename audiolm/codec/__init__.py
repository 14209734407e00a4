"""The acoustic tokenizer: a SEANet encoder/decoder (transformers' EncodecModel architecture)
around a residual vector quantizer we train from scratch, plus its losses, discriminator,
training task, evaluation and benchmark.

    from audiolm.codec import Codec
    codes = Codec.from_pretrained().encode(wav, sample_rate, kbps=6)   # LongTensor [B, Q, T]

Names are imported lazily so `import audiolm.codec` does not pull in torch/transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Codec": "audiolm.codec.codec",
    "CodecInputError": "audiolm.codec.codec",
    "CodecConfig": "audiolm.codec.config",
    "CodecTrainingConfig": "audiolm.codec.config",
    "CodecModel": "audiolm.codec.model",
    "CodecTask": "audiolm.codec.task",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiolm.codec' has no attribute {name!r}")
