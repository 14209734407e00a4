"""The public Codec: shapes at every bit rate, input handling, errors, save/load, loaders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audiolm.core.errors import AudiolmError, CheckpointError
from audiolm.models.codec.codec import Codec, CodecInputError
from audiolm.models.codec.config import CodecConfig
from audiolm.models.codec.model import CodecModel


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.manual_seed(0)
    model = CodecModel(CodecConfig.tiny())
    for layer in model.quantizer.layers:  # spread the codebooks so codes vary
        layer.embed.normal_()
    return Codec(model)


def test_import_from_package():
    import audiolm

    assert audiolm.Codec is Codec


@pytest.mark.parametrize("kbps,levels", [(1.5, 2), (3, 4), (6, 8), (12, 16)])
def test_shapes_at_every_bandwidth(codec, kbps, levels):
    wav = 0.1 * torch.randn(3, 1, 24000 + 100)
    codes = codec.encode(wav, 24000, kbps=kbps)
    frames = -(-wav.shape[-1] // 320)
    assert codes.shape == (3, levels, frames) and codes.dtype == torch.long
    assert codec.levels_for_kbps(kbps) == levels
    assert 0 <= int(codes.min()) and int(codes.max()) < codec.codebook_size
    audio = codec.decode(codes)
    assert audio.shape == (3, 1, frames * 320) and audio.dtype == torch.float32


def test_attributes(codec):
    assert (codec.sample_rate, codec.frame_rate, codec.codebook_size, codec.n_q) == (24000, 75, 1024, 16)
    assert codec.bandwidths == (1.5, 3.0, 6.0, 12.0)


def test_any_rate_and_stereo_input(codec):
    mono = 0.1 * torch.randn(16000)
    codes_16k = codec.encode(mono, 16000)
    assert codes_16k.shape == (1, 8, 75)  # 1 s at 16 kHz -> 1 s at 24 kHz -> 75 frames
    stereo = torch.stack([mono, mono])  # [2, N]: identical channels mix to the same mono
    assert torch.equal(codec.encode(stereo, 16000), codes_16k)
    assert torch.equal(codec.encode(mono.numpy(), 16000), codes_16k)


def test_bad_inputs_give_clear_errors(codec):
    codes = codec.encode(0.1 * torch.randn(1, 1, 3200), 24000, kbps=6)
    with pytest.raises(CodecInputError, match="levels"):
        codec.decode(codes[:, :5])
    with pytest.raises(CodecInputError, match=r"\[0, 1023\].*1024"):
        codec.decode(torch.cat([codes[:, :, :-1], torch.full_like(codes[:, :, -1:], 1024)], dim=2))
    with pytest.raises(CodecInputError, match="-1"):
        codec.decode(codes - codes.max() - 1)
    with pytest.raises(CodecInputError, match=r"\[B, Q, T\]"):
        codec.decode(codes[0])
    with pytest.raises(CodecInputError, match="integers"):
        codec.decode(codes.float())
    with pytest.raises(CodecInputError, match="24 kbps is not offered.*1.5, 3, 6, 12"):
        codec.encode(torch.zeros(100), 24000, kbps=24)
    with pytest.raises(CodecInputError, match="NaN"):
        codec.encode(torch.full((100,), float("nan")), 24000)
    with pytest.raises(AudiolmError, match="sample rate"):
        codec.encode(torch.zeros(100), 0)
    assert issubclass(CodecInputError, AudiolmError) and issubclass(CodecInputError, ValueError)


def test_save_load_round_trip_is_bit_exact(codec, tmp_path):
    codec.save(tmp_path / "codec")
    loaded = Codec.from_pretrained(tmp_path / "codec")
    state, loaded_state = codec.model.state_dict(), loaded.model.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)
    wav = 0.1 * torch.randn(2, 1, 4800)
    codes = codec.encode(wav, 24000, kbps=12)
    assert torch.equal(loaded.encode(wav, 24000, kbps=12), codes)
    assert torch.equal(loaded.decode(codes), codec.decode(codes))


def test_missing_or_wrong_checkpoints(tmp_path, monkeypatch):
    import audiolm.models.codec.codec as codec_module

    monkeypatch.setattr(codec_module, "default_codec_dir", lambda: tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="shipped codec is not there"):
        Codec.from_pretrained()
    with pytest.raises(CheckpointError, match="not found"):
        Codec.from_pretrained(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"kind": "semantic", "format_version": 1, "config": {}}))
    with pytest.raises(CheckpointError, match="kind"):
        Codec.from_pretrained(tmp_path / "other")


def _tiny_hf_encodec(path):
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    config = EncodecConfig(num_filters=4, hidden_size=16, num_lstm_layers=1, codebook_size=1024)
    hf = EncodecModel(config).eval()
    with torch.no_grad():
        for layer in hf.quantizer.layers:  # transformers initialises codebooks to zero
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    hf.save_pretrained(path)
    return hf


def test_from_pretrained_hf_encodec_matches_transformers(tmp_path):
    hf = _tiny_hf_encodec(tmp_path / "encodec")
    codec = Codec.from_pretrained(tmp_path / "encodec")
    assert codec.bandwidths == (1.5, 3.0, 6.0, 12.0, 24.0) and codec.n_q == 32
    wav = 0.1 * torch.randn(2, 1, 24000)
    for kbps in (1.5, 6.0, 24.0):
        codes = codec.encode(wav, 24000, kbps=kbps)
        with torch.no_grad():
            expected = hf.encode(wav, bandwidth=kbps).audio_codes[0]  # [B, Q, T]
            expected_audio = hf.decode(expected[None], [None]).audio_values
        assert torch.equal(codes, expected)
        assert torch.allclose(codec.decode(codes), expected_audio, atol=1e-5)
    # converted weights save as an audiolm codec and load back identically
    codec.save(tmp_path / "ours")
    again = Codec.from_pretrained(tmp_path / "ours")
    assert torch.equal(again.encode(wav, 24000, kbps=6), codec.encode(wav, 24000, kbps=6))


def test_stereo_hf_encodec_is_refused(tmp_path):
    from transformers import EncodecConfig, EncodecModel

    config = EncodecConfig(num_filters=2, hidden_size=8, num_lstm_layers=1, audio_channels=2)
    EncodecModel(config).save_pretrained(tmp_path / "stereo")
    with pytest.raises(CheckpointError, match="audio_channels=2"):
        Codec.from_pretrained(tmp_path / "stereo")


def test_numpy_float64_input(codec):
    codes = codec.encode(np.zeros(2400, dtype=np.float64), 24000, kbps=1.5)
    assert codes.shape == (1, 2, 8)
