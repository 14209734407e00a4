"""Helpers for the wavenet tests. Tiny WaveNets for the tests: a few layers, a few channels, receptive fields of tens of samples."""

from __future__ import annotations

import torch

from audiolm.models.wavenet.model import WaveNet

from audiolm.models.wavenet.config import WaveNetConfig


def tiny_config(**overrides) -> WaveNetConfig:
    fields = dict(
        sample_rate=8000,
        layers=6,
        stacks=2,
        residual_channels=8,
        dilation_channels=8,
        skip_channels=16,
        gc_channels=4,
        lc_channels=8,
        crop_samples=64,
    )
    fields.update(overrides)
    return WaveNetConfig(**fields)


def random_wavenet(config: WaveNetConfig, seed: int = 0, std: float = 0.3) -> WaveNet:
    """Random weights large enough that the next-sample distribution is far from uniform, so
    fast and naive paths that differed would quickly sample differently."""
    torch.manual_seed(seed)
    model = WaveNet(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model
