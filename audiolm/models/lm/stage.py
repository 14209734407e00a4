"""A stage = its config + its token layout + its Transformer: completing a stage config from the
token shards' index, building the layout, loading a trained stage."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from audiolm.core.checkpoint import load_checkpoint, load_state_dict_checked, resolve_checkpoint_dir
from audiolm.core.errors import CheckpointError, ConfigError
from audiolm.models.lm.config import STAGES, StageConfig
from audiolm.models.lm.fine_bark import FineBarkLayout
from audiolm.models.lm.layouts import CoarseLayout, FineLayout, SemanticLayout
from audiolm.models.lm.transformer import Transformer


def stage_kind(stage: str) -> str:
    """Checkpoint kind of a stage model: "lm_semantic", "lm_coarse", "lm_fine"."""
    return f"lm_{stage}"


def make_layout(config: StageConfig):
    """The layout of a stage: SemanticLayout, CoarseLayout, FineLayout or (fine_style "bark")
    `fine_bark.FineBarkLayout`."""
    if config.stage == "fine" and config.fine_style == "bark":
        return FineBarkLayout(config)
    return {"semantic": SemanticLayout, "coarse": CoarseLayout, "fine": FineLayout}[config.stage](config)


Layout = SemanticLayout | CoarseLayout | FineLayout | FineBarkLayout


def complete_stage_config(config: StageConfig, tokens_info: dict[str, Any]) -> StageConfig:
    """Fill the token-source fields from a token shards index (`TokenShards.info`), check the
    ones the user set, then size the vocabulary and window from the layout."""
    sources = {
        "semantic_vocab": int(tokens_info["semantic"]["vocab_size"]),
        "semantic_frame_rate": float(tokens_info["semantic"]["frame_rate"]),
        "codebook_size": int(tokens_info["codec"]["codebook_size"]),
        "acoustic_frame_rate": float(tokens_info["codec"]["frame_rate"]),
        "n_q": int(tokens_info["codec"]["n_q"]),
    }
    updates: dict[str, Any] = {}
    for name, value in sources.items():
        given = getattr(config, name)
        if not given:
            updates[name] = value
        elif name == "n_q" and given <= value:
            continue  # a fine stage may model fewer levels than the shards hold
        elif given != value:
            raise ConfigError(f"stage config: {name} is {given} but the token shards have {value}")
    config = dataclasses.replace(config, **updates)
    if config.stage != "semantic" and config.coarse_levels > config.n_q:
        raise ConfigError(f"stage config: coarse_levels {config.coarse_levels} > n_q {config.n_q} in the shards")
    if config.stage == "fine" and config.n_q <= config.coarse_levels:
        raise ConfigError(
            f"stage config: the fine stage needs more levels than coarse_levels ({config.coarse_levels}); "
            f"the shards have n_q={config.n_q}"
        )
    bark = config.stage == "fine" and config.fine_style == "bark"
    if not bark and not config.model.causal:
        raise ConfigError(
            f'stage config: a {config.stage} stage must be causal (model.causal false is for fine_style "bark")'
        )
    # the Bark-style fine stage is the one non-causal model; it sets the flag itself
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, causal=not bark))
    layout = make_layout(config)
    window = config.window_frames or layout.max_window_frames()
    if window < 1:
        raise ConfigError(f"stage config: model.max_seq_len {config.model.max_seq_len} is too short for one frame")
    config = dataclasses.replace(config, window_frames=window)
    layout = make_layout(config)
    if layout.context_length() > config.model.max_seq_len:
        raise ConfigError(
            f"stage config: window_frames {window} needs a context of {layout.context_length()} tokens, "
            f"more than model.max_seq_len {config.model.max_seq_len}"
        )
    vocab = layout.vocab_size
    if config.model.vocab_size and config.model.vocab_size != vocab:
        raise ConfigError(f"stage config: model.vocab_size {config.model.vocab_size}, the layout needs {vocab}")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, vocab_size=vocab))


def check_layout(config: StageConfig, where: str) -> None:
    """A trained stage's layout must fit its model: the vocabulary the layout needs (levels x
    codebook + specials) is the model's, and a window fits in max_seq_len. Otherwise generation
    would index past the embedding (IndexError mid-generation)."""
    try:
        layout = make_layout(config)
        vocab = layout.vocab_size
        context = layout.context_length() if config.stage != "semantic" else 0
    except (ValueError, ZeroDivisionError, KeyError) as e:
        raise CheckpointError(f"{where}: the stage layout cannot be built ({e})") from None
    if vocab != config.model.vocab_size:
        raise CheckpointError(
            f"{where}: model.vocab_size {config.model.vocab_size}, but the layout of "
            f"{config.n_q} levels x {config.codebook_size} codes (+ {config.semantic_vocab} semantic) "
            f"needs {vocab}"
        )
    if context > config.model.max_seq_len:
        raise CheckpointError(
            f"{where}: window_frames {config.window_frames} needs {context} tokens, more than "
            f"model.max_seq_len {config.model.max_seq_len}"
        )


@dataclass
class Stage:
    """One loaded stage: its Transformer (eval mode), the StageConfig it was trained with, and
    the token layout that config implies."""

    model: Transformer
    config: StageConfig
    layout: Layout
    source: Path | None = None  # the checkpoint directory it was loaded from

    @classmethod
    def from_model(cls, model: Transformer, config: StageConfig, source: Path | None = None) -> Stage:
        return cls(model, config, make_layout(config), source)

    @property
    def name(self) -> str:
        """ "semantic", "coarse" or "fine"."""
        return self.config.stage

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load_stage(path: str | Path, stage: str | None = None, device: str | torch.device = "cpu") -> Stage:
    """A trained stage from a checkpoint dir or run dir (`stage` checks which one it holds)."""
    directory = resolve_checkpoint_dir(path)
    kinds = (stage_kind(stage),) if stage else tuple(stage_kind(s) for s in STAGES)
    ckpt = load_checkpoint(directory, kinds, StageConfig, device=device)
    check_layout(ckpt.config, str(directory / "config.json"))
    model = Transformer(ckpt.config.model).to(device)
    load_state_dict_checked(model, ckpt.state_dict, str(directory))
    return Stage.from_model(model.eval(), ckpt.config, Path(directory))
