"""Mel spectrograms in plain torch (no torchaudio): the filterbank, the transform, and the
multi-scale log-mel distance used both as a training loss and as an evaluation metric."""

from __future__ import annotations

import math

import torch
from torch import nn


def hz_to_mel(hz: float | torch.Tensor):
    """HTK mel scale."""
    if isinstance(hz, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular HTK-scale filters [n_mels, n_fft // 2 + 1], peak 1 (torchaudio's defaults)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    mel_points = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    hz_points = mel_to_hz(mel_points)
    lower, center, upper = hz_points[:-2, None], hz_points[1:-1, None], hz_points[2:, None]
    rising = (fft_freqs[None] - lower) / (center - lower)
    falling = (upper - fft_freqs[None]) / (upper - center)
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return filters.float()


class MelSpectrogram(nn.Module):
    """wav [..., N] -> mel spectrogram [..., n_mels, frames] (Hann window, centred).

    power=2: mel of the power spectrum (torchaudio's default, used by `mel_distance`);
    power=1: mel of the magnitude spectrum of a window-energy-normalised STFT (the loss: its
    scale does not depend on the window size).
    """

    window: torch.Tensor  # buffer
    filters: torch.Tensor  # buffer

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, power: int = 2):
        super().__init__()
        if power not in (1, 2):
            raise ValueError(f"power must be 1 or 2, got {power}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.power = power
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(n_fft, n_mels, sample_rate), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        lead = wav.shape[:-1]
        flat = wav.reshape(-1, wav.shape[-1]).float()
        pad = self.n_fft // 2
        mode = "reflect" if flat.shape[-1] > pad else "constant"
        flat = torch.nn.functional.pad(flat[:, None], (pad, pad), mode=mode)[:, 0]
        spec = torch.stft(
            flat, self.n_fft, self.hop_length, window=self.window, center=False, return_complex=True
        )  # [B', F, frames]
        if self.power == 2:
            spec = spec.real.pow(2) + spec.imag.pow(2)
        else:  # magnitude, kept differentiable at zero
            spec = (spec.real.pow(2) + spec.imag.pow(2) + 1e-9).sqrt() / self.window.pow(2).sum().sqrt()
        mel = self.filters @ spec  # [B', n_mels, frames]
        return mel.reshape(*lead, *mel.shape[-2:])


class MultiScaleMel(nn.Module):
    """Mel spectrograms at window sizes 2^min_log2 .. 2^max_log2 (hop = window / 4)."""

    def __init__(self, sample_rate: int, min_log2: int = 6, max_log2: int = 11, n_mels: int = 64, power: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(
            MelSpectrogram(sample_rate, 2**i, 2**i // 4, min(n_mels, 2**i // 4), power)
            for i in range(min_log2, max_log2 + 1)
        )

    def forward(self, wav: torch.Tensor) -> list[torch.Tensor]:
        return [scale(wav) for scale in self.scales]


def multiscale_mel_loss(
    mel: MultiScaleMel, estimate: torch.Tensor, target: torch.Tensor, log_floor: float = 1e-3
) -> torch.Tensor:
    """Frequency-domain reconstruction loss: mean over scales of L1(mel) + L1(log mel).

    `mel` should be built with power=1 (magnitude mel of a window-normalised STFT; speech at
    -23 dBFS has a median band magnitude near 0.03). The log term floors magnitudes at
    `log_floor` (~-30 dB below that median): with a much lower floor the log term is dominated
    by the decoder's noise in near-empty bands and training stalls (a decoder without quantizer
    could not overfit one batch with 1e-5, the floor DAC puts on power).
    estimate, target [B, 1, N] -> a scalar."""
    total = estimate.new_zeros(())
    for est, ref in zip(mel(estimate), mel(target)):
        total = total + (est - ref).abs().mean()
        total = total + (torch.log(est.clamp(min=log_floor)) - torch.log(ref.clamp(min=log_floor))).abs().mean()
    return total / len(mel.scales)


_DISTANCE_CACHE: dict[tuple[int, str], MultiScaleMel] = {}


@torch.no_grad()
def mel_distance(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int) -> float:
    """Multi-scale log-mel distance (lower is better) between two clips [..., N] at `sample_rate`.

    Mean absolute difference of log10(mel + 1e-5) over windows 64..2048 samples (hop = window /
    4, up to 64 mel bands), averaged over scales. The clips are cut to the shorter length.
    """
    n = min(reference.shape[-1], estimate.shape[-1])
    key = (sample_rate, str(reference.device))
    if key not in _DISTANCE_CACHE:
        _DISTANCE_CACHE[key] = MultiScaleMel(sample_rate).to(reference.device)
    mel = _DISTANCE_CACHE[key]
    total = 0.0
    for ref, est in zip(mel(reference[..., :n].float()), mel(estimate[..., :n].float())):
        total += float((torch.log10(ref + 1e-5) - torch.log10(est + 1e-5)).abs().mean())
    return total / len(mel.scales)
