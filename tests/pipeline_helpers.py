"""Tiny random pipelines for the pipeline / continuation-eval / bench tests.

`build_tiny_pipeline(root)` writes, under `root`:

    codec/            CodecConfig.tiny() with random weights (24 kHz, hop 320, 75 Hz, 16 levels)
    semantic/         an MFCC SemanticTokenizer with K random centroids (50 Hz)
    semantic_stage/   three tiny random LM stages saved with save_checkpoint, their
    coarse_stage/     StageConfigs completed against the codec / tokenizer above
    fine_stage/       (fine stage: N_Q levels = 3 kbps, coarse stage: 2 levels)
    pipeline.json     the recipe, paths relative to it

and returns the recipe path. Everything is random, so the audio is noise, but every shape,
rate and vocabulary is the real pipeline's.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

K = 16  # semantic vocabulary
SEMANTIC_RATE = 50
N_Q = 4  # acoustic levels modelled by the fine stage (3 kbps of the tiny codec)
COARSE_LEVELS = 2
SEMANTIC_CONTEXT = 64  # semantic stage max_seq_len: (64 - 1) / 50 Hz = 1.26 s of context


def tokens_info(semantic_vocab: int = K, semantic_rate: float = SEMANTIC_RATE, n_q: int = N_Q,
                codebook_size: int = 1024, acoustic_rate: float = 75.0) -> dict:
    """What a token directory's index.json says about its tokenizers (complete_stage_config input)."""
    return {
        "semantic": {"vocab_size": semantic_vocab, "frame_rate": semantic_rate},
        "codec": {"codebook_size": codebook_size, "frame_rate": acoustic_rate, "n_q": n_q},
    }


def stage_config(stage: str, info: dict | None = None, max_seq_len: int | None = None):
    from audiolm.models.lm.config import StageConfig, TransformerConfig
    from audiolm.models.lm.stage import complete_stage_config

    seq = max_seq_len or {"semantic": SEMANTIC_CONTEXT, "coarse": 64, "fine": 64}[stage]
    config = StageConfig(
        stage=stage,
        model=TransformerConfig(dim=32, n_layers=1, n_heads=2, max_seq_len=seq),
        coarse_levels=COARSE_LEVELS,
    )
    return complete_stage_config(config, info or tokens_info())


def save_stage(directory: Path, config, seed: int = 0) -> Path:
    from audiolm.core.checkpoint import save_checkpoint
    from audiolm.models.lm.stage import stage_kind
    from audiolm.models.lm.transformer import Transformer

    torch.manual_seed(seed)
    model = Transformer(config.model)
    return save_checkpoint(directory, stage_kind(config.stage), config, model.state_dict())


def save_codec(directory: Path, seed: int = 0) -> Path:
    from audiolm.models.codec.codec import Codec
    from audiolm.models.codec.config import CodecConfig
    from audiolm.models.codec.model import CodecModel

    torch.manual_seed(seed)
    model = CodecModel(CodecConfig.tiny())
    with torch.no_grad():  # random codebooks, marked initialised (no k-means on first use)
        for layer in model.quantizer.layers:
            layer.embed.normal_()
            layer.inited.fill_(True)
    return Codec(model).save(directory)


def save_tokenizer(directory: Path, vocab: int = K, frame_rate: int = SEMANTIC_RATE, seed: int = 0) -> Path:
    from audiolm.models.semantic.tokenizer import SemanticTokenizer

    gen = torch.Generator().manual_seed(seed)
    return SemanticTokenizer.mfcc(frame_rate, kmeans=torch.randn(vocab, 39, generator=gen)).save(directory)


def write_recipe(root: Path, name: str = "tiny", **overrides) -> Path:
    recipe = {
        "name": name,
        "codec": "codec",
        "semantic_tokenizer": "semantic",
        "semantic_stage": "semantic_stage",
        "coarse_stage": "coarse_stage",
        "fine_stage": "fine_stage",
        "kbps": 3.0,
        "sampling": {"semantic": {"temperature": 1.0}, "coarse": {"top_k": 50}, "fine": {"temperature": 0.8}},
        "description": "tiny random components for tests",
    }
    recipe.update(overrides)
    path = root / f"{name}.json" if name != "tiny" else root / "pipeline.json"
    path.write_text(json.dumps(recipe, indent=2))
    return path


def build_tiny_pipeline(root: str | Path) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    save_codec(root / "codec")
    save_tokenizer(root / "semantic")
    for i, stage in enumerate(("semantic", "coarse", "fine")):
        save_stage(root / f"{stage}_stage", stage_config(stage), seed=i)
    return write_recipe(root)


def tone(seconds: float, sample_rate: int = 24000, freq: float = 220.0, seed: int = 0) -> torch.Tensor:
    """A test prompt [1, N]: a harmonic tone with a little noise."""
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    gen = torch.Generator().manual_seed(seed)
    wav = 0.3 * torch.sin(2 * torch.pi * freq * t) + 0.1 * torch.sin(2 * torch.pi * 3 * freq * t)
    return (wav + 0.01 * torch.randn(t.shape, generator=gen))[None]
