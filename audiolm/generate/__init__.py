"""Fast decoding for the LM stages: static KV cache, prefill + one-token step, on-device sampling
with per-sample seeds, a sliding window, a CUDA-graph step, an opt-in compiled CPU step
(`generate(..., compile_step=True)`), and stage-level helpers.

    from audiolm.generate import SamplingConfig, generate
    from audiolm.generate import generate_semantic, generate_coarse, generate_fine
    from audiolm.generate.decode import decode   # tokens + logits + window starts
"""

import importlib

__all__ = ["SamplingConfig", "Generation", "generate", "generate_semantic", "generate_coarse", "generate_fine"]

_LAZY = {
    "SamplingConfig": "audiolm.generate.sampling",
    "Generation": "audiolm.generate.decode",
    "generate": "audiolm.generate.decode",
    "generate_semantic": "audiolm.generate.stages",
    "generate_coarse": "audiolm.generate.stages",
    "generate_fine": "audiolm.generate.stages",
}


def __getattr__(name):  # torch-heavy modules load on first use
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiolm.generate' has no attribute {name!r}")
