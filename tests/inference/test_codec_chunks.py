"""Chunked codec encode/decode equals the whole-file result (inference/codec_chunks.py).

Stated tolerance (module docstring, BENCHMARKS.md "Chunked codec"): decoded audio within 1e-5
absolute of whole-file decoding (1e-4 with a harmonic iSTFT head); codes identical except float-rounding near-ties (>= 99.9%).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolm.core.audio import load_audio, resample, save_audio
from audiolm.core.errors import AudioError
from audiolm.inference.codec_chunks import (
    ChunkedDecoder,
    ChunkedEncoder,
    decode_chunked,
    encode_chunked,
    round_trip_file,
)
from audiolm.models.codec.codec import Codec, CodecInputError
from audiolm.models.codec.config import CodecConfig
from audiolm.models.codec.model import CodecModel
from audiolm.models.codec.pitch import codes_to_pitch
from tests.helpers import random_codec


def _codec(**changes) -> Codec:
    torch.manual_seed(0)
    config = CodecConfig.tiny()
    for key, value in changes.items():
        setattr(config, key, value)
    model = CodecModel(config)
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.embed.normal_()
            layer.inited.fill_(True)
        # a random tiny LSTM forgets within a few frames, so any context would hide a lost
        # state; x6 recurrent weights give it a memory longer than a chunk's context
        for module in model.modules():
            if isinstance(module, torch.nn.LSTM):
                for name, weight in module.named_parameters():
                    if "weight_hh" in name:
                        weight.mul_(6.0)
    return Codec(model)


@pytest.fixture(scope="module")
def codec():
    return _codec()


HOP = 320


def _signal(seconds: float, rate: int = 24000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    tone = 0.3 * torch.sin(2 * torch.pi * 220 * t) * torch.sin(2 * torch.pi * 0.7 * t)
    return (tone + 0.05 * torch.randn(t.shape, generator=g))[None]  # [1, N]


def test_context_is_read_from_the_layers(codec):
    ctx = codec.chunk_context
    assert ctx.hop_length == 320 and ctx.exact
    assert ctx.encode_recurrent and ctx.decode_recurrent  # the SEANet LSTMs are carried
    assert ctx.encode_lookahead == 0 and ctx.decode_lookahead == 0  # causal SEANet
    for size in (ctx.encode_left, ctx.decode_left, ctx.encode_edge, ctx.decode_edge):
        assert size > 0 and size % 320 == 0


def test_declared_and_unknown_architectures_get_their_context(codec):
    class Declared(torch.nn.Module):
        context_samples = 700
        lookahead_samples = 480

    class Unknown(torch.nn.Module):
        pass

    model = CodecModel(CodecConfig.tiny())
    model.decoder = Declared()
    ctx = Codec(model).chunk_context
    assert (ctx.decode_left, ctx.decode_lookahead) == (960, 640) and ctx.exact  # whole frames
    model.decoder = Unknown()
    ctx = Codec(model).chunk_context
    assert ctx.decode_left == 4 * 24000 and ctx.decode_lookahead == 24000 and not ctx.exact


@pytest.mark.parametrize("chunk_seconds", [1 / 75, 2 / 75, 0.1, 0.37, 5.0])
def test_chunked_encode_equals_whole_file(codec, chunk_seconds):
    wav = _signal(1.3)[..., :-123]  # not a whole number of frames
    whole = codec.encode(wav, 24000, kbps=6)
    chunked = encode_chunked(codec, wav, 24000, kbps=6, chunk_seconds=chunk_seconds)
    assert chunked.shape == whole.shape
    assert (chunked == whole).float().mean() >= 0.999


@pytest.mark.parametrize("chunk_frames", [1, 2, 7, 40, 1000])
def test_chunked_decode_equals_whole_file(codec, chunk_frames):
    codes = codec.encode(_signal(1.1), 24000, kbps=12)
    whole = codec.decode(codes)
    pieces = list(decode_chunked(codec, codes, chunk_frames=chunk_frames))
    ctx = codec.chunk_context  # pieces wait for the edge lookahead while the window starts at 0
    bound = chunk_frames + (ctx.decode_edge + ctx.decode_left) // 320
    assert all(p.shape[-1] <= bound * 320 for p in pieces)  # bounded pieces, not the whole file
    chunked = torch.cat(pieces, dim=-1)
    assert chunked.shape == whole.shape
    assert (chunked - whole).abs().max() < 1e-5


def test_without_the_carried_lstm_state_chunks_differ(codec, monkeypatch):
    """The equality above depends on carrying the LSTM state: dropping it must show."""
    import audiolm.inference.codec_chunks as chunks

    codes = codec.encode(_signal(1.1), 24000, kbps=12)
    whole = codec.decode(codes)
    monkeypatch.setattr(chunks, "_is_lstm_layer", lambda module: False)
    chunked = torch.cat(list(decode_chunked(codec, codes, chunk_frames=5)), dim=-1)
    assert (chunked - whole).abs().max() > 1e-3
    chunked_codes = encode_chunked(codec, _signal(1.1), 24000, 12, chunk_seconds=5 / 75)
    assert (chunked_codes == codes).float().mean() < 0.9


def test_pushing_odd_pieces_gives_the_same_codes_and_audio(codec):
    wav = _signal(0.9)
    whole = codec.encode(wav, 24000, kbps=3)
    enc = ChunkedEncoder(codec, kbps=3, chunk_seconds=0.1)
    dec = ChunkedDecoder(codec, chunk_frames=3)
    codes, audio = [], []
    for start in range(0, wav.shape[-1], 997):
        c = enc.push(wav[0, start : start + 997])
        codes.append(c)
        audio.append(dec.push(c))
    codes.append(enc.finish())
    audio += [dec.push(codes[-1]), dec.finish()]
    assert torch.equal(torch.cat(codes, -1), whole)
    assert (torch.cat(audio, -1) - codec.decode(whole)).abs().max() < 1e-5
    with pytest.raises(CodecInputError):
        enc.push(wav[0, :10])
    with pytest.raises(CodecInputError):
        dec.finish()


def test_a_non_causal_or_time_normalised_codec_is_handled():
    codec = _codec(use_causal_conv=False, trim_right_ratio=1.0)
    ctx = codec.chunk_context
    assert ctx.encode_lookahead > 0 and ctx.decode_lookahead > 0
    codes = codec.encode(_signal(0.8), 24000, kbps=6)
    assert (torch.cat(list(decode_chunked(codec, codes, 4)), -1) - codec.decode(codes)).abs().max() < 1e-5
    assert (encode_chunked(codec, _signal(0.8), 24000, 6, chunk_seconds=0.05) == codes).float().mean() >= 0.999
    with pytest.raises(CodecInputError, match="time_group_norm"):
        _ = _codec(norm_type="time_group_norm").chunk_context


@pytest.mark.parametrize("rate", [24000, 16000, 44100])
def test_round_trip_file_equals_whole_file(codec, tmp_path, rate):
    wav = resample(_signal(1.7, seed=rate), 24000, rate)
    wav = torch.cat([wav, 0.5 * wav], dim=0)  # stereo: mixed to mono
    src = tmp_path / "in.wav"
    save_audio(src, wav, rate, subtype="FLOAT")
    blocks = []
    result = round_trip_file(codec, src, blocks.append, kbps=6, chunk_seconds=0.2)
    out = np.concatenate(blocks)
    loaded, _ = load_audio(src)
    codes = codec.encode(loaded, rate, kbps=6)
    reference = resample(codec.decode(codes)[0], 24000, rate)[0, : loaded.shape[-1]].numpy()
    assert torch.equal(result.codes, codes)
    assert out.shape == reference.shape == (loaded.shape[-1],) and result.samples == loaded.shape[-1]
    assert np.abs(out - reference).max() < 1e-4  # soxr streaming vs one-shot + float rounding


def test_round_trip_file_refuses_bad_files(codec, tmp_path):
    nan = tmp_path / "nan.wav"
    data = np.zeros(24000, np.float32)
    data[20000] = np.nan
    sf.write(nan, data, 24000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        round_trip_file(codec, nan, lambda block: None)
    truncated = tmp_path / "short.wav"
    sf.write(truncated, np.zeros(24000, np.float32), 24000, subtype="PCM_16")
    truncated.write_bytes(truncated.read_bytes()[:-10000])  # header still claims 24000 samples
    with pytest.raises(AudioError, match="truncated"):
        round_trip_file(codec, truncated, lambda block: None)


def _frame_rate_codec(phase: str) -> Codec:
    """phase "comb" = "harmonic" with the comb of harmonics in the magnitudes; "pitched" = the
    pitch code as level 0 and the harmonic-plus-noise head; "pitched_ahead" = that with a
    decoder that sees 2 latent frames ahead."""
    import dataclasses

    ahead = phase == "pitched_ahead"
    phase = "pitched" if ahead else phase
    comb, pitched = phase == "comb", phase == "pitched"
    istft_phase = "harmonic" if comb else "harmonic_noise" if pitched else phase
    config = dataclasses.replace(
        CodecConfig.tiny(),
        encoder="stft",
        decoder="istft",
        frame_dim=32,
        frame_intermediate=64,
        encoder_layers=2,
        decoder_layers=2,
        istft_phase=istft_phase,
        istft_harmonic_comb=comb,
        pitch_codebook=pitched,
        decoder_lookahead=2 if ahead else 0,
        istft_tonal_max_hz=4000.0 if ahead else 0.0,  # as shipped: tonal phases below 4 kHz only
    )
    return random_codec(config)


@pytest.mark.parametrize("phase", ["direct", "integrated", "harmonic", "comb", "pitched", "pitched_ahead"])
def test_frame_rate_istft_codec_runs_in_chunks_with_its_declared_lookahead(phase):
    """The frame-rate codec (STFT encoder / iSTFT decoder) declares its decoder's lookahead;
    its encoder gets the conservative default (the pitched encoder declares its context and the
    pitch tracker's lookahead). Chunked == whole file either way; with integrated phase, the
    running phase is carried from window to window (pitched: the fundamental's too)."""
    codec = _frame_rate_codec(phase)
    ctx = codec.chunk_context
    ahead = phase == "pitched_ahead"
    phase = "pitched" if ahead else phase
    # 480 samples (+ 2 frames ahead), in whole frames
    assert ctx.decode_lookahead == (1280 if ahead else 640) and not ctx.encode_recurrent
    assert ctx.exact == (phase == "pitched") and ctx.encode_lookahead == (640 if phase == "pitched" else 24000)
    wav = _signal(1.0)
    codes = codec.encode(wav, 24000, kbps=6)
    if phase == "pitched":  # the 220 Hz tone (loud from ~0.13 to ~0.6 s) is voiced: level 0 holds its pitch code
        f0 = codes_to_pitch(codes[0, 0, 10:40], 1024, 50.0, 800.0)
        assert ((f0 / 220.0 - 1).abs() < 0.03).all()
    whole = codec.decode(codes)
    # a harmonic head multiplies F0's float rounding by the harmonic number (up to ~300)
    tolerance = 1e-4 if phase in ("harmonic", "comb", "pitched") else 1e-5
    for chunk_frames in (1, 5, 40):
        chunked = torch.cat(list(decode_chunked(codec, codes, chunk_frames)), dim=-1)
        assert chunked.shape == whole.shape and (chunked - whole).abs().max() < tolerance
    assert (encode_chunked(codec, wav, 24000, 6, chunk_seconds=0.1) == codes).float().mean() >= 0.999


def test_integrated_phase_chunks_differ_without_the_carried_phase(monkeypatch):
    """The check above can fail: a window that restarts its running phase at zero (no
    prefix from the last window) gives other audio."""
    codec = _frame_rate_codec("integrated")
    codes = codec.encode(_signal(1.0), 24000, kbps=6)
    whole = codec.decode(codes)
    decoder = codec.model.decoder
    original = decoder.forward_with_phase
    monkeypatch.setattr(decoder, "forward_with_phase", lambda z, prefix=None: original(z, None))
    chunked = torch.cat(list(decode_chunked(codec, codes, 5)), dim=-1)
    assert (chunked - whole).abs().max() > 1e-3


@pytest.mark.parametrize("phase", [None, "direct", "integrated", "harmonic", "pitched", "pitched_ahead"])
def test_streaming_skip_and_push_ready_equal_whole_decode(codec, phase):
    """The streaming use: a prompt's frames skipped (no audio), then frames pushed in uneven
    pieces come out as soon as their lookahead has arrived, and equal one whole decode."""
    chunk_codec = codec if phase is None else _frame_rate_codec(phase)
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 1024, (2, 4, 180), generator=gen)
    whole = chunk_codec.decode(codes)
    decoder = ChunkedDecoder(chunk_codec)
    decoder.skip(codes[..., :50])
    decoder.skip(codes[..., 50:70])
    assert decoder.frames_done == 70
    out, t = [], 70
    for n in (7, 1, 40, 13, 13):
        piece = decoder.push_ready(codes[..., t : t + n])
        t += n
        assert decoder.frames_done == t - decoder.lookahead_frames or piece.shape[-1] == 0
        out.append(piece)
    out.append(decoder.push_ready(codes[..., t:], final=True))
    assert decoder.frames_done == 180
    streamed = torch.cat(out, dim=-1)
    assert streamed.shape[-1] == 110 * HOP
    assert (streamed - whole[..., 70 * HOP :]).abs().max() < (
        1e-4 if phase in ("harmonic", "pitched", "pitched_ahead") else 1e-5
    )


def test_push_ready_waits_for_the_lookahead():
    codec = _frame_rate_codec("direct")
    decoder = ChunkedDecoder(codec)
    codes = torch.randint(0, 1024, (1, 4, 10), generator=torch.Generator().manual_seed(2))
    assert decoder.push_ready(codes[..., :2]).shape[-1] == 0  # two frames of lookahead pending
    assert decoder.push_ready(codes[..., 2:5]).shape[-1] == (5 - decoder.lookahead_frames) * HOP
