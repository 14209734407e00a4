"""audiolm: token-based audio language modelling in the AudioLM style.

The public names are imported lazily so `import audiolm` (and `audiolm --help`) stays fast:

    from audiolm import AudioLM, Codec, SemanticTokenizer, WaveNet, load_audio, save_audio
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_audio": "audiolm.audio",
    "save_audio": "audiolm.audio",
    "AudioError": "audiolm.errors",
    "AudiolmError": "audiolm.errors",
    "Codec": "audiolm.codec",
    "SemanticTokenizer": "audiolm.semantic",
    "WaveNet": "audiolm.wavenet",
    "AudioLM": "audiolm.pipeline",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiolm' has no attribute {name!r}")
