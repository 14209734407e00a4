"""Tiny configs shared by the semantic tests."""

from __future__ import annotations

import pytest

from audiolm.semantic.config import SSLConfig


def tiny_ssl_config(**overrides) -> SSLConfig:
    base = dict(
        hidden_size=32, num_layers=2, contrastive_layers=1, num_heads=2, intermediate_size=64,
        feature_dim=32, conv_channels=16, codebook_groups=2, codebook_size=16, codevector_dim=32,
        num_negatives=10, crop_seconds=1.0, dropout=0.0, depthwise_kernel=5, frame_rate=50,
    )
    base.update(overrides)
    return SSLConfig(**base)


@pytest.fixture
def make_config():
    """`make_config(**overrides)` -> a tiny SSLConfig (2 layers, 32 wide)."""
    return tiny_ssl_config
