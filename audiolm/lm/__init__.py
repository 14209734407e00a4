"""The LM stages: one decoder-only transformer, three token layouts (semantic, coarse, fine).

    from audiolm.lm import StageConfig, TransformerConfig, Transformer, load_stage
"""

from audiolm.lm.config import StageConfig, TransformerConfig, complete_stage_config

__all__ = ["StageConfig", "TransformerConfig", "Transformer", "StageTask", "complete_stage_config", "load_stage", "make_layout"]


def __getattr__(name):  # torch-heavy names on first use
    if name == "Transformer":
        from audiolm.lm.transformer import Transformer

        return Transformer
    if name in ("StageTask", "load_stage"):
        from audiolm.lm import task

        return getattr(task, name)
    if name == "make_layout":
        from audiolm.lm.layouts import make_layout

        return make_layout
    raise AttributeError(f"module 'audiolm.lm' has no attribute {name!r}")
