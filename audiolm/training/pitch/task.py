"""Training the pitch net (`audiolm train pitch`) with the shared Trainer: Harvest distilled into
a per-frame F0 classifier the codec can afford (models/codec/pitch_net.py).

Data: `max_items` speech and `music_items` music items of the corpus' train split (a seeded
draw), labelled once by Harvest (labels.py, cached in RUN/labels/); `crop_seconds` crops that
start on a frame boundary, each at a random gain (`gain_db_min..gain_db_max`: the net must not
key on loudness, the codec feeds it whatever level comes in). Validation: fixed crops of up to
`valid_items` valid-split items (unseen voices and pieces), scored as the eval judge scores a
codec — gross pitch error and voicing-decision error against Harvest. A step:

    logits = net(crop)                                [B, T, 1 + classes]
    loss   = soft cross-entropy(logits, Gaussian around Harvest's F0 | "unvoiced")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from audiolm.core.corpus import read_manifest
from audiolm.core.errors import AudiolmError
from audiolm.models.codec.config import PitchNetConfig
from audiolm.models.codec.pitch_net import PitchNet
from audiolm.training.data.crops import AudioCrops
from audiolm.training.pitch.labels import PitchLabels
from audiolm.training.task import ItemKey, StepOutput, Task

KIND = "pitch"
GROSS_ERROR = 0.2  # a gross pitch error: more than 20 % off (the eval judge's threshold)


class LabelledCrops(AudioCrops):
    """Items {"wav": [crop] float, "f0": [frames] Hz (0 unvoiced), "mask": [frames] 1 = real audio}."""

    def __init__(self, labels: PitchLabels, config: PitchNetConfig, random: bool = True):
        crop_samples = int(round(config.crop_seconds * config.sample_rate / config.hop_length)) * config.hop_length
        super().__init__(
            [Path(f) for f in labels.files],
            config.sample_rate,
            crop_samples,
            random,
            what="pitch",
            align=config.hop_length,
        )
        self.labels, self.config = labels, config
        self.frames = crop_samples // config.hop_length

    def __getitem__(self, key: ItemKey | int) -> dict[str, torch.Tensor]:
        file, start, seed = self.locate(key)
        wav, length = self.read_crop(file, start)
        first = start // self.config.hop_length
        f0 = np.zeros(self.frames, dtype=np.float32)
        labels = self.labels.f0[file][first : first + self.frames]
        f0[: len(labels)] = labels
        mask = np.zeros(self.frames, dtype=np.float32)
        mask[: min(len(labels), -(-length // self.config.hop_length))] = 1
        if self.random:  # a gain per crop, drawn from the crop's own seed (resume-exact)
            rng = np.random.default_rng([seed, 1])
            wav = wav * 10 ** (rng.uniform(self.config.gain_db_min, self.config.gain_db_max) / 20)
        return {"wav": wav, "f0": torch.from_numpy(f0), "mask": torch.from_numpy(mask)}


def f0_agreement(f0: torch.Tensor, voiced: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Gross pitch error and voicing-decision error of a track against Harvest's, over frames
    with mask 1 (f0, voiced, target, mask [B, T]); GPE is over frames voiced in both (NaN: none)."""
    real = mask > 0
    truth = (target > 0) & real
    both = voiced & truth
    gross = (f0 - target).abs() > GROSS_ERROR * target
    gpe = float(gross[both].float().mean()) if both.any() else float("nan")
    vde = float((voiced != (target > 0))[real].float().mean()) if real.any() else float("nan")
    return {"gpe": gpe, "vde": vde}


class PitchTask(Task):
    kind = KIND

    def __init__(
        self,
        config: PitchNetConfig,
        corpus_dir: str | Path,
        labels_dir: str | Path,
        max_items: int = 1500,
        music_items: int = 150,
        valid_items: int = 64,
        seed: int = 0,
        jobs: int = 1,
    ):
        """labels_dir: where the Harvest labels are kept (RUN/labels); computed at first use."""
        self.config = config
        self.model = PitchNet(config)
        self.corpus_dir, self.labels_dir = Path(corpus_dir), Path(labels_dir)
        self.seed, self.jobs = seed, jobs
        self.items = (max_items, music_items, valid_items)
        rng = np.random.default_rng(seed)
        speech = read_manifest(corpus_dir, split="train", kind="speech")
        music = read_manifest(corpus_dir, split="train", kind="music")
        if not speech:
            raise AudiolmError(f"{corpus_dir}: no speech in the train split; the pitch net learns from speech")
        train = [speech[i] for i in rng.permutation(len(speech))[:max_items]]
        train += [music[i] for i in rng.permutation(len(music))[:music_items]]
        valid = read_manifest(corpus_dir, split="valid")
        valid = [valid[i] for i in np.random.default_rng(seed + 1).permutation(len(valid))[:valid_items]]
        self.train_files = sorted(str(item.audio_path) for item in train)
        self.valid_files = sorted(str(item.audio_path) for item in valid)
        self._train_set: LabelledCrops | None = None
        self._valid_set: LabelledCrops | None = None

    def _labels(self, split: str, files: list[str]) -> PitchLabels:
        path = self.labels_dir / f"{split}.safetensors"
        return PitchLabels.build([Path(f) for f in files], self.config, path, jobs=self.jobs)

    # -- Task API -----------------------------------------------------------------------------
    def model_config(self) -> PitchNetConfig:
        return self.config

    def parts(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def run_info(self) -> dict[str, Any]:
        # read back on --resume: the same draw of items (their labels are cached under RUN/labels)
        return {"data": str(self.corpus_dir.resolve()), "items": list(self.items)}

    def train_dataset(self) -> Dataset:
        if self._train_set is None:
            self._train_set = LabelledCrops(self._labels("train", self.train_files), self.config)
        return self._train_set

    def valid_dataset(self) -> Dataset | None:
        if not self.valid_files:
            return None
        if self._valid_set is None:
            self._valid_set = LabelledCrops(self._labels("valid", self.valid_files), self.config, random=False)
        return self._valid_set

    def training_step(self, parts: dict[str, nn.Module], batch: dict[str, torch.Tensor], step: int) -> StepOutput:
        net = parts["model"]
        frames = batch["f0"].shape[-1]
        logits = net(batch["wav"], frames)  # [B, T, 1 + classes]
        loss = _unwrap(net).loss(logits, batch["f0"], batch["mask"])
        return StepOutput(losses={"model": loss}, metrics={"ce": float(loss.detach())})

    @torch.no_grad()
    def validation_step(self, parts: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> dict[str, float]:
        net = _unwrap(parts["model"])
        logits = net(batch["wav"], batch["f0"].shape[-1])
        f0, voiced = net.decode(logits)
        ce = float(net.loss(logits, batch["f0"], batch["mask"]))
        return {"model_loss": ce} | f0_agreement(f0, voiced, batch["f0"], batch["mask"])


def _unwrap(module: nn.Module) -> Any:
    return getattr(module, "module", module)  # DDP / accelerate wrappers keep the model in .module
