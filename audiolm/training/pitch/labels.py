"""Harvest pitch labels for the pitch net, on the codec's frames, cached in the run directory.

    f0 = harvest_labels(wav [N] float, sample_rate, frames, hop_length)   # [frames] Hz, 0 = unvoiced
    labels = PitchLabels.build(files, config, path, jobs)                 # computed once, then read back

Harvest (pyworld, the eval extra's tracker and the judge's own) runs at 16 kHz every 10 ms; the
codec's frame t is centred at (t + 0.5) * hop samples, so each codec frame takes the voicing of
the nearest Harvest frame and, where both neighbours are voiced, the log-linear interpolation
of their F0. Harvest runs at about 2.5x real time on one thread, so labels are computed once per
run (in parallel over `jobs` processes) and kept in RUN/labels/: a resumed run reads them back.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from audiolm.core.checkpoint import atomic_write_json
from audiolm.core.errors import AudiolmError
from audiolm.models.codec.config import PitchNetConfig
from audiolm.models.codec.harvest import harvest_f0

HARVEST_FRAME_MS = 10.0


def harvest_labels(wav: np.ndarray, sample_rate: int, frames: int, hop_length: int) -> np.ndarray:
    """Harvest's F0 on the codec's frames: wav [N] -> [frames] float32 Hz, 0 where unvoiced."""
    f0 = np.asarray(harvest_f0(wav, sample_rate, frame_period_ms=HARVEST_FRAME_MS), dtype=np.float64)
    if len(f0) == 0:
        return np.zeros(frames, dtype=np.float32)
    position = (np.arange(frames) + 0.5) * hop_length / sample_rate * 1000.0 / HARVEST_FRAME_MS
    low = np.clip(np.floor(position).astype(np.int64), 0, len(f0) - 1)
    high = np.clip(low + 1, 0, len(f0) - 1)
    frac = position - np.floor(position)
    nearest = np.where(frac < 0.5, low, high)
    both = (f0[low] > 0) & (f0[high] > 0)
    log_mean = np.exp((1 - frac) * np.log(np.maximum(f0[low], 1.0)) + frac * np.log(np.maximum(f0[high], 1.0)))
    out = np.where(both, log_mean, f0[nearest])
    return np.where(f0[nearest] > 0, out, 0.0).astype(np.float32)


def _label_file(args: tuple[str, int, int]) -> np.ndarray:
    """One file's labels (a worker process): the whole file at the net's rate, every frame."""
    from audiolm.core.audio import load_audio  # lazy: the worker imports what it needs

    path, sample_rate, hop_length = args
    wav, _ = load_audio(path, sample_rate=sample_rate, mono=True)  # [1, N]
    frames = -(-wav.shape[-1] // hop_length)
    return harvest_labels(wav[0].numpy(), sample_rate, frames, hop_length)


@dataclass
class PitchLabels:
    """Per-file Harvest F0 on the net's frames: `f0[i]` [frames of file i] float32 Hz."""

    files: list[str]
    f0: list[np.ndarray]

    @classmethod
    def build(
        cls, files: list[Path], config: PitchNetConfig, path: Path, jobs: int = 1, progress: bool = True
    ) -> PitchLabels:
        """Read the labels at `path` (.safetensors, with a .json beside it naming the files and
        framing) if they are for these files, else compute them and write them there."""
        names = [str(f) for f in files]
        meta = {"files": names, "sample_rate": config.sample_rate, "hop_length": config.hop_length}
        meta_path = path.with_suffix(".json")
        if path.is_file() and meta_path.is_file():
            if json.loads(meta_path.read_text()) != meta:
                raise AudiolmError(f"{path}: labels for other files or framing; remove them or use another --out")
            tensors = load_file(str(path))
            bounds = tensors["offsets"].tolist()
            flat = tensors["f0"].numpy()
            return cls(names, [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
        from tqdm import tqdm  # lazy: only when labelling

        work = [(str(f), config.sample_rate, config.hop_length) for f in files]
        bar = tqdm(total=len(work), desc=f"Harvest labels ({path.stem})", unit="file", disable=not progress)
        f0: list[np.ndarray] = []
        if jobs <= 1:
            for item in work:
                f0.append(_label_file(item))
                bar.update()
        else:
            with ProcessPoolExecutor(jobs) as pool:
                for labels in pool.map(_label_file, work, chunksize=4):
                    f0.append(labels)
                    bar.update()
        bar.close()
        offsets = np.cumsum([0] + [len(x) for x in f0]).astype(np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        flat = np.concatenate(f0) if f0 else np.zeros(0, dtype=np.float32)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({"f0": torch.from_numpy(flat), "offsets": torch.from_numpy(offsets)}, str(tmp))
        tmp.replace(path)
        atomic_write_json(meta_path, meta)  # last: labels without their record are computed again
        return cls(names, f0)
