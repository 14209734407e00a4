"""Pretraining the SSL encoder with the shared Trainer (`audiolm train ssl`).

Data: random `crop_seconds` crops of the corpus train split (speech and music), mono 16 kHz;
validation on fixed crops of the valid split (held-out voices and pieces). A step:

    masks, negatives <- draw_masks(seed derived from the batch's item seeds)   (resume-exact)
    quantizer temperature <- gumbel_temperature(step)
    loss = contrastive + diversity_weight * diversity + mlm_weight * MLM    (pretraining.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from audiolm.data.crops import AudioCrops
from audiolm.semantic.config import SAMPLE_RATE, SSLConfig
from audiolm.semantic.pretraining import KIND, W2vBertModel, draw_masks, gumbel_temperature
from audiolm.train.task import ItemKey, StepOutput, Task


class CropDataset(AudioCrops):
    """SSL training items at 16 kHz: {"wav": [crop] float, "length": samples of real audio (the
    rest is zeros), "seed"} (see AudioCrops)."""

    def __init__(self, files: list[Path], crop_samples: int, random: bool = True) -> None:
        super().__init__(files, SAMPLE_RATE, crop_samples, random, what="SSL")

    def __getitem__(self, key: ItemKey | int) -> dict[str, Any]:
        crop, length, seed = self.crop(key)
        return {"wav": crop, "length": length, "seed": seed % 2**31}


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)


class SSLTask(Task):
    kind = KIND

    def __init__(self, config: SSLConfig, train_files: list[Path], valid_files: list[Path] | None = None,
                 data_dir: str | Path | None = None) -> None:
        self.config = config
        self.model = W2vBertModel(config)
        self.crop_samples = int(round(config.crop_seconds * SAMPLE_RATE)) // config.hop_length * config.hop_length
        self.train_files = list(train_files)
        self.valid_files = list(valid_files or [])
        self.data_dir = None if data_dir is None else str(Path(data_dir).resolve())
        self._train: CropDataset | None = None
        self._valid: CropDataset | None = None

    @classmethod
    def from_corpus(cls, config: SSLConfig, corpus_dir: str | Path) -> "SSLTask":
        from audiolm.data.corpus import train_valid_audio

        train, valid = train_valid_audio(corpus_dir)
        return cls(config, train, valid, data_dir=corpus_dir)

    def model_config(self) -> SSLConfig:
        return self.config

    def parts(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def train_dataset(self) -> Dataset:
        if self._train is None:
            self._train = CropDataset(self.train_files, self.crop_samples, random=True)
        return self._train

    def valid_dataset(self) -> Dataset | None:
        if not self.valid_files:
            return None
        if self._valid is None:
            self._valid = CropDataset(self.valid_files, self.crop_samples, random=False)
        return self._valid

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            "wav": torch.stack([it["wav"] for it in items]),  # [B, N]
            "length": torch.tensor([it["length"] for it in items]),  # [B]
            "seed": torch.tensor([it["seed"] for it in items]),  # [B]
        }

    def training_step(self, parts: dict[str, nn.Module], batch: dict[str, torch.Tensor], step: int) -> StepOutput:
        model = parts["model"]
        cfg = self.config
        wav = batch["wav"]
        total = wav.shape[-1] // cfg.hop_length
        num_frames = (batch["length"].cpu() // cfg.hop_length).clamp(min=2, max=total)
        seed = int(batch["seed"].cpu().sum()) + max(step, 0)
        masks = draw_masks(cfg, num_frames, total, seed=seed)
        masks = type(masks)(*(t.to(wav.device) for t in (masks.mask, masks.negatives, masks.valid)))
        _unwrap(model).quantizer.temperature = gumbel_temperature(cfg, step)
        out = model(wav, masks)
        metrics = {
            "contrastive": float(out.contrastive.detach()),
            "diversity": float(out.diversity.detach()),
            "mlm": float(out.mlm.detach()),
            "contrastive_acc": float(out.contrastive_accuracy),
            "mlm_acc": float(out.mlm_accuracy),
            "perplexity": float(out.perplexity),
            "masked": float(masks.mask.float().mean()),
        }
        return StepOutput(losses={"model": out.loss}, metrics=metrics)

    def export_extras(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
        """Record the corpus so `audiolm train kmeans --ssl RUN` can default to it."""
        return {}, ({"ssl_data.json": {"data": self.data_dir}} if self.data_dir else {})
