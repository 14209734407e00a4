"""Pretraining the SSL encoder with the shared Trainer (`audiolm train ssl`).

Data: random `crop_seconds` crops of the corpus train split (speech and music), mono 16 kHz;
validation on fixed crops of the valid split (held-out voices and pieces). A step:

    masks, negatives <- draw_masks(seed derived from the batch's item seeds)   (resume-exact)
    quantizer temperature <- gumbel_temperature(step)
    cluster ids <- target tokenizer(crop)   (only with --targets: HuBERT-style MLM targets)
    loss = contrastive_weight * (contrastive + diversity_weight * diversity) + mlm_weight * MLM
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from audiolm.core.corpus import train_valid_audio
from audiolm.core.errors import ConfigError
from audiolm.models.semantic.config import SAMPLE_RATE, SSLConfig
from audiolm.models.semantic.tokenizer import SemanticTokenizer
from audiolm.training.data.crops import AudioCrops
from audiolm.training.semantic.pretraining import KIND, W2vBertModel, draw_masks, gumbel_temperature
from audiolm.training.task import ItemKey, StepOutput, Task


class CropDataset(AudioCrops):
    """SSL training items at 16 kHz: {"wav": [crop] float, "length": samples of real audio (the
    rest is zeros), "seed"} (see AudioCrops)."""

    def __init__(self, files: list[Path], crop_samples: int, random: bool = True) -> None:
        super().__init__(files, SAMPLE_RATE, crop_samples, random, what="SSL")

    def __getitem__(self, key: ItemKey | int) -> dict[str, Any]:
        crop, length, seed = self.crop(key)
        return {"wav": crop, "length": length, "seed": seed % 2**31}


def _unwrap(module: nn.Module) -> Any:
    return getattr(module, "module", module)


class SSLTask(Task):
    kind = KIND

    def __init__(
        self,
        config: SSLConfig,
        train_files: list[Path],
        valid_files: list[Path] | None = None,
        data_dir: str | Path | None = None,
        targets: SemanticTokenizer | None = None,
        targets_dir: str | Path | None = None,
    ) -> None:
        check_targets(config, targets)
        self.config = config
        self.targets = targets
        self.targets_dir = None if targets_dir is None else str(Path(targets_dir).resolve())
        self.model = W2vBertModel(config)
        self.crop_samples = int(round(config.crop_seconds * SAMPLE_RATE)) // config.hop_length * config.hop_length
        self.train_files = list(train_files)
        self.valid_files = list(valid_files or [])
        self.data_dir = None if data_dir is None else str(Path(data_dir).resolve())
        self._train: CropDataset | None = None
        self._valid: CropDataset | None = None

    @classmethod
    def from_corpus(cls, config: SSLConfig, corpus_dir: str | Path, targets_dir: str | Path | None = None) -> SSLTask:
        train, valid = train_valid_audio(corpus_dir)
        targets = None if targets_dir is None else SemanticTokenizer.from_pretrained(targets_dir)
        return cls(config, train, valid, data_dir=corpus_dir, targets=targets, targets_dir=targets_dir)

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
        cluster_ids = None
        if self.targets is not None:
            self.targets.to(wav.device)
            cluster_ids = self.targets.encode(wav, SAMPLE_RATE)  # [B, T], same frame grid
        out = model(wav, masks, cluster_ids)
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
        record = {"data": self.data_dir} if self.data_dir else {}
        if self.targets_dir:
            record["targets"] = self.targets_dir
        return {}, ({"ssl_data.json": record} if record else {})


def check_targets(config: SSLConfig, targets: SemanticTokenizer | None) -> None:
    """The MLM head's size and frame grid must match the target tokenizer (one-line errors)."""
    if config.target_clusters and targets is None:
        raise ConfigError(
            f"config has target_clusters={config.target_clusters}: pass the target tokenizer (--targets DIR)"
        )
    if targets is None:
        return
    if not config.target_clusters:
        raise ConfigError("--targets given but the config has target_clusters=0 (MLM on quantizer ids)")
    if targets.vocab_size != config.target_clusters:
        raise ConfigError(
            f"target tokenizer has K={targets.vocab_size} but the config says target_clusters={config.target_clusters}"
        )
    if targets.frame_rate != config.frame_rate:
        raise ConfigError(f"target tokenizer runs at {targets.frame_rate} Hz but the encoder at {config.frame_rate} Hz")
