"""Many samples of one prompt in bounded batches (`AudioLM.generate_batches`, `continue_audio`'s
`batch_size` / `max_memory`, `audiolm continue --num-samples N`): the batch bound holds (a spy
on generate_continuation counts every batch), N outputs come back, and they are the samples one
big batch gives (sample i uses seed + i whatever the batching)."""

from __future__ import annotations

import pytest
import torch

from audiolm.core.audio import load_audio, save_audio
from audiolm.inference.limits import RequestError
from audiolm.inference.pipeline import AudioLM
from tests.helpers import run_cli, tone

SR = 24000


@pytest.fixture(scope="module")
def lm(tiny_pipeline) -> AudioLM:
    return AudioLM.from_pretrained(tiny_pipeline)


@pytest.fixture
def spy(monkeypatch):
    """Records (num_samples, seed) of every generate_continuation call, on every AudioLM."""
    calls: list[tuple[int, int]] = []
    real = AudioLM.generate_continuation

    def recording(self, *args, **kwargs):
        calls.append((kwargs.get("num_samples", 1), kwargs.get("seed")))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AudioLM, "generate_continuation", recording)
    return calls


def test_more_samples_than_the_batch_bound_come_back_whole(lm, spy):
    whole = lm.continue_audio(tone(0.5), SR, seconds=0.2, seed=40, num_samples=5, batch_size=5)
    assert spy == [(5, 40)]
    spy.clear()
    batched = lm.continue_audio(tone(0.5), SR, seconds=0.2, seed=40, num_samples=5, batch_size=2)
    assert spy == [(2, 40), (2, 42), (1, 44)]  # never more than 2 at once; sample i is seed + i
    assert batched.shape == whole.shape and batched.shape[:2] == (5, 1)
    assert torch.allclose(batched, whole, atol=1e-5)
    assert not torch.equal(batched[0], batched[1])


def test_generate_batches_yields_each_batch_with_its_first_sample(lm, spy):
    got = list(lm.generate_batches(tone(0.5), SR, seconds=0.2, seed=3, num_samples=7, batch_size=3))
    assert [first for first, _ in got] == [0, 3, 6]
    assert [r.audio.shape[0] for _, r in got] == [3, 3, 1]
    assert [r.codes.shape[0] for _, r in got] == [3, 3, 1]
    assert spy == [(3, 3), (3, 6), (1, 9)]
    assert got[0][1].timings["encode"] > 0  # the prompt is encoded once, before the first batch
    spy.clear()
    one = lm.generate_continuation(tone(0.5), SR, seconds=0.2, seed=3 + 4)
    assert torch.equal(got[1][1].codes[1], one.codes[0])  # sample 4 = seed + 4


def test_the_memory_budget_bounds_the_batch(lm, spy):
    per_sample = lm.plan_batches(0.2, 1, lm.encode_prompt(tone(0.5), SR)).per_sample_bytes
    audio = lm.continue_audio(tone(0.5), SR, seconds=0.2, seed=1, num_samples=5, max_memory=2 * per_sample + 1)
    assert audio.shape[0] == 5
    assert [n for n, _ in spy] == [2, 2, 1]
    spy.clear()
    with pytest.raises(RequestError, match="one continuation needs about"):
        lm.continue_audio(tone(0.5), SR, seconds=0.2, num_samples=5, max_memory=per_sample // 2)
    assert spy == []  # refused before any batch ran
    for bad in (0, -1, 2.5, True):
        with pytest.raises(RequestError, match="batch_size"):
            lm.continue_audio(tone(0.5), SR, seconds=0.2, num_samples=2, batch_size=bad)
    with pytest.raises(RequestError, match="memory budget"):
        lm.continue_audio(tone(0.5), SR, seconds=0.2, num_samples=2, max_memory=float("nan"))
    assert spy == []


def test_progress_reports_samples_between_batches(lm, capsys):
    events = []
    lm.continue_audio(
        tone(0.5), SR, seconds=0.1, seed=0, num_samples=5, batch_size=2, progress=lambda *e: events.append(e)
    )
    assert [e for e in events if e[0] == "samples"] == [("samples", d, 5) for d in (0, 2, 4, 5)]
    assert {e[0] for e in events} >= {"semantic", "coarse", "fine", "codec"}
    events.clear()
    lm.continue_audio(tone(0.5), SR, seconds=0.1, seed=0, num_samples=2, progress=lambda *e: events.append(e))
    assert not [e for e in events if e[0] == "samples"]  # one batch: no samples bar
    capsys.readouterr()
    lm.continue_audio(tone(0.5), SR, seconds=0.1, seed=0, num_samples=3, batch_size=2, progress=True)
    err = capsys.readouterr().err
    assert "samples" in err and "3/3" in err and "semantic" in err  # tqdm bars on stderr


def test_cli_num_samples_runs_in_batches_under_max_memory(lm, tiny_pipeline, tmp_path, capsys, spy):
    prompt = tmp_path / "p.wav"
    save_audio(prompt, tone(0.5), SR)
    per_sample = lm.plan_batches(0.2, 1, lm.encode_prompt(*load_audio(prompt))).per_sample_bytes
    gb = 2.5 * per_sample / 1024**3  # 2 samples (the CLI counts the whole file as prompt: a little more)
    argv = ["continue", prompt, "-o", tmp_path / "s.wav", "--pipeline", tiny_pipeline, "--seconds", 0.2, "--seed", 20]
    code, out, err = run_cli(capsys, *argv, "--num-samples", 5, "--max-memory", f"{gb:.12f}")
    assert code == 0, err
    assert [n for n, _ in spy] == [2, 2, 1]
    assert "batch 1/3: samples 1-2 of 5" in err and "batch 3/3: samples 5-5 of 5" in err
    files = [tmp_path / f"s-{i}.wav" for i in range(1, 6)]
    assert all(f.is_file() for f in files) and out.count("wrote") == 5
    expected = lm.continue_audio(*load_audio(prompt), seconds=0.2, seed=20, num_samples=5)
    for i, f in enumerate(files):
        wav, sr = load_audio(f)
        assert sr == SR and wav.shape[-1] == expected.shape[-1]
        assert torch.allclose(wav, expected[i], atol=1e-3)  # 16-bit files
