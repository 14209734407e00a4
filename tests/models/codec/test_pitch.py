"""YIN pitch and the pitch codes (models/codec/pitch.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from audiolm.models.codec.pitch import codes_to_pitch, pitch_to_codes, yin_f0
from tests.helpers import tiny_pitched_codec

SR = 24000


def _voice(f0: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return sum(0.3 * torch.sin(2 * math.pi * f0 * h * t) / h for h in range(1, 10))[None]


@pytest.mark.parametrize("f0", [80.0, 103.1, 220.0, 430.0])
def test_yin_finds_the_pitch_of_a_harmonic_voice(f0):
    hz, voiced = yin_f0(_voice(f0), SR, frames=75, n_fft=1280, hop_length=320)
    assert hz.shape == voiced.shape == (1, 75)
    assert voiced[0, 5:70].all()
    # between-sample refinement: a whole-sample lag would be 1.8 % off at 430 Hz
    assert (hz[0, 5:70] / f0 - 1).abs().max() < 0.004


def test_noise_and_silence_are_unvoiced():
    noise = 0.1 * torch.randn(1, SR, generator=torch.Generator().manual_seed(0))
    assert not yin_f0(noise, SR, 75, 1280, 320)[1].any()
    hz, voiced = yin_f0(torch.zeros(2, SR), SR, 75, 1280, 320)
    assert not voiced.any() and (hz == 0).all()


def test_a_voice_after_silence_is_voiced_only_where_it_sounds():
    wav = torch.cat([torch.zeros(1, SR // 2), _voice(150.0, 0.5)], dim=-1)
    hz, voiced = yin_f0(wav, SR, 75, 1280, 320)
    assert not voiced[0, :30].any() and voiced[0, 45:70].all()


def test_pitch_codes_round_trip_within_half_a_step():
    f0 = torch.tensor([0.0, 50.0, 61.3, 100.0, 233.3, 799.0, 800.0])
    codes = pitch_to_codes(f0, 1024, 50.0, 800.0)
    assert codes[0] == 0 and codes[1] == 1 and codes[-1] == 1023
    assert ((codes >= 0) & (codes < 1024)).all()
    back = codes_to_pitch(codes, 1024, 50.0, 800.0)
    assert back[0] == 0
    half_step = (800.0 / 50.0) ** (0.5 / 1022) - 1  # 0.14 %
    assert ((back[1:] / f0[1:] - 1).abs() <= half_step + 1e-6).all()


def test_a_coarser_pitch_code_keeps_every_nth_code_within_half_its_step():
    f0 = torch.exp(torch.linspace(math.log(50.0), math.log(800.0), 3001))
    f0[::5] = 0.0
    fine = pitch_to_codes(f0, 1024, 50.0, 800.0)
    for step in (2, 3, 4):
        coarse = pitch_to_codes(f0, 1024, 50.0, 800.0, step)
        assert torch.equal(coarse == 0, f0 == 0)  # the voicing is the fine code's
        voiced = coarse > 0
        inside = voiced & (coarse < 1023)  # the top code is a clamp
        assert ((coarse[inside] - 1) % step == 0).all()
        assert ((coarse - fine)[voiced].abs() <= step // 2 + 1).all()  # 1 = the top code's clamp
        assert coarse[voiced].unique().numel() < fine[voiced].unique().numel() / (step - 0.5)
    assert torch.equal(pitch_to_codes(f0, 1024, 50.0, 800.0, 1), fine)


def test_the_codec_config_checks_the_pitch_code_step():
    config = tiny_pitched_codec(seed=0).config
    assert dataclasses.replace(config, pitch_code_step=2).pitch_code_step == 2
    for bad in (0, 17, 2.0, True):
        with pytest.raises(ValueError, match="pitch_code_step"):
            dataclasses.replace(config, pitch_code_step=bad)


def test_pitch_outside_the_range_is_clamped_not_dropped():
    codes = pitch_to_codes(torch.tensor([20.0, 5000.0]), 1024, 50.0, 800.0)
    assert codes.tolist() == [1, 1023]  # still voiced


def test_a_shorter_integration_window_is_centred_and_checked():
    hz, voiced = yin_f0(_voice(150.0), SR, 75, 1280, 320, width=400)
    assert voiced[0, 5:70].all() and (hz[0, 5:70] / 150.0 - 1).abs().max() < 0.004
    with pytest.raises(ValueError, match="width must be"):
        yin_f0(_voice(150.0), SR, 75, 1280, 320, width=1000)  # 1000 + the longest lag > 1280


def _breathy_voice(noise: float) -> torch.Tensor:
    return _voice(150.0) + noise * torch.randn(1, SR, generator=torch.Generator().manual_seed(0))


def test_a_voicing_threshold_above_the_dip_threshold_voices_a_breathy_voice_at_its_pitch():
    # d' of this voice's period dip is ~0.33: above the dip threshold, below the voicing one
    wav = _breathy_voice(0.2)
    assert not yin_f0(wav, SR, 75, 1280, 320)[1][0, 5:70].any()  # one threshold (0.15) for both
    hz, voiced = yin_f0(wav, SR, 75, 1280, 320, voicing_threshold=0.5)
    assert voiced[0, 5:70].float().mean() > 0.9
    # the fallback dip is the first near the lowest d', not the lowest (here at twice the period)
    assert (hz[0, 5:70][voiced[0, 5:70]] / 150.0 - 1).abs().max() < 0.03


def test_a_voicing_threshold_leaves_noise_unvoiced_and_clean_voices_as_they_were():
    noise = 0.1 * torch.randn(1, SR, generator=torch.Generator().manual_seed(0))
    assert not yin_f0(noise, SR, 75, 1280, 320, voicing_threshold=0.5)[1].any()
    clean = _voice(220.0)
    assert torch.equal(yin_f0(clean, SR, 75, 1280, 320)[0], yin_f0(clean, SR, 75, 1280, 320, voicing_threshold=0.5)[0])
