"""Fixed-length random crops of audio files, the training data of the audio models (codec,
SSL encoder), read from disk on demand: memory does not grow with the corpus.

At first use each file's header gives its length (at the crops' sample rate); a crop reads
only its own samples (a soundfile seek, audio_stream.read_segment) — plus, when the file's rate differs, ~20 ms of
context either side, resampled (soxr) on a window aligned to the resampling period so that
its samples land on the same grid as the whole file's. Every crop is quantized to 16 bits as
the corpus is, so a crop equals the same crop of the file decoded whole: exactly when the
rates match, to within soxr's edge effects (a few LSB) when they differ. `in_memory=True`
keeps the older path (every file decoded once and held as int16), for small corpora and tests.

An epoch has about as many crops as the audio holds; a random crop picks a file with
probability proportional to its length, and draws only from its `ItemKey.seed`, so a resumed
run sees the same crops. With `random=False` (validation) crop i is a fixed function of i.
The dataset holds paths and lengths only, so DataLoader workers (`--num-workers`) copy little.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from audiolm.core.audio import load_audio
from audiolm.core.audio_stream import file_lengths, read_segment
from audiolm.core.errors import AudiolmError
from audiolm.training.task import ItemKey


def _to_int16(wav: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 as the in-memory path stores it (clamp, * 32767, round)."""
    return np.round(np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16)


class AudioCrops(Dataset):
    """`crop(key) -> (wav [crop_samples] float, real samples, seed)`; subclasses shape items."""

    def __init__(
        self,
        files: list[Path],
        sample_rate: int,
        crop_samples: int,
        random: bool = True,
        what: str = "audio",
        in_memory: bool = False,
        align: int = 1,
    ):
        """align: crops start at multiples of this many samples (a frame-labelled dataset's hop)."""
        if not files:
            raise AudiolmError(f"no audio files for the {what} dataset (is the corpus split empty?)")
        self.files = [str(f) for f in files]
        self.sample_rate = sample_rate
        self.crop_samples = crop_samples
        self.random = random
        self.in_memory = in_memory
        self.align = align
        self._audio: list[torch.Tensor] | None = None
        self._lengths: np.ndarray | None = None  # [files] samples at sample_rate
        self._rates: np.ndarray | None = None  # [files] the files' own rates

    # -- file lengths -------------------------------------------------------------------------

    def _index(self) -> np.ndarray:
        if self._lengths is None:
            if self.in_memory:
                audio = self._load()
                self._lengths = np.array([len(a) for a in audio], dtype=np.int64)
                self._rates = np.full(len(audio), self.sample_rate, dtype=np.int64)
            else:
                self._lengths, self._rates = file_lengths(self.files, self.sample_rate)
            lengths = np.maximum(self._lengths, 1).astype(np.float64)
            self._weights = lengths / lengths.sum()
        return self._lengths

    def _load(self) -> list[torch.Tensor]:
        if self._audio is None:
            audio = []
            for path in self.files:
                wav, _ = load_audio(path, sample_rate=self.sample_rate, mono=True)  # [1, N]
                audio.append(torch.from_numpy(_to_int16(wav[0].numpy())))
            self._audio = audio
        return self._audio

    def __len__(self) -> int:
        lengths = self._index()
        return max(len(lengths), int(lengths.sum()) // self.crop_samples)

    # -- crops --------------------------------------------------------------------------------

    def _read(self, file: int, start: int, count: int) -> np.ndarray:
        """int16 samples [start, start + count) of file `file` at `sample_rate` (fewer at its end)."""
        if self.in_memory:
            return self._load()[file][start : start + count].numpy()
        assert self._rates is not None  # set by _index(), which crop() calls first
        return _to_int16(read_segment(self.files[file], int(self._rates[file]), self.sample_rate, start, count))

    def locate(self, key: ItemKey | int) -> tuple[int, int, int]:
        """Where crop `key` lies: (file, start sample, seed); start is a multiple of `align`."""
        lengths = self._index()
        index, seed = (key.index, key.seed) if isinstance(key, ItemKey) else (int(key), int(key))
        rng = np.random.default_rng(seed if self.random else index)
        file = int(rng.choice(len(lengths), p=self._weights)) if self.random else index % len(lengths)
        n = int(lengths[file])
        start = self.align * int(rng.integers(0, max(1, (n - self.crop_samples) // self.align + 1)))
        return file, start, seed

    def crop(self, key: ItemKey | int) -> tuple[torch.Tensor, int, int]:
        """One crop [crop_samples], zero-padded when the file is shorter; its real length; its seed."""
        file, start, seed = self.locate(key)
        return (*self.read_crop(file, start), seed)

    def read_crop(self, file: int, start: int) -> tuple[torch.Tensor, int]:
        """The crop of file `file` from `start`: [crop_samples] float, zero-padded; its real length."""
        n = int(self._index()[file])
        samples = self._read(file, start, min(self.crop_samples, n - start))
        crop = torch.from_numpy(samples.astype(np.float32)) / 32767
        length = len(crop)
        return torch.nn.functional.pad(crop, (0, self.crop_samples - length)), length

    def __getitem__(self, key: ItemKey | int):
        return self.crop(key)[0]
