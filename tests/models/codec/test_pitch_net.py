"""The learned pitch tracker: framing, causality, targets and read-out, and the codec that uses it."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from audiolm.core.config import config_from_dict, config_to_dict
from audiolm.core.errors import ConfigError
from audiolm.models.codec.codec import Codec
from audiolm.models.codec.config import CodecConfig, PitchNetConfig
from audiolm.models.codec.pitch import pitch_to_codes
from audiolm.models.codec.pitch_net import PitchNet
from tests.helpers import random_codec, tiny_frame_rate_config


def _net(seed: int = 0, **changes) -> PitchNet:
    torch.manual_seed(seed)
    net = PitchNet(dataclasses.replace(PitchNetConfig.tiny(), **changes))
    with torch.no_grad():  # random but not tiny weights: the head's logits vary across frames
        net.head.weight.normal_(0, 1.0)
    return net.eval()


def test_shapes_follow_the_codecs_frames():
    net = _net()
    wav = torch.randn(2, 5000) * 0.1
    logits = net(wav)
    assert logits.shape == (2, -(-5000 // 320), 1 + net.config.classes)
    f0, voiced = net.track(wav, frames=20)
    assert f0.shape == voiced.shape == (2, 20)
    assert ((f0 > 0) == voiced).all()
    assert ((f0[voiced] >= net.config.fmin * 0.999) & (f0[voiced] <= net.config.fmax * 1.001)).all()


def test_frame_t_looks_ahead_only_half_a_window_less_a_hop():
    """Causal backbone, centred frames: frame t depends on samples before (t + 1) * hop + (n_fft - hop) / 2."""
    net = _net()
    hop, ahead = net.config.hop_length, net.lookahead_samples
    assert ahead == (1280 - 320) // 2
    wav = torch.randn(1, 24000) * 0.1
    t = 30
    changed = wav.clone()
    changed[:, (t + 1) * hop + ahead :] = torch.randn(1, 24000 - (t + 1) * hop - ahead)
    a, b = net(wav), net(changed)
    assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-5)
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :], atol=1e-3)


def test_the_read_out_returns_the_f0_its_targets_encode():
    net = _net()
    f0 = torch.tensor([[0.0, 55.0, 100.0, 233.3, 640.0]])
    targets = net.soft_targets(f0)  # [1, 5, 1 + classes]
    assert torch.allclose(targets.sum(-1), torch.ones(1, 5))
    assert targets[0, 0, 0] == 1 and (targets[0, 1:, 0] == 0).all()
    decoded, voiced = net.decode(torch.log(targets.clamp(min=1e-9)))
    assert voiced.tolist() == [[False, True, True, True, True]]
    assert decoded[0, 0] == 0
    assert torch.allclose(decoded[0, 1:], f0[0, 1:], rtol=0.01)


def test_the_unvoiced_threshold_decides_voicing():
    logits = torch.zeros(1, 1, 1 + PitchNetConfig.tiny().classes)
    logits[..., 0] = torch.log(torch.tensor(0.4 * logits.shape[-1] / 0.6))  # P(unvoiced) = 0.4 + a bit
    p_unvoiced = float(logits.softmax(-1)[0, 0, 0])
    assert _net(unvoiced_threshold=p_unvoiced + 0.05).decode(logits)[1].all()
    assert not _net(unvoiced_threshold=p_unvoiced - 0.05).decode(logits)[1].any()


def test_class_positions_round_trip():
    config = PitchNetConfig()
    hz = torch.tensor([50.0, 100.0, 440.0, 800.0])
    position = config.hz_to_class(hz)
    assert position[0] == 1 and torch.isclose(position[-1], torch.tensor(float(config.classes)))
    assert torch.allclose(config.class_to_hz(position), hz)


def test_the_loss_is_lowest_at_the_target():
    net = _net()
    f0 = torch.tensor([[0.0, 120.0, 300.0]])
    right = torch.log(net.soft_targets(f0).clamp(min=1e-9))
    wrong = torch.log(net.soft_targets(torch.tensor([[150.0, 0.0, 150.0]])).clamp(min=1e-9))
    assert net.loss(right, f0) < net.loss(wrong, f0)


def _net_codec_config(**net_changes) -> CodecConfig:
    net = dataclasses.replace(PitchNetConfig.tiny(), **net_changes)
    return tiny_frame_rate_config(istft_phase="harmonic_noise", pitch_codebook=True, pitch_net=net)


def test_a_codec_with_a_pitch_net_sends_the_nets_f0_as_its_pitch_code(tmp_path):
    codec = random_codec(_net_codec_config(), seed=1)
    net = codec.model.encoder.pitch_net
    assert isinstance(net, PitchNet) and not any(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        net.head.weight.normal_(0, 1.0)
    wav = torch.randn(24000, generator=torch.Generator().manual_seed(0)) * 0.1
    codes = codec.encode(wav, 24000)  # [1, Q, T]
    f0, _ = net.track(wav[None], codes.shape[-1])
    config = codec.config
    assert torch.equal(codes[0, 0], pitch_to_codes(f0, config.codebook_size, config.pitch_fmin, config.pitch_fmax)[0])
    assert (codes[0, 0] > 0).any() and (codes[0, 0] == 0).any()
    # saved and loaded: the net's weights travel inside the codec checkpoint
    reloaded = Codec.from_pretrained(codec.save(tmp_path / "codec"))
    assert reloaded.config.pitch_net == config.pitch_net
    assert torch.equal(reloaded.encode(wav, 24000), codes)
    assert reloaded.decode(codes).isfinite().all()


def test_the_pitch_net_stays_in_eval_mode_when_the_codec_trains():
    codec = random_codec(_net_codec_config(), seed=1)
    codec.model.train()
    assert codec.model.encoder.training and not codec.model.encoder.pitch_net.training


def test_a_yin_codecs_config_has_no_net_and_older_json_still_loads():
    data = config_to_dict(tiny_frame_rate_config(istft_phase="harmonic_noise", pitch_codebook=True))
    assert data["pitch_net"] is None
    del data["pitch_net"]  # as written before session 13
    config = config_from_dict(CodecConfig, json.loads(json.dumps(data)))
    assert config.pitch_net is None


def test_the_codec_config_checks_its_pitch_net():
    with pytest.raises(ValueError, match="pitch_codebook"):
        tiny_frame_rate_config(pitch_net=PitchNetConfig.tiny())
    with pytest.raises(ValueError, match="hop"):
        _net_codec_config(n_fft=1024)
    data = config_to_dict(_net_codec_config())
    data["pitch_net"]["unvoiced_threshold"] = 1.5
    with pytest.raises(ConfigError, match="unvoiced_threshold"):
        config_from_dict(CodecConfig, data)
