"""The LM stages: one decoder-only transformer, three token layouts (semantic, coarse, fine).

from audiolm.models.lm.config import StageConfig, TransformerConfig
from audiolm.models.lm.transformer import Transformer
from audiolm.models.lm.stage import load_stage, make_layout, complete_stage_config
"""
