"""WaveNetTask: what the shared Trainer needs to train a WaveNet (data, model, batch -> loss).

The config is settled here, before the model is built, from the data itself:
- global conditioning (`gc=True`): the cardinality and the id -> label map come from the
  training split's `speaker` labels (corpus) or top-level subfolders (plain folder) and are
  saved in the config, so the checkpoint says which id is which voice or instrument;
- local conditioning (a `codec`): levels, codebook size and hop come from the codec, and the
  crop length is rounded up to whole codec frames.
A config that disagrees with the data (another cardinality, another codec) is a ConfigError.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.core.errors import ConfigError
from audiolm.models.wavenet.conditioning import init_lc_from_codebooks
from audiolm.models.wavenet.config import WaveNetConfig
from audiolm.models.wavenet.model import KIND, WaveNet
from audiolm.training.task import StepOutput, Task
from audiolm.training.wavenet.dataset import CropDataset, find_sources, load_clips


def _replace(config: WaveNetConfig, **changes: Any) -> WaveNetConfig:
    try:
        return dataclasses.replace(config, **changes)
    except ValueError as e:
        raise ConfigError(f"wavenet config: {e}") from None


def settle_gc(config: WaveNetConfig, labels: list[str | None], use_gc: bool, where: str) -> WaveNetConfig:
    """Fill in / check gc_cardinality and gc_labels against the labels found in the data."""
    if not use_gc:
        if config.has_gc:
            raise ConfigError(
                f"the config has gc_cardinality={config.gc_cardinality} but global conditioning was not "
                "asked for (--gc)"
            )
        return config
    if any(label is None for label in labels):
        raise ConfigError(
            f"{where}: global conditioning needs a label per file: a corpus with 'speaker' labels, "
            "or one subfolder per speaker / instrument"
        )
    found = sorted({label for label in labels if label is not None})
    if config.gc_cardinality and config.gc_cardinality != len(found):
        raise ConfigError(
            f"the config has gc_cardinality={config.gc_cardinality} but {where} holds {len(found)} labels "
            f"({', '.join(found[:6])}{', ...' if len(found) > 6 else ''})"
        )
    if config.gc_labels and list(config.gc_labels) != found:
        raise ConfigError(f"the config's gc_labels differ from the labels in {where}")
    return _replace(config, gc_cardinality=len(found), gc_labels=found)


def settle_lc(config: WaveNetConfig, codec: Any, kbps: float) -> WaveNetConfig:
    """Fill in / check the local-conditioning fields from the codec."""
    if codec is None:
        if config.has_lc:
            raise ConfigError(f"the config has lc_n_q={config.lc_n_q} (a vocoder) but no codec was given (--lc-codec)")
        return config
    if codec.sample_rate != config.sample_rate:
        raise ConfigError(
            f"the codec runs at {codec.sample_rate} Hz but the config's sample_rate is {config.sample_rate}; "
            "a vocoder must use the codec's rate"
        )
    hop = codec.sample_rate / codec.frame_rate
    if abs(hop - round(hop)) > 1e-6:
        raise ConfigError(f"the codec's frame rate {codec.frame_rate} Hz is not a whole number of samples")
    hop = int(round(hop))
    n_q = codec.levels_for_kbps(kbps)
    if config.has_lc:
        if config.lc_codebook_size != codec.codebook_size or config.lc_hop != hop or config.lc_n_q > n_q:
            raise ConfigError(
                f"the config's codec settings (lc_n_q={config.lc_n_q}, lc_codebook_size={config.lc_codebook_size}, "
                f"lc_hop={config.lc_hop}) do not match the codec ({n_q} levels at {kbps} kbps, "
                f"codebook {codec.codebook_size}, hop {hop}): a different codec"
            )
        return config
    crop = -(-config.crop_samples // hop) * hop
    return _replace(config, lc_n_q=n_q, lc_codebook_size=codec.codebook_size, lc_hop=hop, crop_samples=crop)


class WaveNetTask(Task):
    kind = KIND

    def __init__(
        self,
        config: WaveNetConfig,
        data: str | Path,
        *,
        gc: bool = False,
        codec: Any = None,
        kbps: float = 6.0,
        progress: bool = True,
        lc_init_from_codec: bool = True,
    ) -> None:
        train_sources = find_sources(data, "train")
        if not train_sources:
            raise ConfigError(f"{data}: no training audio")
        valid_sources = find_sources(data, "valid")
        config = settle_gc(config, [s.label for s in train_sources], gc, str(data))
        config = settle_lc(config, codec, kbps)
        self.config = config
        self.label_ids = {label: i for i, label in enumerate(config.gc_labels)} if config.has_gc else None
        if self.label_ids is not None:  # validation only on voices / instruments the model knows
            valid_sources = [s for s in valid_sources if s.label in self.label_ids]
        self._train = CropDataset(load_clips(train_sources, config, codec, kbps, progress), config, self.label_ids)
        self._valid = None
        if valid_sources:
            clips = load_clips(valid_sources, config, codec, kbps, progress)
            clips = [c for c in clips if c.length >= config.crop_samples]
            if clips:
                self._valid = CropDataset(clips, config, self.label_ids)
        self.model = WaveNet(config)
        # a fresh run starts its code embeddings from the codec's codebooks (--resume loads its
        # own weights afterwards); a codec without them keeps the random rows
        if codec is not None and lc_init_from_codec and hasattr(codec, "codebooks"):
            init_lc_from_codebooks(self.model.conditioning, codec.codebooks(config.lc_n_q))

    def model_config(self) -> WaveNetConfig:
        return self.config

    def parts(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def train_dataset(self) -> CropDataset:
        return self._train

    def valid_dataset(self) -> CropDataset | None:
        return self._valid

    def training_step(self, parts: dict[str, nn.Module], batch: dict[str, torch.Tensor], step: int) -> StepOutput:
        x = batch["x"]  # [B, T] μ-law ids
        logits = parts["model"](x, batch.get("gc"), batch.get("codes"))  # [B, classes, T]
        loss = F.cross_entropy(logits.float(), x)
        with torch.no_grad():
            accuracy = float((logits.argmax(dim=1) == x).float().mean())
        return StepOutput(losses={"model": loss}, metrics={"accuracy": accuracy})
