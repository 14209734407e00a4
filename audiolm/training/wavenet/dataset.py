"""Training data for the WaveNet: random crops of μ-law audio (plus labels and codec codes).

A data source is either a corpus folder (its `manifest.jsonl`, with train / valid splits and a
`speaker` label per item) or any folder of audio files, searched recursively (one subfolder
per speaker when global conditioning is wanted). Audio streams from disk: `load_clips` reads
only each file's header (its length at the model rate), and a crop reads, resamples and
μ-law encodes just its own samples (audiolm/core/audio_stream.py `read_segment`), so memory does not
grow with the data. With local conditioning each file's codec codes are computed once here
(never per training step) into one memory-mapped file in a temporary folder (int16, ~600
bytes per second of audio at 4 levels), which pages in what the crops touch.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from audiolm.core.audio import load_audio
from audiolm.core.audio_stream import file_lengths, read_segment
from audiolm.core.corpus import read_manifest
from audiolm.core.errors import ConfigError
from audiolm.models.wavenet.conditioning import pad_codes_for_samples
from audiolm.models.wavenet.config import WaveNetConfig
from audiolm.models.wavenet.mulaw import mulaw_encode
from audiolm.training.task import ItemKey

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")


@dataclass
class AudioSource:
    path: Path
    label: str | None  # speaker / instrument label, or None


@dataclass
class Clip:
    path: Path
    length: int  # samples at the model rate
    rate: int  # the file's own sample rate
    label: str | None
    codes: np.ndarray | None  # codec codes [Q, F] covering the samples (a memory-mapped view), or None

    def ids(self, start: int, count: int, config: WaveNetConfig) -> torch.Tensor:
        """μ-law ids [count] of samples [start, start + count) at the model rate."""
        wav = torch.from_numpy(
            np.ascontiguousarray(read_segment(str(self.path), self.rate, config.sample_rate, start, count))
        )
        return mulaw_encode(wav, config.quantization_channels)


def find_sources(data: str | Path, split: str | None) -> list[AudioSource]:
    """The audio of a corpus split, or every audio file under a folder (split ignored; a
    plain folder has no validation split, so asking for "valid" gives [])."""
    data = Path(data)
    if not data.exists():
        raise ConfigError(f"{data}: data folder not found")
    if (data / "manifest.jsonl").is_file():
        return [AudioSource(item.audio_path, item.speaker or None) for item in read_manifest(data, split=split)]
    if data.is_file():
        raise ConfigError(f"{data}: expected a folder of audio files or a corpus folder, got a file")
    if split == "valid":
        return []
    files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise ConfigError(f"{data}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found under it")
    sources = []
    for path in files:
        parts = path.relative_to(data).parts
        sources.append(AudioSource(path, parts[0] if len(parts) > 1 else None))
    return sources


def load_clips(
    sources: list[AudioSource],
    config: WaveNetConfig,
    codec: Any = None,
    kbps: float = 6.0,
    progress: bool = True,
) -> list[Clip]:
    """One clip per source: its length from the header; with a codec, its codes computed once
    (whole file, resampled to `config.sample_rate`) into a memory-mapped temporary file."""
    lengths, rates = file_lengths([str(s.path) for s in sources], config.sample_rate)
    clips = [Clip(s.path, int(n), int(r), s.label, None) for s, n, r in zip(sources, lengths, rates)]
    if codec is None:
        return clips
    frames = [-(-c.length // config.lc_hop) for c in clips]
    folder = tempfile.mkdtemp(prefix="audiolm-wavenet-codes-")
    # the file is unlinked at once: the mapping keeps it alive, and nothing is left behind
    dtype = np.int16 if config.lc_codebook_size <= 32768 else np.int32
    store = np.lib.format.open_memmap(
        f"{folder}/codes.npy", mode="w+", dtype=dtype, shape=(config.lc_n_q, max(1, sum(frames)))
    )
    Path(f"{folder}/codes.npy").unlink()
    Path(folder).rmdir()
    offset = 0
    for clip, n_frames in zip(
        tqdm(clips, desc="encode codes", unit="file", disable=not progress or len(clips) < 2), frames
    ):
        wav = load_audio(clip.path, sample_rate=config.sample_rate, mono=True)[0][0]  # [N]
        codes = codec.encode(wav, config.sample_rate, kbps=kbps)[0].cpu()  # [Q, F]
        if codes.shape[0] < config.lc_n_q:
            raise ConfigError(
                f"the codec gives {codes.shape[0]} levels at {kbps} kbps; the config needs lc_n_q={config.lc_n_q}"
            )
        codes = pad_codes_for_samples(codes[: config.lc_n_q], clip.length, config.lc_hop)
        store[:, offset : offset + n_frames] = codes.numpy().astype(dtype)
        clip.codes = store[:, offset : offset + n_frames]
        offset += n_frames
    store.flush()
    return clips


class CropDataset(Dataset):
    """Random crops of `config.crop_samples` samples, drawn from `ItemKey.seed` only.

    Files are picked in proportion to their length. With local conditioning a crop starts on
    a codec frame boundary so its codes are whole frames. Each item is a dict:
    {"x": ids [T], "gc": id [] (with GC), "codes": [Q, T / lc_hop] (with LC)}.
    """

    def __init__(self, clips: list[Clip], config: WaveNetConfig, label_ids: dict[str, int] | None = None) -> None:
        self.config = config
        crop = config.crop_samples
        self.clips = [c for c in clips if c.length >= crop]
        if clips and not self.clips:
            longest = max(c.length for c in clips)
            raise ConfigError(
                f"no audio file is at least crop_samples={crop} samples long (longest: {longest}); "
                "lower crop_samples in the config or add longer audio"
            )
        self.label_ids = label_ids
        lengths = np.array([c.length for c in self.clips], dtype=np.float64)
        self.weights = lengths / lengths.sum() if len(lengths) else lengths
        self.total_samples = int(lengths.sum())

    def __len__(self) -> int:
        # one "epoch" sees about as many samples as the data holds
        return max(1, self.total_samples // self.config.crop_samples) if self.clips else 0

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(key.seed)
        clip = self.clips[int(rng.choice(len(self.clips), p=self.weights))]
        crop, n = self.config.crop_samples, clip.length
        if self.config.has_lc:
            hop = self.config.lc_hop
            start = hop * int(rng.integers(0, (n - crop) // hop + 1))
        else:
            start = int(rng.integers(0, n - crop + 1))
        item = {"x": clip.ids(start, crop, self.config).long()}
        if self.label_ids is not None:
            assert clip.label is not None, "global conditioning needs a label per clip"
            item["gc"] = torch.tensor(self.label_ids[clip.label], dtype=torch.long)
        if self.config.has_lc:
            assert clip.codes is not None
            first = start // self.config.lc_hop
            item["codes"] = torch.from_numpy(np.array(clip.codes[:, first : first + crop // self.config.lc_hop])).long()
        return item
