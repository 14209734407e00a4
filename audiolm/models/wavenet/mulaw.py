"""μ-law companding: float samples in [-1, 1] <-> class ids in [0, classes).

F(x) = sign(x) ln(1 + μ|x|) / ln(1 + μ) spends the classes where speech and music spend their
time, near zero; 256 classes (μ = 255) is the original WaveNet's choice.
"""

from __future__ import annotations

import math

import torch


def mulaw_encode(wav: torch.Tensor, classes: int = 256) -> torch.Tensor:
    """wav: float [...] in [-1, 1] (clipped) -> LongTensor [...] of class ids in [0, classes)."""
    mu = classes - 1
    x = wav.float().clamp(-1.0, 1.0)
    companded = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    # [-1, 1] -> [0, mu], rounded to the nearest class
    return ((companded + 1) / 2 * mu + 0.5).floor().long().clamp(0, mu)


def mulaw_decode(ids: torch.Tensor, classes: int = 256) -> torch.Tensor:
    """ids: integer [...] in [0, classes) -> float32 [...] in [-1, 1]."""
    mu = classes - 1
    y = 2 * ids.float() / mu - 1
    return torch.sign(y) * ((1 + mu) ** y.abs() - 1) / mu
