"""`audiolm continue --stream` (WAV to stdout or to a file valid after every chunk), several
prompts or a folder into `-o DIR`, and the chunked WAV writer."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolm.cli.app import main
from audiolm.core.audio import load_audio, save_audio
from audiolm.core.wav_stream import UNKNOWN, WavStreamWriter
from audiolm.inference.pipeline import AudioLM
from tests.helpers import tone

SR = 24000
HOP = 320
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recipe(tiny_pipeline) -> Path:
    return tiny_pipeline


@pytest.fixture(scope="module")
def lm(recipe) -> AudioLM:
    return AudioLM.from_pretrained(recipe)


@pytest.fixture(scope="module")
def prompt_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stream_prompt") / "prompt.wav"
    save_audio(path, tone(0.5), SR)
    return path


def _pcm(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0)[None]


# -- the writer -------------------------------------------------------------------------------


def test_wav_file_is_valid_after_every_chunk(tmp_path):
    path = tmp_path / "s.wav"
    chunks = [torch.rand(1, n) * 2 - 1 for n in (100, 1, 2400, 37)]
    with open(path, "wb") as f, WavStreamWriter(f, SR) as writer:
        written = 0
        for chunk in chunks:
            writer.write(chunk)
            written += chunk.shape[-1]
            info = sf.info(str(path))  # a complete file now, true sizes in the header
            assert info.frames == written and info.samplerate == SR and info.channels == 1
    audio, _ = load_audio(path)
    assert torch.allclose(audio, torch.cat(chunks, -1), atol=2 / 32767)


def test_wav_pipe_header_says_unknown_length():
    class Pipe(io.BytesIO):
        def seekable(self):
            return False

    pipe = Pipe()
    writer = WavStreamWriter(pipe, 16000, channels=2)
    writer.write(torch.tensor([[0.5, -0.5], [1.0, -2.0]]))  # [channels, n]
    data = pipe.getvalue()
    assert data[:4] == b"RIFF" and struct.unpack("<I", data[4:8])[0] == UNKNOWN
    assert struct.unpack("<I", data[40:44])[0] == UNKNOWN
    assert struct.unpack("<HHI", data[20:28]) == (1, 2, 16000)  # PCM, channels, rate
    assert np.frombuffer(data[44:], "<i2").tolist() == [16384, 32767, -16384, -32767]  # interleaved, clipped


# -- continue --stream ------------------------------------------------------------------------


def test_stream_to_stdout_is_a_playable_wav(recipe, prompt_wav, lm):
    """A real pipe: the bytes on stdout are a WAV header (unknown length) and the samples of
    continue_audio with the same seed; messages go to stderr."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "audiolm",
        "continue",
        str(prompt_wav),
        "--stream",
        "-o",
        "-",
        "--pipeline",
        str(recipe),
        "--seconds",
        "0.6",
        "--seed",
        "3",
    ]
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    data = proc.stdout
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt " and struct.unpack("<I", data[40:44])[0] == UNKNOWN
    expected = lm.continue_audio(load_audio(prompt_wav)[0], SR, seconds=0.6, seed=3)[0]
    got = _pcm(data[44:])
    assert got.shape == expected.shape
    assert torch.allclose(got, expected.clamp(-1, 1), atol=2 / 32767)


def test_stream_to_file_equals_continue(recipe, prompt_wav, lm, tmp_path, capsys):
    out = tmp_path / "s.wav"
    args = [
        "continue",
        str(prompt_wav),
        "--stream",
        "-o",
        str(out),
        "--pipeline",
        str(recipe),
        "--seconds",
        "0.5",
        "--seed",
        "5",
        "--continuation-only",
        "--num-samples",
        "2",
        "--plot",
        str(tmp_path / "p.png"),
    ]
    assert main(args) == 0, capsys.readouterr().err
    expected = lm.continue_audio(
        load_audio(prompt_wav)[0], SR, seconds=0.5, seed=5, num_samples=2, continuation_only=True
    )
    for i in range(2):
        got = load_audio(tmp_path / f"s-{i + 1}.wav")[0]
        assert torch.allclose(got, expected[i].clamp(-1, 1), atol=2 / 32767)
    assert (tmp_path / "p-1.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in capsys.readouterr().out


def test_stream_first_chunk_seconds(recipe, prompt_wav, lm, tmp_path, capsys):
    out = tmp_path / "f.wav"
    args = [
        "continue",
        str(prompt_wav),
        "--stream",
        "-o",
        str(out),
        "--pipeline",
        str(recipe),
        "--seconds",
        "0.6",
        "--seed",
        "5",
        "--continuation-only",
        "--first-chunk-seconds",
        "0.1",
    ]
    assert main(args) == 0, capsys.readouterr().err
    wav = load_audio(prompt_wav)[0]
    expected = lm.continue_audio(wav, SR, seconds=0.6, seed=5, continuation_only=True, first_chunk_seconds=0.1)
    assert torch.allclose(load_audio(out)[0], expected[0].clamp(-1, 1), atol=2 / 32767)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-o", "x.flac"], "--stream writes WAV"),
        (["-o", "x.wav", "--first-chunk-seconds", "0"], "--first-chunk-seconds: must be positive"),
        (["-o", "-", "--num-samples", "2"], "stdout carries one sample"),
    ],
)
def test_stream_usage_errors(recipe, prompt_wav, tmp_path, capsys, extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["continue", str(prompt_wav), "--stream", "--pipeline", str(recipe), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


# -- several prompts --------------------------------------------------------------------------


def test_folder_of_prompts_into_a_folder(recipe, lm, tmp_path, capsys, monkeypatch):
    """Prompts of three lengths run as one batch (padded and masked); each output equals the
    single-prompt run with the same seed."""
    batches = []
    original = AudioLM._start

    def spy(self, prompts, *args, **kwargs):
        batches.append(len(prompts))
        return original(self, prompts, *args, **kwargs)

    monkeypatch.setattr(AudioLM, "_start", spy)
    src = tmp_path / "prompts"
    src.mkdir()
    save_audio(src / "a.wav", tone(0.5, freq=200), SR)
    save_audio(src / "b.wav", tone(0.6, freq=300), SR)
    save_audio(src / "c.flac", tone(0.7, freq=250), SR)
    (src / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    args = ["continue", str(src), "-o", str(out), "--pipeline", str(recipe), "--seconds", "0.3", "--seed", "7"]
    assert main(args) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav", "c.wav"]
    assert batches == [3]
    for name in ("a.wav", "b.wav", "c.flac"):
        wav = load_audio(src / name)[0]
        expected = lm.continue_audio(wav, SR, seconds=0.3, seed=7)[0]
        got = load_audio(out / (Path(name).stem + ".wav"))[0]
        assert torch.allclose(got, expected, atol=2 / 32767), name
    # several files, with --num-samples: NAME-1.wav, NAME-2.wav
    out2 = tmp_path / "out2"
    args = [
        "continue",
        str(src / "a.wav"),
        str(src / "c.flac"),
        "-o",
        str(out2),
        "--pipeline",
        str(recipe),
        "--seconds",
        "0.2",
        "--num-samples",
        "2",
        "--seed",
        "1",
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out2.iterdir()) == ["a-1.wav", "a-2.wav", "c-1.wav", "c-2.wav"]


def test_same_length_batches_every_prompt(recipe, lm, tmp_path, capsys, monkeypatch):
    """--same-length: each prompt cut to its last N seconds (N = the shortest), one batch."""
    src = tmp_path / "prompts"
    src.mkdir()
    for name, seconds in (("a", 0.5), ("b", 0.7), ("c", 0.9)):
        save_audio(src / f"{name}.wav", tone(seconds, freq=100 + 200 * seconds), SR)
    batches = []
    original = AudioLM._start

    def spy(self, prompts, *args, **kwargs):
        batches.append(len(prompts))
        return original(self, prompts, *args, **kwargs)

    monkeypatch.setattr(AudioLM, "_start", spy)
    out = tmp_path / "out"
    args = [
        "continue",
        str(src),
        "-o",
        str(out),
        "--pipeline",
        str(recipe),
        "--seconds",
        "0.2",
        "--seed",
        "2",
        "--same-length",
        "--continuation-only",
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert batches == [3]
    # c's output is the continuation of c's last 0.49 s (37 whole frames), alone, same seed
    wav = load_audio(src / "c.wav")[0]
    cut = lm.encode_prompt(lm.encode_prompt(wav, SR).audio[:, -37 * HOP :], SR)
    expected = lm.continue_audio(None, None, seconds=0.2, seed=2, prompt=cut, continuation_only=True)[0]
    assert torch.allclose(load_audio(out / "c.wav")[0], expected, atol=2 / 32767)
    code = main(
        ["continue", str(src / "a.wav"), "-o", str(tmp_path / "x.wav"), "--pipeline", str(recipe), "--same-length"]
    )
    assert code == 2 and "--same-length is for several prompts" in capsys.readouterr().err


def test_many_prompts_batch_equals_single_runs(lm):
    prompts = [lm.encode_prompt(tone(0.5, freq=f), SR) for f in (200, 300)] + [lm.encode_prompt(tone(0.7), SR)]
    results = lm.continue_prompts(prompts, seconds=0.3, seed=4, num_samples=2)
    assert len(results) == 3
    for prompt, result in zip(prompts, results):
        single = lm.generate_continuation(None, None, seconds=0.3, seed=4, num_samples=2, prompt=prompt)
        assert torch.equal(result.codes, single.codes) and torch.equal(result.semantic, single.semantic)
        assert torch.allclose(result.audio, single.audio, atol=1e-5)


def test_many_prompts_errors(recipe, tmp_path, capsys):
    src = tmp_path / "p"
    src.mkdir()
    (tmp_path / "empty").mkdir()
    save_audio(src / "a.wav", tone(0.5), SR)
    other = tmp_path / "q"
    other.mkdir()
    save_audio(other / "a.wav", tone(0.5), SR)
    cases = [
        ([str(tmp_path / "empty")], "holds no audio files"),
        ([str(src / "a.wav"), str(other / "a.wav")], "two prompts named a"),
        ([str(src), "--stream"], "--stream takes one prompt"),
    ]
    for prompts, message in cases:
        code = main(["continue", *prompts, "-o", str(tmp_path / "out"), "--pipeline", str(recipe)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_many_prompts_split_by_max_memory(recipe, lm, tmp_path, capsys, monkeypatch):
    """--max-memory bounds the rows of a batch: prompts go in batches (shortest first), and each
    output is still the prompt's single run."""
    from audiolm.inference.limits import bytes_per_sample

    src = tmp_path / "prompts"
    src.mkdir()
    for name, seconds in (("a", 0.7), ("b", 0.4), ("c", 0.55)):
        save_audio(src / f"{name}.wav", tone(seconds, freq=100 + 300 * seconds), SR)
    configs = {name: stage.config for name, stage in lm.stages.items()}
    per_sample = bytes_per_sample(configs, 0.2, 0.7)
    batches = []
    original = AudioLM._start

    def spy(self, prompts, *args, **kwargs):
        batches.append([p.codes.shape[-1] for p in prompts])
        return original(self, prompts, *args, **kwargs)

    monkeypatch.setattr(AudioLM, "_start", spy)
    out = tmp_path / "out"
    args = [
        "continue",
        str(src),
        "-o",
        str(out),
        "--pipeline",
        str(recipe),
        "--seconds",
        "0.2",
        "--seed",
        "4",
        "--max-memory",
        str(2.5 * per_sample / 1024**3),
    ]
    assert main(args) == 0
    assert "batch 1/2: 2 of 3 prompts" in capsys.readouterr().err
    assert batches == [[30, 41], [52]]  # b, c, then a (whole codec frames)
    for name in ("a", "b", "c"):
        expected = lm.continue_audio(load_audio(src / f"{name}.wav")[0], SR, seconds=0.2, seed=4)[0]
        assert torch.allclose(load_audio(out / f"{name}.wav")[0], expected, atol=2 / 32767), name
