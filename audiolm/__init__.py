"""audiolm: token-based audio language modelling in the AudioLM style.

The public names are imported lazily (start-up time: `import audiolm` and `audiolm --help` must
not load torch); each comes from its layer (core, models, inference):

    from audiolm import AudioLM, Codec, SemanticTokenizer, WaveNet, load_audio, save_audio
    from audiolm import Continuation, PromptTokens, SamplingConfig, generate   # results, prompts, decoding
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_audio": "audiolm.core.audio",
    "save_audio": "audiolm.core.audio",
    "AudioError": "audiolm.core.errors",
    "AudiolmError": "audiolm.core.errors",
    "Codec": "audiolm.models.codec.codec",
    "SemanticTokenizer": "audiolm.models.semantic.tokenizer",
    "WaveNet": "audiolm.models.wavenet.model",
    "AudioLM": "audiolm.inference.pipeline",
    "Continuation": "audiolm.inference.pipeline",
    "PromptTokens": "audiolm.inference.pipeline",
    "SamplingConfig": "audiolm.inference.sampling",
    "generate": "audiolm.inference.decode",
    "Stage": "audiolm.models.lm.stage",
    "load_stage": "audiolm.models.lm.stage",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiolm' has no attribute {name!r}")
