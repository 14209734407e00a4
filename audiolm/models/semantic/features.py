"""Frame features that k-means turns into tokens: one layer of our encoder, or MFCCs.

A feature source is a module with `frame_rate`, `dim` and `forward(wav [B, N] @ 16 kHz) ->
[B, N // hop, D]` (frame t centred on (t + ½)·hop, see spectral.py). `layers()` returns several
layers from one pass, which evaluation uses to score every candidate layer cheaply.
The pretrained-encoder sources live in hf_adapters.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from tqdm import tqdm

from audiolm.core.audio import load_audio
from audiolm.core.audio_stream import file_lengths, read_segment
from audiolm.models.semantic.config import SAMPLE_RATE
from audiolm.models.semantic.encoder import SSLEncoder
from audiolm.models.semantic.spectral import mfcc


class SSLFeatures(nn.Module):
    """Layer `layer` of our SSL encoder (0 = projected front-end, i = conformer layer i)."""

    def __init__(self, encoder: SSLEncoder, layer: int) -> None:
        super().__init__()
        if not 0 <= layer <= encoder.num_layers:
            raise ValueError(f"layer {layer} out of range 0..{encoder.num_layers}")
        self.encoder = encoder.eval()
        self.layer = layer
        self.frame_rate = encoder.config.frame_rate
        self.dim = encoder.config.hidden_size

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.encoder(wav, num_layers=self.layer).hidden_states[self.layer]  # [B, T, H]

    def layers(self, wav: torch.Tensor, layers: Iterable[int]) -> dict[int, torch.Tensor]:
        layers = sorted(set(layers))
        hidden = self.encoder(wav, num_layers=layers[-1]).hidden_states
        return {i: hidden[i] for i in layers}


class MFCCFeatures(nn.Module):
    """13 MFCCs + Δ + ΔΔ, mean-pooled from 100 Hz to the frame rate (the baseline)."""

    def __init__(self, frame_rate: int) -> None:
        super().__init__()
        self.frame_rate = frame_rate
        self.dim = 39

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return mfcc(wav, self.frame_rate)  # [B, T, 39]


def load_16k(path) -> torch.Tensor:
    """A corpus file as mono 16 kHz: [1, N]."""
    wav, _ = load_audio(path, sample_rate=SAMPLE_RATE, mono=True)
    return wav


@torch.no_grad()
def iter_corpus_features(
    extract: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    items: list,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "features",
    max_seconds: float = 60.0,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield `extract(wav [1, N]) -> {name: [1, T, D]}` of each corpus item in turn, as
    {name: features [T, D] float16 on CPU}. Files longer than `max_seconds` are read and encoded
    in consecutive chunks (a whole number of frames each), so one file never sits whole in memory."""
    chunk = int(max_seconds * SAMPLE_RATE) // 640 * 640
    for item in tqdm(items, desc=desc, disable=not progress, leave=False):
        path = str(item.audio_path)
        (length,), (rate,) = file_lengths([path], SAMPLE_RATE)
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, max(1, int(length)), chunk):
            piece = torch.from_numpy(read_segment(path, int(rate), SAMPLE_RATE, start, chunk).copy())[None].to(device)
            if piece.shape[-1] < 640 and start > 0:
                break
            for name, feats in extract(piece).items():
                parts.setdefault(name, []).append(feats[0].to("cpu", torch.float16))
        yield {name: torch.cat(chunks) for name, chunks in parts.items()}


@torch.no_grad()
def extract_corpus(
    extract: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    items: list,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "features",
    max_seconds: float = 60.0,
) -> dict[str, list[torch.Tensor]]:
    """Run `extract(wav [1, N]) -> {name: [1, T, D]}` over corpus items, one file at a time.

    Returns {name: [features [T, D] float16 on CPU, one per item]} — all of them, in memory
    (evaluation on a valid split); training streams with `iter_corpus_features`. Files longer
    than `max_seconds` are encoded in consecutive chunks (a whole number of frames each).
    """
    out: dict[str, list[torch.Tensor]] = {}
    for feats in iter_corpus_features(
        extract, items, device=device, progress=progress, desc=desc, max_seconds=max_seconds
    ):
        for name, value in feats.items():
            out.setdefault(name, []).append(value)
    return out
