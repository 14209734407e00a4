"""Log-mel and MFCC frames in plain torch, aligned to the semantic frame grid.

Frame convention shared by every semantic feature here: at frame rate R (hop H = 16000 / R)
a waveform of N samples gives T = N // H frames, and frame t is centred on sample (t + ½)·H.
The 10 ms analysis frames (25 ms Hann window, hop 160) are placed so that groups of H / 160
consecutive frames are centred on exactly that point; `stack` / `pool` then turn them into
frames at R. Labels for evaluation use the same centres.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import cast

import torch

ANALYSIS_HOP = 160  # 10 ms at 16 kHz
ANALYSIS_WINDOW = 400  # 25 ms at 16 kHz
N_FFT = 512


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(n_mels: int, sample_rate: int = 16000, n_fft: int = N_FFT) -> torch.Tensor:
    """Triangular HTK-mel filters: [n_fft // 2 + 1, n_mels]."""
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    low, high = (float(_hz_to_mel(torch.tensor(hz, dtype=torch.float64))) for hz in (20.0, sample_rate / 2))
    edges = _mel_to_hz(torch.linspace(low, high, n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower[None]) / (centre - lower)[None]
    falling = (upper[None] - bins[:, None]) / (upper - centre)[None]
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def analysis_frames(wav: torch.Tensor, hop_length: int) -> torch.Tensor:
    """10 ms power spectra aligned to the frame grid of `hop_length`.

    wav: [B, N] -> power: [B, T * hop_length // 160, 257] with T = N // hop_length.
    """
    if hop_length % ANALYSIS_HOP:
        raise ValueError(f"hop_length must be a multiple of {ANALYSIS_HOP}, got {hop_length}")
    n_frames = (wav.shape[-1] // hop_length) * (hop_length // ANALYSIS_HOP)
    # analysis frame i covers [160 i - 120, 160 i + 280): centred at 160 i + 80, so frames
    # (k·s .. k·s + s - 1), s = hop/160, are centred together at (k + ½)·hop.
    left = (ANALYSIS_WINDOW - ANALYSIS_HOP) // 2
    padded = torch.nn.functional.pad(wav, (left, ANALYSIS_WINDOW))
    frames = padded.unfold(-1, ANALYSIS_WINDOW, ANALYSIS_HOP)[:, :n_frames]  # [B, F, 400]
    window = torch.hann_window(ANALYSIS_WINDOW, periodic=True, dtype=wav.dtype, device=wav.device)
    spectrum = torch.fft.rfft(frames * window, n=N_FFT)  # [B, F, 257]
    return spectrum.real.square() + spectrum.imag.square()


def log_mel(wav: torch.Tensor, hop_length: int, n_mels: int = 80) -> torch.Tensor:
    """wav: [B, N] at 16 kHz -> log-mel: [B, F, n_mels] at 100 Hz on the grid of `hop_length`."""
    power = analysis_frames(wav, hop_length)
    fb = mel_filterbank(n_mels).to(device=wav.device, dtype=power.dtype)
    return torch.log(power @ fb + 1e-6)


@lru_cache(maxsize=8)
def _dct_matrix(n_mels: int, n_mfcc: int) -> torch.Tensor:
    """Orthonormal DCT-II: [n_mels, n_mfcc]."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)
    dct = torch.cos(math.pi / n_mels * (n[:, None] + 0.5) * k[None])
    dct[:, 0] *= 1.0 / math.sqrt(2.0)
    return (dct * math.sqrt(2.0 / n_mels)).float()


def _deltas(x: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Regression deltas over time. x: [B, F, D] -> [B, F, D]."""
    padded = torch.nn.functional.pad(x.transpose(1, 2), (width, width), mode="replicate").transpose(1, 2)
    num = cast(
        torch.Tensor,
        sum(
            n * (padded[:, width + n : width + n + x.shape[1]] - padded[:, width - n : width - n + x.shape[1]])
            for n in range(1, width + 1)
        ),
    )
    return num / (2 * sum(n * n for n in range(1, width + 1)))


def mfcc_frames(wav: torch.Tensor, hop_length: int, n_mfcc: int = 13, n_mels: int = 40) -> torch.Tensor:
    """13 MFCCs + deltas + delta-deltas at 100 Hz on the grid of `hop_length`.
    wav: [B, N] at 16 kHz -> [B, F, 3 * n_mfcc] with F = (N // hop_length) * (hop_length // 160)."""
    logmel = log_mel(wav, hop_length, n_mels)  # [B, F, n_mels]
    cep = logmel @ _dct_matrix(n_mels, n_mfcc).to(logmel)  # [B, F, 13]
    d1 = _deltas(cep)
    return torch.cat([cep, d1, _deltas(d1)], dim=-1)  # [B, F, 39]


def mfcc(
    wav: torch.Tensor, frame_rate: int, n_mfcc: int = 13, n_mels: int = 40, sample_rate: int = 16000
) -> torch.Tensor:
    """The baseline features: 13 MFCCs + deltas + delta-deltas at 100 Hz, mean-pooled to the
    frame rate. wav: [B, N] at 16 kHz -> [B, T, 3 * n_mfcc] with T = N // (16000 / frame_rate)."""
    hop = sample_rate // frame_rate
    feats = mfcc_frames(wav, hop, n_mfcc, n_mels)  # [B, F, 39]
    group = hop // ANALYSIS_HOP
    b, f, d = feats.shape
    return feats.reshape(b, f // group, group, d).mean(dim=2)  # [B, T, 39]
