"""A small pitch tracker learned from Harvest: the codec's F0 for its pitch code, at YIN's cost.

    net = PitchNet(PitchNetConfig())
    logits = net(wav [B, N])                       # [B, T, 1 + classes]: 0 = unvoiced
    f0_hz, voiced = net.track(wav [B, N], frames)  # [B, T] each, 0 Hz where unvoiced

Why: the codec's decoder is only as good as the F0 it is sent (pitch.py). YIN leaves about a
quarter of the frames unvoiced that Harvest (pyworld, the eval judge's tracker) voices, and the
decoder fills those with noise; Harvest itself runs at 2.5x real time, far from the codec's
100x. Distilling Harvest into a CREPE-style classifier at codec scale (BENCHMARKS.md, session
12) keeps most of Harvest's gain for about what YIN costs.

Framing is YIN's (pitch.yin_f0): frame t is the n_fft samples centred on [t*hop, (t+1)*hop), so
it looks (n_fft - hop) / 2 samples ahead and no further (the backbone is causal). Features per
frame: the Hann-windowed log-magnitude up to `max_hz`, less its own mean (loudness-free), plus
that mean as one more channel (so silence can be called unvoiced) — each frame's features
depend on that frame alone, so the net streams. Output: `classes` log-spaced F0 classes from
fmin to fmax (20 cents apart at the defaults) and "unvoiced" as class 0; trained with soft
targets (a Gaussian of `sigma_classes` around the Harvest F0), read back as the
probability-weighted mean of log F0 over +-`decode_radius` classes around the peak.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.models.codec.config import PitchNetConfig
from audiolm.models.codec.convnext import ConvNeXtBackbone


class PitchNet(nn.Module):
    """Waveform [B, N] -> per-frame logits [B, T, 1 + classes] (class 0 = unvoiced)."""

    window: torch.Tensor  # buffer

    def __init__(self, config: PitchNetConfig):
        super().__init__()
        self.config = config
        c = config
        self.backbone = ConvNeXtBackbone(
            c.feature_bins + 1, c.dim, c.intermediate, c.layers, c.kernel_size, causal=True
        )
        self.head = nn.Linear(c.dim, 1 + c.classes)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)

    @property
    def lookahead_samples(self) -> int:
        return (self.config.n_fft - self.config.hop_length) // 2

    def features(self, wav: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """wav [B, N] -> [B, 1 + bins, T]: the frame's mean log-magnitude, then the log-magnitude
        less that mean. T = frames (default ceil(N / hop))."""
        c = self.config
        if frames is None:
            frames = -(-wav.shape[-1] // c.hop_length)
        pad = (c.n_fft - c.hop_length) // 2
        x = F.pad(wav.float(), (pad, pad + max(0, frames * c.hop_length - wav.shape[-1])))
        x = x.unfold(-1, c.n_fft, c.hop_length)[:, :frames]  # [B, T, n_fft], YIN's frames
        spectrum = torch.fft.rfft(x * self.window, dim=-1)[..., : c.feature_bins]  # [B, T, bins]
        log_magnitude = torch.log(spectrum.abs().clamp(min=1e-5))
        level = log_magnitude.mean(-1, keepdim=True)  # [B, T, 1]
        return torch.cat([level, log_magnitude - level], dim=-1).transpose(1, 2)

    def forward(self, wav: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """wav [B, N] -> logits [B, T, 1 + classes]."""
        return self.head(self.backbone(self.features(wav, frames)).transpose(1, 2))

    def decode(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """logits [B, T, 1 + classes] -> (F0 in Hz [B, T], 0 where unvoiced; voiced [B, T])."""
        c = self.config
        probs = logits.float().softmax(-1)
        voiced = probs[..., 0] < c.unvoiced_threshold
        pitch = probs[..., 1:]  # [B, T, classes]
        peak = pitch.argmax(-1, keepdim=True)  # 0-based
        offsets = torch.arange(-c.decode_radius, c.decode_radius + 1, device=logits.device)
        near = (peak + offsets).clamp(0, c.classes - 1)  # [B, T, 2r + 1]
        weights = pitch.gather(-1, near) * ((peak + offsets >= 0) & (peak + offsets < c.classes))
        position = 1 + (weights * near).sum(-1) / weights.sum(-1).clamp(min=1e-12)
        f0 = c.class_to_hz(position)
        return torch.where(voiced, f0, torch.zeros_like(f0)), voiced

    @torch.no_grad()
    def track(self, wav: torch.Tensor, frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """wav [B, N] -> (F0 in Hz [B, T], 0 where unvoiced; voiced mask [B, T]), as pitch.yin_f0."""
        return self.decode(self(wav, frames))

    def soft_targets(self, f0_hz: torch.Tensor) -> torch.Tensor:
        """Harvest F0 [B, T] (0 = unvoiced) -> target distribution [B, T, 1 + classes]."""
        c = self.config
        centres = torch.arange(1, c.classes + 1, device=f0_hz.device, dtype=torch.float32)
        position = c.hz_to_class(f0_hz.float().clamp(min=c.fmin))[..., None]  # [B, T, 1]
        gauss = torch.exp(-0.5 * ((centres - position) / c.sigma_classes).square())
        gauss = gauss / gauss.sum(-1, keepdim=True)
        voiced = (f0_hz > 0)[..., None]
        unvoiced_target = F.one_hot(torch.zeros_like(f0_hz, dtype=torch.long), 1 + c.classes).float()
        return torch.where(voiced, F.pad(gauss, (1, 0)), unvoiced_target)

    def loss(self, logits: torch.Tensor, f0_hz: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of logits [B, T, 1 + classes] against the soft targets of f0_hz [B, T],
        averaged over the frames where mask [B, T] is 1 (default: all)."""
        per_frame = -(self.soft_targets(f0_hz) * logits.float().log_softmax(-1)).sum(-1)  # [B, T]
        if mask is None:
            return per_frame.mean()
        return (per_frame * mask).sum() / mask.sum().clamp(min=1)
