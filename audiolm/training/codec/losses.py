"""Codec training losses: waveform L1, multi-scale mel, phase derivatives, hinge or LSGAN
adversarial, feature matching.

The multi-scale mel loss lives in `audiolm.models.codec.mel` (it doubles as an evaluation metric);
this module re-exports it so the training code finds every loss in one place.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F

from audiolm.models.codec.mel import MultiScaleMel, multiscale_mel_loss

__all__ = [
    "MultiScaleMel",
    "discriminator_adversarial_loss",
    "discriminator_hinge_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "generator_hinge_loss",
    "multiscale_mel_loss",
    "head_spectral_losses",
    "phase_derivative_loss",
    "stft_magnitude_loss",
    "waveform_l1_loss",
]


def waveform_l1_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(estimate, target)


def stft_magnitude_loss(
    estimate: torch.Tensor, target: torch.Tensor, n_ffts: tuple[int, ...] = (2048, 1024, 512)
) -> torch.Tensor:
    """Multi-resolution linear-frequency STFT loss (Parallel WaveGAN, Yamamoto et al. 2020):
    spectral convergence + L1 of log magnitudes, hop n_fft / 4, averaged over resolutions.
    Linear bins resolve a voice's harmonics (11.7 Hz apart at 2048 points), which 64 mel bands
    merge above a few hundred Hz: this is the term that rewards keeping the pitch."""
    total = estimate.new_zeros(())
    for n_fft in n_ffts:
        window = torch.hann_window(n_fft, device=target.device)

        def magnitude(x: torch.Tensor, n_fft: int = n_fft, window: torch.Tensor = window) -> torch.Tensor:
            spec = torch.stft(x[:, 0].float(), n_fft, n_fft // 4, window=window, return_complex=True)
            return (spec.real.square() + spec.imag.square()).clamp(min=1e-10).sqrt()  # [B, F, T]

        est, ref = magnitude(estimate), magnitude(target)
        convergence = torch.linalg.vector_norm(ref - est, dim=(1, 2)) / torch.linalg.vector_norm(ref, dim=(1, 2)).clamp(
            min=1e-8
        )
        total = total + convergence.mean() + (torch.log(est) - torch.log(ref)).abs().mean()
    return total / len(n_ffts)


def _anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """|x| after wrapping into [-pi, pi]: the distance between two phases (APNet, Ai & Ling 2023)."""
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


def phase_derivative_loss(
    estimate: torch.Tensor, target: torch.Tensor, n_fft: int = 1024, hop_length: int = 256
) -> torch.Tensor:
    """Distance between the phase derivatives of two waveforms [B, 1, N]: instantaneous frequency
    (phase difference from frame to frame, per bin) and group delay (from bin to bin, per frame),
    each anti-wrapped and weighted by the target's magnitude, so the loss looks where the
    energy is. Mel and L1 losses leave phase coherence unlearned by a CPU-sized run; this term
    teaches it directly, with no discriminator."""
    window = torch.hann_window(n_fft, device=target.device)

    def stft(x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x[:, 0].float(), n_fft, hop_length, window=window, return_complex=True)  # [B, F, T]

    reference = stft(target)
    spec = stft(estimate)
    # nudge exact zeros off the origin: the angle's gradient is 1/|z|
    phase = torch.atan2(spec.imag, spec.real + 1e-9)
    ref_phase = torch.angle(reference)
    weight = reference.abs()
    weight = weight / weight.mean(dim=(1, 2), keepdim=True).clamp(min=1e-8)
    inst_freq = _anti_wrap(phase.diff(dim=2) - ref_phase.diff(dim=2))  # [B, F, T - 1]
    group_delay = _anti_wrap(phase.diff(dim=1) - ref_phase.diff(dim=1))  # [B, F - 1, T]
    return (weight[..., 1:] * inst_freq).mean() + (weight[:, 1:] * group_delay).mean()


def head_spectral_losses(
    head, log_magnitude: torch.Tensor, param: torch.Tensor, target: torch.Tensor, floor: float = 1e-2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Losses on an iSTFT head's own outputs (APNet-style direct spectral supervision) against
    the target waveform's STFT in the head's framing (`ISTFTHead.analyse`; target at the
    decoder's scale, i.e. times input_gain):

    magnitude: L1 between log-magnitudes [B, F, T] (target floored at `floor`, clipped at the
               head's clip): the harmonics must come through the codes, whatever the phase;
    phase:     anti-wrapped difference between the predicted per-hop phase advance (frame t-1
               -> t; "direct": the difference of the predicted angles) and the target's,
               weighted by the target's magnitude: a voiced partial advances at its own
               frequency, so this is what keeps its pitch.
    """
    frames = log_magnitude.shape[-1]
    spec = head.analyse(target, frames)  # [B, F, T]
    magnitude = spec.abs()
    target_log = torch.log(magnitude.clamp(min=floor)).clamp(max=head.max_log_magnitude)
    magnitude_loss = (log_magnitude - target_log).abs().mean()
    advance = param.diff(dim=-1) if head.phase == "direct" else param[..., 1:]  # [B, F, T - 1]
    target_advance = torch.angle(spec).diff(dim=-1)
    weight = magnitude[..., 1:]
    weight = weight / weight.mean(dim=(1, 2), keepdim=True).clamp(min=1e-8)
    phase_loss = (weight * _anti_wrap(advance - target_advance)).mean()
    return magnitude_loss, phase_loss


def discriminator_hinge_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """mean over scales of E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(x)))]."""
    total = sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits))
    return cast(torch.Tensor, total) / len(real_logits)


def generator_hinge_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """mean over scales of E[max(0, 1 - D(G(x)))] (EnCodec's generator hinge)."""
    return cast(torch.Tensor, sum(F.relu(1 - f).mean() for f in fake_logits)) / len(fake_logits)


def discriminator_lsgan_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """mean over sub-discriminators of E[(1 - D(x))^2] + E[D(G(x))^2] (HiFi-GAN)."""
    total = sum((1 - r).square().mean() + f.square().mean() for r, f in zip(real_logits, fake_logits))
    return cast(torch.Tensor, total) / len(real_logits)


def generator_lsgan_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """mean over sub-discriminators of E[(1 - D(G(x)))^2] (HiFi-GAN)."""
    return cast(torch.Tensor, sum((1 - f).square().mean() for f in fake_logits)) / len(fake_logits)


def discriminator_adversarial_loss(kind: str, real_logits, fake_logits) -> torch.Tensor:
    """The discriminator's loss for `kind` "hinge" or "lsgan"."""
    return (discriminator_hinge_loss if kind == "hinge" else discriminator_lsgan_loss)(real_logits, fake_logits)


def generator_adversarial_loss(kind: str, fake_logits) -> torch.Tensor:
    """The generator's adversarial loss for `kind` "hinge" or "lsgan"."""
    return (generator_hinge_loss if kind == "hinge" else generator_lsgan_loss)(fake_logits)


def feature_matching_loss(
    real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]
) -> torch.Tensor:
    """Relative L1 between the discriminator's feature maps of real and generated audio:
    mean over scales and layers of |f_real - f_fake| / mean|f_real| (EnCodec eq. 2)."""
    total: torch.Tensor | float = 0.0
    count = 0
    for reals, fakes in zip(real_features, fake_features):
        for real, fake in zip(reals, fakes):
            real = real.detach()
            total = total + (real - fake).abs().mean() / (real.abs().mean() + 1e-8)
            count += 1
    return cast(torch.Tensor, total / max(count, 1))
