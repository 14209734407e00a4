"""audiolm.core.audio: loading every format, resampling, normalisation, saving, and every bad input."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiolm.core.audio import (
    audio_duration,
    load_audio,
    normalize_loudness,
    normalize_peak,
    resample,
    rms_db,
    save_audio,
)
from audiolm.core.errors import AudioError
from tests.helpers import tone

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


PURE = dict(harmonics=(0.5,), noise=0.0)  # tests.helpers.tone: 0.5 * sin(2 pi 220 (c + 1) t) on channel c


def _wav_header(sample_rate: int, channels: int = 1, bits: int = 16, n_bytes: int = 0) -> bytes:
    """A canonical 44-byte RIFF/WAVE header; `n_bytes` of data are claimed (none follow)."""
    block = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", 36 + n_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, bits)
        + b"data"
        + struct.pack("<I", n_bytes)
    )


# ------------------------------------------------------------------------------------------
# formats


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_load_returns_float32_channels_first(tmp_path: Path, suffix: str) -> None:
    data = tone(**PURE, channels=2).numpy()
    sf.write(tmp_path / f"a{suffix}", data.T, 24000)
    wav, sr = load_audio(tmp_path / f"a{suffix}")
    assert sr == 24000 and wav.dtype == torch.float32 and wav.shape == (2, 12000)
    assert np.allclose(wav.numpy(), data, atol=1e-4)


@pytest.mark.parametrize(
    "suffix,tool",
    [(".ogg", "vorbis"), (".opus", "opus"), (".mp3", "mp3")],
)
def test_load_compressed_formats(tmp_path: Path, suffix: str, tool: str) -> None:
    src = tmp_path / "src.wav"
    sf.write(src, tone(0.5, 48000, **PURE, channels=1).numpy().T, 48000, subtype="PCM_16")
    out = tmp_path / f"a{suffix}"
    if tool == "vorbis":
        sf.write(out, tone(0.5, 48000, **PURE, channels=1).numpy().T, 48000, format="OGG", subtype="VORBIS")
    elif tool == "opus":
        sf.write(out, tone(0.5, 48000, **PURE, channels=1).numpy().T, 48000, format="OGG", subtype="OPUS")
    else:
        try:
            sf.write(out, tone(0.5, 48000, **PURE, channels=1).numpy().T, 48000, format="MP3", subtype="MPEG_LAYER_III")
        except (sf.LibsndfileError, ValueError, TypeError):
            if shutil.which("ffmpeg") is None:
                pytest.skip("no mp3 encoder: libsndfile lacks one and ffmpeg is not installed")
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), str(out)], check=True)
    wav, sr = load_audio(out)
    assert sr == 48000 and wav.dtype == torch.float32 and wav.shape[0] == 1
    assert abs(wav.shape[1] - 24000) < 3000  # codecs pad a little
    rms = float(wav.pow(2).mean().sqrt())
    assert 0.3 < rms < 0.42  # the tone survived (0.5 * sin has RMS 0.354)


def test_mono_mix_and_resample_on_load(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(0.5, 24000, **PURE, channels=2).numpy().T, 24000, subtype="FLOAT")
    wav, sr = load_audio(tmp_path / "a.wav", sample_rate=16000, mono=True)
    assert sr == 16000 and wav.shape == (1, 8000)
    ref, _ = load_audio(tmp_path / "a.wav")
    mixed = resample(ref.mean(0, keepdim=True), 24000, 16000)
    assert torch.allclose(wav, mixed, atol=1e-6)


def test_audio_duration(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(0.75, 16000, **PURE, channels=1).numpy().T, 16000)
    assert audio_duration(tmp_path / "a.wav") == pytest.approx(0.75)


# ------------------------------------------------------------------------------------------
# round trips and resampling (property-based)


@FAST
@given(
    channels=st.integers(1, 3),
    n=st.integers(1, 4000),
    sr=st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000]),
    suffix=st.sampled_from([".wav", ".flac"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_save_load_round_trip(tmp_path: Path, channels: int, n: int, sr: int, suffix: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = rng.uniform(-1, 1, size=(channels, n)).astype(np.float32)
    path = save_audio(tmp_path / f"r{suffix}", torch.from_numpy(data), sr)
    wav, rate = load_audio(path)
    assert rate == sr and wav.shape == (channels, n)
    assert float((wav - torch.from_numpy(data)).abs().max()) <= 1.0 / 32768 + 1e-6  # PCM_16


@FAST
@given(n=st.integers(1, 3000), seed=st.integers(0, 2**31 - 1))
def test_float_wav_round_trip_is_exact(tmp_path: Path, n: int, seed: int) -> None:
    data = np.random.default_rng(seed).normal(size=(1, n)).astype(np.float32)  # beyond [-1, 1] too
    save_audio(tmp_path / "f.wav", data, 24000, subtype="FLOAT")
    wav, _ = load_audio(tmp_path / "f.wav")
    assert np.array_equal(wav.numpy(), data)


@FAST
@given(
    from_sr=st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000]),
    to_sr=st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000]),
    seconds=st.floats(0.2, 1.0),
    freq_frac=st.floats(0.02, 0.3),
)
def test_resample_length_and_energy(from_sr: int, to_sr: int, seconds: float, freq_frac: float) -> None:
    # a tone well below both Nyquist frequencies keeps its energy (mean power) through soxr
    n = int(seconds * from_sr)
    freq = freq_frac * min(from_sr, to_sr)
    x = torch.sin(2 * torch.pi * freq * torch.arange(n, dtype=torch.float64) / from_sr).float()
    x = x.expand(2, 3, n)  # any leading dims
    y = resample(x, from_sr, to_sr)
    assert y.shape[:-1] == (2, 3) and y.dtype == torch.float32
    assert abs(y.shape[-1] - n * to_sr / from_sr) <= 1
    edge = int(0.05 * to_sr)  # the filter's edges ramp in and out
    power_in, power_out = x.pow(2).mean().item(), y[..., edge:-edge].pow(2).mean().item()
    assert power_out == pytest.approx(power_in, rel=0.03)


def test_resample_numpy_and_identity() -> None:
    x = np.random.default_rng(0).normal(size=(3, 100)).astype(np.float32)
    assert resample(x, 16000, 16000) is x
    y = resample(x, 16000, 8000)
    assert isinstance(y, np.ndarray) and y.shape == (3, 50)
    assert resample(torch.zeros(1, 0), 24000, 16000).shape == (1, 0)


def test_resample_rejects_absurd_rates() -> None:
    with pytest.raises(AudioError, match="sample rate"):
        resample(torch.zeros(10), 0, 16000)
    with pytest.raises(AudioError, match="sample rate"):
        resample(torch.zeros(10), 16000, 10_000_000)


# ------------------------------------------------------------------------------------------
# normalisation


@FAST
@given(scale=st.floats(1e-4, 10.0), seed=st.integers(0, 1000))
def test_normalize_peak(scale: float, seed: int) -> None:
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(2, 500)).astype(np.float32)) * scale
    y = normalize_peak(x, peak=0.9)
    assert float(y.abs().max()) == pytest.approx(0.9, rel=1e-5)
    assert torch.equal(normalize_peak(torch.zeros(1, 10)), torch.zeros(1, 10))


@FAST
@given(scale=st.floats(1e-3, 1.0), target=st.floats(-40.0, -15.0))
def test_normalize_loudness(scale: float, target: float) -> None:
    x = scale * torch.sin(torch.arange(4800) * 0.05).unsqueeze(0)  # crest factor sqrt(2)
    y = normalize_loudness(x, target_db=target)
    assert rms_db(y) == pytest.approx(target, abs=0.01)
    loud = normalize_loudness(x, target_db=0.0)  # would clip: held to the peak limit
    assert float(loud.abs().max()) == pytest.approx(0.99, rel=1e-5)
    assert torch.equal(normalize_loudness(torch.zeros(1, 8)), torch.zeros(1, 8))


# ------------------------------------------------------------------------------------------
# bad input: one test per case, each message is one line naming the file


def _raises_naming(path: Path, match: str, **kwargs) -> None:
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_missing_path(tmp_path: Path) -> None:
    _raises_naming(tmp_path / "nope.wav", "no such file")


def test_directory(tmp_path: Path) -> None:
    _raises_naming(tmp_path, "directory")


def test_zero_length_file(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    _raises_naming(tmp_path / "empty.wav", "empty")


def test_header_only_file(tmp_path: Path) -> None:
    (tmp_path / "hdr.wav").write_bytes(_wav_header(24000))
    _raises_naming(tmp_path / "hdr.wav", "no audio samples")


def test_header_claiming_missing_data(tmp_path: Path) -> None:
    (tmp_path / "cut.wav").write_bytes(_wav_header(24000, n_bytes=1_000_000))
    _raises_naming(tmp_path / "cut.wav", "truncated WAV")


def test_header_claiming_more_data_than_present(tmp_path: Path) -> None:
    """libsndfile reads a cut WAV as a shorter one; we refuse it (issue #16)."""
    sf.write(tmp_path / "cut.wav", np.zeros(24000, np.float32), 24000, subtype="PCM_16")
    (tmp_path / "cut.wav").write_bytes((tmp_path / "cut.wav").read_bytes()[:-10000])
    _raises_naming(tmp_path / "cut.wav", "truncated WAV")


def test_corrupt_bytes(tmp_path: Path) -> None:
    (tmp_path / "junk.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    _raises_naming(tmp_path / "junk.wav", "cannot read audio")


def test_unsupported_format(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("these are not samples\n" * 50)
    _raises_naming(tmp_path / "notes.txt", "unsupported or unrecognised")


def test_a_file_too_short_to_identify_is_not_called_a_pipe(tmp_path: Path) -> None:
    """libsndfile says "possibly a pipe?" for a 3-byte mp3 (issue #16): said plainly instead."""
    (tmp_path / "bad.mp3").write_bytes(b"ID3")
    for read in (load_audio, audio_duration):
        with pytest.raises(AudioError, match="not a recognised audio file") as e:
            read(tmp_path / "bad.mp3")
        assert "pipe" not in str(e.value)


def test_nan_samples(tmp_path: Path) -> None:
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2], np.float32), 24000, subtype="FLOAT")
    _raises_naming(tmp_path / "nan.wav", "NaN or infinite")


def test_inf_samples(tmp_path: Path) -> None:
    sf.write(tmp_path / "inf.wav", np.array([0.1, np.inf, 0.2], np.float32), 24000, subtype="FLOAT")
    _raises_naming(tmp_path / "inf.wav", "NaN or infinite")


@pytest.mark.parametrize("rate", [1, 500, 999, 400_000, 4_000_000])
def test_absurd_sample_rate_in_file(tmp_path: Path, rate: int) -> None:
    path = tmp_path / f"rate{rate}.wav"
    path.write_bytes(_wav_header(rate, n_bytes=200) + bytes(200))
    _raises_naming(path, "sample rate")


def test_absurd_requested_rate(tmp_path: Path) -> None:
    save_audio(tmp_path / "a.wav", tone(0.1, 16000, **PURE, channels=1).numpy(), 16000)
    _raises_naming(tmp_path / "a.wav", "sample rate", sample_rate=10)


def test_save_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="use .wav or .flac"):
        save_audio(tmp_path / "a.mp3", torch.zeros(1, 10), 16000)
    with pytest.raises(AudioError, match="NaN or infinite"):
        save_audio(tmp_path / "a.wav", torch.tensor([0.0, float("nan")]), 16000)
    with pytest.raises(AudioError, match="sample rate"):
        save_audio(tmp_path / "a.wav", torch.zeros(10), 999_999)
    with pytest.raises(AudioError, match=r"\[channels, samples\]"):
        save_audio(tmp_path / "a.wav", torch.zeros(1, 2, 10), 16000)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "a.flac"
    save_audio(path, torch.zeros(1, 100), 16000)
    save_audio(path, 0.5 * torch.ones(1, 50), 16000)
    wav, _ = load_audio(path)
    assert wav.shape == (1, 50) and [p.name for p in tmp_path.iterdir()] == ["a.flac"]


# ------------------------------------------------------------------------------------------
# fuzzing: whatever the bytes, load_audio returns audio or raises AudioError — nothing else


def _valid_file_bytes(tmp_path: Path, fmt: str) -> bytes:
    path = tmp_path / f"seed.{fmt.lower()}"
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    sf.write(path, tone(0.05, 8000, **PURE, channels=1).numpy().T, 8000, format=fmt, subtype=subtype)
    return path.read_bytes()


def _check_never_crashes(path: Path) -> None:
    try:
        wav, sr = load_audio(path)
    except AudioError as e:
        assert str(path) in str(e) and "\n" not in str(e)
    else:
        assert wav.dtype == torch.float32 and wav.ndim == 2 and torch.isfinite(wav).all()


@FAST
@given(data=st.binary(min_size=0, max_size=2048))
def test_fuzzed_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.wav"
    path.write_bytes(data)
    _check_never_crashes(path)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(["WAV", "FLAC", "OGG"]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=12),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_fuzzed_mutations_of_valid_files(tmp_path: Path, fmt: str, edits: list, cut: int | None) -> None:
    data = bytearray(_valid_file_bytes(tmp_path, fmt))
    for position, value in edits:  # header bytes are the likeliest to break a parser
        data[position % min(len(data), 128 if position % 2 else len(data))] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path / "mutant.bin"
    path.write_bytes(bytes(data))
    _check_never_crashes(path)
