"""Pitch: YIN (de Cheveigne & Kawahara 2002) in torch, vectorised over every frame of a batch,
on the iSTFT head's own framing, and the pitch codes of a codec whose level 0 is the pitch.

    f0_hz, voiced = yin_f0(wav [B, N], sample_rate, frames, n_fft, hop)   # [B, frames] each
    codes = pitch_to_codes(f0_hz, codebook_size, fmin, fmax)              # [B, frames], 0 = unvoiced
    f0_hz = codes_to_pitch(codes, codebook_size, fmin, fmax)              # [B, frames], 0 = unvoiced

A harmonic decoder is only as good as its F0: harmonic h of a wrong F0 lands h times as far
off, so the pitch is sent explicitly (a source-filter codec, as speech codecs have done since
LPC vocoders) instead of being left for an RVQ latent to carry to a fraction of a percent.
Codes 1..S-1 are log-spaced from fmin to fmax (S = 1024, 50-800 Hz: 4.7 cents a step, 0.27 %),
code 0 is "unvoiced".

Per frame (n_fft samples, frame t centred on [t*hop, (t+1)*hop) as in `ISTFTHead.analyse`):
the difference function d(tau) = sum_j (x_j - x_{j+tau})^2 over the first n_fft - max_lag
samples (from one FFT cross-correlation and running energies), its cumulative-mean
normalisation d'(tau), the first lag in [sr / fmax, sr / fmin] whose d' falls below
`threshold` refined to the smallest d' within +-20 % of it (YIN's absolute threshold, which
avoids the octave-down dips; with no dip below it, the first within 0.05 of the lowest d'),
voiced where that minimum is below `voicing_threshold` (default: `threshold`), and the lag
refined between samples by a parabola through d' around it (one sample at 24 kHz is 0.4 % of
a 100 Hz period but 1.8 % of a 430 Hz one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

NEAR_LOWEST = 0.05  # d' margin of the fallback dip (see yin_f0)


@torch.no_grad()
def yin_f0(
    wav: torch.Tensor,
    sample_rate: int,
    frames: int,
    n_fft: int,
    hop_length: int,
    fmin: float = 60.0,
    fmax: float = 600.0,
    threshold: float = 0.15,
    width: int | None = None,
    voicing_threshold: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """wav [B, N] -> (F0 in Hz [B, frames], 0 where unvoiced; voiced mask [B, frames]).

    Two thresholds on the normalised difference d' (0 = periodic, ~1 = noise): `threshold`
    picks the dip (a low one avoids octave errors), `voicing_threshold` (default `threshold`)
    decides voiced. One threshold for both calls only a third of a diphone voice's frames voiced
    where Harvest calls 85 %; 0.15 / 0.5 call 70-80 % at a few per cent more gross errors
    (BENCHMARKS.md, session 10).

    `width`: the integration window in samples (default: all the frame leaves beside the
    longest lag, n_fft - sr / fmin); a shorter one is centred in the frame and follows a
    moving pitch more closely."""
    pad = (n_fft - hop_length) // 2
    x = F.pad(wav.float(), (pad, pad + max(0, frames * hop_length - wav.shape[-1])))
    x = x.unfold(-1, n_fft, hop_length)[:, :frames]  # [B, T, n_fft]
    min_lag = max(2, int(sample_rate / fmax))
    max_lag = min(n_fft // 2, int(sample_rate / fmin))
    if width is None:
        width = n_fft - max_lag  # integration window
    elif not 2 <= width <= n_fft - max_lag:
        raise ValueError(f"width must be in [2, {n_fft - max_lag}] (n_fft - the longest lag), got {width}")
    length = width + max_lag  # the centred part of each frame that YIN reads
    start = (n_fft - length) // 2
    x = x[..., start : start + length]
    # a circular correlation of `length` points suffices: j + tau < width + max_lag never wraps
    size = length  # rfft(n=size) zero-pads the head to the frame's length
    corr = torch.fft.irfft(torch.fft.rfft(x[..., :width], size).conj() * torch.fft.rfft(x, size), size)
    corr = corr[..., : max_lag + 1]
    power = x.square()  # [B, T, length]
    energy = F.pad(power.cumsum(-1), (1, 0))  # energy[..., i] = sum of x_j^2 for j < i
    lags = torch.arange(max_lag + 1, device=x.device)
    window_energy = energy[..., lags + width] - energy[..., lags]  # sum_{j<width} x_{j+tau}^2
    diff = (window_energy[..., :1] + window_energy - 2 * corr).clamp(min=0)  # [B, T, max_lag + 1]
    running = diff[..., 1:].cumsum(-1) / torch.arange(1, max_lag + 1, device=x.device)
    # d'(0) = 1 by definition
    cmnd = torch.cat([torch.ones_like(diff[..., :1]), diff[..., 1:] / running.clamp(min=1e-12)], dim=-1)
    search = cmnd[..., min_lag:]  # lags min_lag..max_lag
    below = search < threshold
    # no dip below threshold: the first lag within NEAR_LOWEST of the lowest d', not the lowest
    # itself, which in a breathy voice is as often at twice the period (an octave down). Such a
    # frame is voiced only if voicing_threshold > threshold
    near_lowest = search <= search.min(-1, keepdim=True).values + NEAR_LOWEST
    first = torch.where(below.any(-1), below.float().argmax(-1), near_lowest.float().argmax(-1)) + min_lag  # [B, T]
    # refine: the smallest d' within +-20 % of the first dip
    span = torch.arange(-(max_lag // 5), max_lag // 5 + 1, device=x.device)
    candidates = (first[..., None] + (first[..., None] * span / max_lag).round().long()).clamp(min_lag, max_lag)
    values = cmnd.gather(-1, candidates)
    best = candidates.gather(-1, values.argmin(-1, keepdim=True))[..., 0]
    around = cmnd.gather(-1, (best[..., None] + torch.arange(-1, 2, device=x.device)).clamp(1, max_lag))
    left, centre, right = around.unbind(-1)
    curvature = left - 2 * centre + right
    shift = torch.where(curvature > 1e-9, 0.5 * (left - right) / curvature.clamp(min=1e-9), torch.zeros_like(centre))
    lag = best.float() + shift.clamp(-0.5, 0.5)  # the parabola's vertex
    voiced = centre < (threshold if voicing_threshold is None else voicing_threshold)
    voiced &= energy[..., -1] > 1e-6 * length  # not silence: mean power above 1e-6
    f0 = torch.where(voiced, sample_rate / lag, torch.zeros_like(lag))
    return f0, voiced


def pitch_to_codes(f0_hz: torch.Tensor, codebook_size: int, fmin: float, fmax: float, step: int = 1) -> torch.Tensor:
    """F0 in Hz [...] (0 = unvoiced) -> codes [...] in [0, codebook_size): 0 unvoiced, 1.. log-spaced.
    `step` > 1 keeps only every step-th code (the fine code rounded half up to a multiple of
    `step`): a coarser pitch code that an LM predicts more easily (CodecConfig.pitch_code_step)."""
    steps = codebook_size - 2
    position = torch.log(f0_hz.clamp(min=fmin, max=fmax) / fmin) / math.log(fmax / fmin) * steps
    fine = position.round().long()
    if step > 1:
        fine = (torch.div(fine + step // 2, step, rounding_mode="floor") * step).clamp(max=steps)
    return torch.where(f0_hz > 0, 1 + fine, torch.zeros_like(f0_hz, dtype=torch.long))


def codes_to_pitch(codes: torch.Tensor, codebook_size: int, fmin: float, fmax: float) -> torch.Tensor:
    """Codes [...] -> F0 in Hz [...] (0 where the code is 0, unvoiced)."""
    steps = codebook_size - 2
    f0 = fmin * torch.exp((codes - 1).clamp(min=0).float() / steps * math.log(fmax / fmin))
    return torch.where(codes > 0, f0, torch.zeros_like(f0))
