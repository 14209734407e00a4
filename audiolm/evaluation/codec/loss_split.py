"""Where a codec loses: its round trip split into magnitude vs phase, envelope vs fine structure.

`audiolm eval codec --diagnose` scores, beside the round trip itself, four hybrids of the
original and the round trip, each taking one part from the codec and the rest from the
original, so each says how much that part alone costs (ViSQOL speech mode of hybrid vs original):

    visqol_magnitude   the codec's STFT magnitude, the original's phase
    visqol_phase       the original's STFT magnitude, the codec's phase
    visqol_envelope    the codec's spectral envelope (power smoothed over 500 Hz), the original's
                       fine structure (log-magnitude less its envelope: harmonics, noise) and phase
    visqol_fine        the original's envelope, the codec's fine structure, the original's phase

and `envelope_db`: the RMS difference in dB of the two envelopes below 4 kHz (where ViSQOL's
speech mode listens and narrowband Opus still codes), on frames within 30 dB of the clip's
loudest (silence would dominate otherwise).

Why: ViSQOL compares spectro-temporal patches, and a low score says nothing about which part
of the codec to fix. On the reserved voices the shipped codec's 1.81 at 6 kbps splits into 2.09
with only its magnitude against 4.08 with only its phase, and 2.84 with only its envelope against
4.04 with only its fine structure (envelope error 6.3 dB, Opus 4.5; BENCHMARKS.md, codec
section, session 14): the envelope, not the pitch or the phase, is what to improve.

STFT framing: a Hann window of 1/37.5 s (1280 points at 24 kHz) hopped by a quarter of it,
the codec's own framing, so one frame resolves the harmonics. The envelope is each frame's
power spectrum smoothed by a 500 Hz Hann kernel (several harmonics of any voice), in dB: a
cepstral envelope (the log-magnitude liftered) averages the valleys between harmonics too, so
it moves 6-8 dB with the pitch alone (two tones of one envelope, 140 vs 150 Hz); the smoothed
power moves 0.3 dB.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FRAME_SECONDS = 1280 / 24000
SMOOTHING_HZ = 500.0
ENVELOPE_MAX_HZ = 4000.0
LOUD_DB = 30.0


def _framing(sample_rate: int) -> tuple[int, int]:
    n_fft = 2 * round(FRAME_SECONDS * sample_rate / 2)
    return n_fft, n_fft // 4


def _stft(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """wav [N] -> complex STFT [F, T]."""
    return torch.stft(wav.float(), n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)


def _istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    return torch.istft(spec, n_fft, hop, window=torch.hann_window(n_fft), length=length)


def log_envelope(power: torch.Tensor, n_fft: int, sample_rate: int) -> torch.Tensor:
    """Power spectrum [F, T] -> natural-log magnitude envelope [F, T]: the power smoothed along
    frequency by a Hann kernel SMOOTHING_HZ wide (odd, >= 3 bins), reflected at the edges."""
    width = max(3, round(SMOOTHING_HZ * n_fft / sample_rate) | 1)
    kernel = torch.hann_window(width + 2, periodic=False)[1:-1]
    kernel = (kernel / kernel.sum()).to(power.dtype)
    rows = F.pad(power.T[:, None], (width // 2, width // 2), mode="reflect")  # [T, 1, F + width - 1]
    smoothed = F.conv1d(rows, kernel[None, None])[:, 0].T  # [F, T]
    return 0.5 * smoothed.clamp(min=1e-14).log()


def _log_parts(wav: torch.Tensor, n_fft: int, hop: int, sample_rate: int) -> tuple[torch.Tensor, ...]:
    """wav [N] -> (complex STFT, log-magnitude, log envelope), [F, T] each."""
    spec = _stft(wav, n_fft, hop)
    power = spec.abs().square()
    return spec, 0.5 * power.clamp(min=1e-14).log(), log_envelope(power, n_fft, sample_rate)


def spectral_hybrids(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int) -> dict[str, torch.Tensor]:
    """reference, estimate [N] (mono, same rate; cut to the shorter) -> the four hybrids of the
    module docstring, keyed "magnitude", "phase", "envelope", "fine", each [N]."""
    n = min(reference.numel(), estimate.numel())
    reference, estimate = reference.reshape(-1)[:n], estimate.reshape(-1)[:n]
    n_fft, hop = _framing(sample_rate)
    ref, log_ref, env_ref = _log_parts(reference, n_fft, hop, sample_rate)
    est, log_est, env_est = _log_parts(estimate, n_fft, hop, sample_rate)
    phase_ref, phase_est = torch.exp(1j * ref.angle()), torch.exp(1j * est.angle())
    parts = {
        "magnitude": log_est.exp() * phase_ref,
        "phase": log_ref.exp() * phase_est,
        "envelope": (env_est + log_ref - env_ref).exp() * phase_ref,
        "fine": (env_ref + log_est - env_est).exp() * phase_ref,
    }
    return {name: _istft(spec, n_fft, hop, n) for name, spec in parts.items()}


def envelope_error_db(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int) -> float:
    """RMS dB difference of the two envelopes below 4 kHz, on the reference's frames within
    30 dB of its loudest."""
    n = min(reference.numel(), estimate.numel())
    n_fft, hop = _framing(sample_rate)
    ref, _, env_ref = _log_parts(reference.reshape(-1)[:n], n_fft, hop, sample_rate)
    _, _, env_est = _log_parts(estimate.reshape(-1)[:n], n_fft, hop, sample_rate)
    energy_db = 10 * torch.log10(ref.abs().square().sum(0) + 1e-20)  # [T]
    loud = energy_db > energy_db.max() - LOUD_DB
    bins = int(ENVELOPE_MAX_HZ * n_fft / sample_rate) + 1
    difference_db = (env_est - env_ref)[:bins, loud] * (20 / math.log(10))
    return float(difference_db.square().mean().sqrt())
