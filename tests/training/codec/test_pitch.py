"""The YIN pitch target for a harmonic decoder (training/codec/pitch.py)."""

from __future__ import annotations

import math

import pytest
import torch

from audiolm.training.codec.pitch import yin_f0

SR = 24000


def _voice(f0: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return sum(0.3 * torch.sin(2 * math.pi * f0 * h * t) / h for h in range(1, 10))[None]


@pytest.mark.parametrize("f0", [80.0, 103.1, 220.0, 430.0])
def test_yin_finds_the_pitch_of_a_harmonic_voice(f0):
    hz, voiced = yin_f0(_voice(f0), SR, frames=75, n_fft=1280, hop_length=320)
    assert hz.shape == voiced.shape == (1, 75)
    assert voiced[0, 5:70].all()
    assert (hz[0, 5:70] / f0 - 1).abs().max() < 0.02  # one-sample lag resolution


def test_noise_and_silence_are_unvoiced():
    noise = 0.1 * torch.randn(1, SR, generator=torch.Generator().manual_seed(0))
    assert not yin_f0(noise, SR, 75, 1280, 320)[1].any()
    hz, voiced = yin_f0(torch.zeros(2, SR), SR, 75, 1280, 320)
    assert not voiced.any() and (hz == 0).all()


def test_a_voice_after_silence_is_voiced_only_where_it_sounds():
    wav = torch.cat([torch.zeros(1, SR // 2), _voice(150.0, 0.5)], dim=-1)
    hz, voiced = yin_f0(wav, SR, 75, 1280, 320)
    assert not voiced[0, :30].any() and voiced[0, 45:70].all()
