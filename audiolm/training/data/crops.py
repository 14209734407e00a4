"""Fixed-length random crops of audio files, the training data of the audio models (codec,
SSL encoder). Files are decoded once — mono, resampled — and kept in memory as int16 (the
corpus is 16-bit PCM, so nothing is lost).

An epoch has about as many crops as the audio holds; a random crop picks a file with
probability proportional to its length, and draws only from its `ItemKey.seed`, so a resumed
run sees the same crops. With `random=False` (validation) crop i is a fixed function of i.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from audiolm.core.audio import load_audio
from audiolm.core.errors import AudiolmError
from audiolm.training.task import ItemKey


class AudioCrops(Dataset):
    """`crop(key) -> (wav [crop_samples] float, real samples, seed)`; subclasses shape items."""

    def __init__(self, files: list[Path], sample_rate: int, crop_samples: int, random: bool = True, what: str = "audio"):
        if not files:
            raise AudiolmError(f"no audio files for the {what} dataset (is the corpus split empty?)")
        self.files = [Path(f) for f in files]
        self.sample_rate = sample_rate
        self.crop_samples = crop_samples
        self.random = random
        self._audio: list[torch.Tensor] | None = None

    def _load(self) -> list[torch.Tensor]:
        if self._audio is None:
            audio = []
            for path in self.files:
                wav, _ = load_audio(path, sample_rate=self.sample_rate, mono=True)  # [1, N]
                audio.append((wav[0].clamp(-1, 1) * 32767).round().to(torch.int16))
            self._audio = audio
            lengths = np.array([max(1, len(a)) for a in audio], dtype=np.float64)
            self._weights = lengths / lengths.sum()
        return self._audio

    def __len__(self) -> int:
        audio = self._load()
        return max(len(audio), sum(len(a) for a in audio) // self.crop_samples)

    def crop(self, key: ItemKey | int) -> tuple[torch.Tensor, int, int]:
        """One crop [crop_samples], zero-padded when the file is shorter; its real length; its seed."""
        audio = self._load()
        index, seed = (key.index, key.seed) if isinstance(key, ItemKey) else (int(key), int(key))
        rng = np.random.default_rng(seed if self.random else index)
        file = int(rng.choice(len(audio), p=self._weights)) if self.random else index % len(audio)
        wav = audio[file]
        start = int(rng.integers(0, max(1, len(wav) - self.crop_samples + 1)))
        crop = wav[start : start + self.crop_samples].float() / 32767
        length = len(crop)
        return torch.nn.functional.pad(crop, (0, self.crop_samples - length)), length, seed

    def __getitem__(self, key: ItemKey | int):
        return self.crop(key)[0]
