"""The compiled step kept on disk (`compiled_step.CachedStep`, `compile_cache.py`): the same
logits and tokens as the eager step, loaded from the cache by a later caller without compiling,
never loaded for another CPU capability, torch version or set of weights, a failed compile
falling back to the eager step with one warning, and the pipeline's default / opt-out.

One real compile (tiny model, batched, masked sampling, window slides; skipped where inductor
cannot build C++ kernels); the key and fallback tests
fake the compiler and run in a second."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from audiolm.cli.app import main
from audiolm.core.audio import load_audio, save_audio
from audiolm.inference import compile_cache, compiled_step
from audiolm.inference.compiled_step import CachedStep, compile_unavailable
from audiolm.inference.decode import decode
from audiolm.inference.pipeline import AudioLM
from audiolm.inference.sampling import SamplingConfig
from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.transformer import Transformer
from tests.helpers import build_tiny_pipeline, tone

needs_compiler = pytest.mark.skipif(compile_unavailable() is not None, reason=str(compile_unavailable()))


def tiny_model(seed=0):
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=96, dim=32, n_layers=2, n_heads=2, hidden_dim=16, max_seq_len=24)
    model = Transformer(cfg)
    with torch.no_grad():  # weights 8x the init's: peaked attention, so a small error shows
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    return model


@pytest.fixture(autouse=True)
def _fresh_steps(monkeypatch, tmp_path):
    """Each test: its own cache folder, no steps kept from another test, messages collected."""
    monkeypatch.setenv("AUDIOLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(compiled_step, "_CACHED", type(compiled_step._CACHED)())
    monkeypatch.setattr(compiled_step, "_FAILED", set())
    monkeypatch.setattr(compiled_step, "_WARNED", set())
    lines: list[str] = []
    monkeypatch.setattr(compiled_step, "notify", lines.append)
    return lines


@needs_compiler
def test_cached_step_equals_eager_and_loads_from_disk(_fresh_steps, monkeypatch):
    # without max_autotune's GEMM benchmarking (minutes here); the autotuned kernels' numbers
    # are checked by the in-process step's tests (test_generate_compiled_step.py)
    monkeypatch.setattr(compiled_step, "FREEZE_AUTOTUNE", compiled_step.FREEZE)
    model = tiny_model()
    sampling = SamplingConfig(temperature=0.8, top_k=10, top_p=0.9)
    allowed = torch.stack([torch.arange(96) % 2 == 0, torch.arange(96) % 3 != 0])  # [2, V]
    prompt = torch.randint(0, 96, (2, 5))
    # 24-token context, keep 10: 40 new tokens slide the window several times
    kwargs = dict(sampling=sampling, seeds=[3, 4], return_logits=True, window_keep=10, logits_mask=lambda p: allowed)
    eager = decode(model, prompt, 40, **kwargs)
    compiled = decode(model, prompt, 40, compile_step=True, **kwargs)
    assert len(set(eager.window_starts)) >= 3
    torch.testing.assert_close(compiled.logits, eager.logits, atol=1e-4, rtol=0)
    assert torch.equal(compiled.tokens, eager.tokens) and compiled.window_starts == eager.window_starts
    assert len(_fresh_steps) == 1 and "compiling the decoding step for this machine, once" in _fresh_steps[0]
    (step,) = compiled_step._CACHED.values()
    assert step.built and step.path.is_file() and step.path.parent == compile_cache.cache_root()

    # a new process (here: the in-process steps dropped) loads the package instead of compiling
    monkeypatch.setattr(compiled_step, "_CACHED", type(compiled_step._CACHED)())
    monkeypatch.setattr(compiled_step, "export_step", lambda *a: pytest.fail("compiled again"))
    again = decode(model, prompt, 40, compile_step=True, **kwargs)
    assert torch.equal(again.tokens, eager.tokens)
    (loaded,) = compiled_step._CACHED.values()
    assert not loaded.built and loaded.path == step.path and len(_fresh_steps) == 1

    # other weights: another key, so the old package is not used (it would give other logits)
    with torch.no_grad():
        model.output.weight.mul_(1.5)
    assert not loaded.fresh()
    assert compile_cache.lookup(_key(model, 2, sampling)) is None


def _key(model, batch, sampling, masked=True):
    return compile_cache.current_key(
        compile_cache.model_hash(model, model.config),
        batch,
        model.config.max_seq_len,
        masked,
        torch.float32,
        f"temperature={sampling.temperature},top_k={sampling.top_k},top_p={sampling.top_p}",
    )


class _FakeRunner:
    """What aoti_load_package returns, for a package the fake builder wrote: the eager step."""

    def __init__(self, path: str) -> None:
        self.path = path


@pytest.fixture
def fake_compiler(monkeypatch):
    """export_step writes a small file and records the call; loading gives a fake runner."""
    built: list[Path] = []

    def fake_export(model, batch_size, sampling, masked, dtype, path):
        Path(path).write_bytes(b"package")
        built.append(Path(path))

    monkeypatch.setattr(compiled_step, "compile_unavailable", lambda: None)
    monkeypatch.setattr(compiled_step, "export_step", fake_export)
    monkeypatch.setattr(torch._inductor, "aoti_load_package", _FakeRunner)
    return built


def test_cache_entry_for_another_cpu_or_torch_is_not_used(fake_compiler, monkeypatch):
    model = tiny_model()
    sampling = SamplingConfig(top_k=5)
    first = CachedStep(model, 1, sampling)
    assert first.built and len(fake_compiler) == 1
    assert not CachedStep(model, 1, sampling).built  # the same key: loaded, not compiled
    assert len(fake_compiler) == 1

    # another CPU capability (an AVX2 machine sharing the home folder): compiled anew, its own entry
    here = compile_cache.cpu_capability
    monkeypatch.setattr(compile_cache, "cpu_capability", lambda: "AVX2" if here() != "AVX2" else "AVX512")
    other_cpu = CachedStep(model, 1, sampling)
    assert other_cpu.built and len(fake_compiler) == 2 and other_cpu.path != first.path
    monkeypatch.setattr(compile_cache, "cpu_capability", here)
    assert not CachedStep(model, 1, sampling).built  # back on this CPU: its own entry again

    # another torch version: likewise
    monkeypatch.setattr(compile_cache.torch, "__version__", "0.0.0-other")
    other_torch = CachedStep(model, 1, sampling)
    assert other_torch.built and other_torch.path not in (first.path, other_cpu.path)


def test_entry_whose_recorded_key_differs_is_not_used(fake_compiler):
    model = tiny_model()
    sampling = SamplingConfig()
    step = CachedStep(model, 1, sampling)
    meta = step.path.with_suffix(".json")
    # a package copied in under this key's name but recorded as built elsewhere (a faked key)
    recorded = json.loads(meta.read_text())
    for field, value in (("cpu_capability", "AVX2-elsewhere"), ("torch_version", "2.0.0")):
        meta.write_text(json.dumps({**recorded, field: value}))
        assert compile_cache.lookup(step.key) is None
        assert CachedStep(model, 1, sampling).built  # compiled again, the entry rewritten
    assert json.loads(meta.read_text()) == recorded
    # other shapes and sampling are other keys
    assert CachedStep(model, 2, sampling).path != step.path
    assert CachedStep(model, 1, SamplingConfig(temperature=0.5)).path != step.path
    assert CachedStep(model, 1, sampling, masked=True).path != step.path


def test_failed_compile_warns_once_and_decodes_eagerly(monkeypatch):
    def broken(*args):
        raise RuntimeError("no C++ compiler for torch.compile (inductor needs g++)\nmore detail")

    monkeypatch.setattr(compiled_step, "compile_unavailable", lambda: None)
    monkeypatch.setattr(compiled_step, "export_step", broken)
    model = tiny_model()
    prompt = torch.randint(0, 96, (1, 4))
    kwargs = dict(sampling=SamplingConfig(top_k=8), seeds=[1], return_logits=True)
    with pytest.warns(UserWarning, match="decoding with the eager step: no C\\+\\+ compiler") as caught:
        compiled = decode(model, prompt, 12, compile_step=True, **kwargs)
    assert len([w for w in caught if "eager step" in str(w.message)]) == 1
    eager = decode(model, prompt, 12, **kwargs)
    assert torch.equal(compiled.tokens, eager.tokens)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same failure again: no second warning
        decode(model, prompt, 12, compile_step=True, **kwargs)
    assert compiled_step.cached_step(model, 1, kwargs["sampling"], masked=False) is None


def test_compile_step_values():
    model = tiny_model()
    with pytest.raises(ValueError, match="compile_step must be"):
        decode(model, torch.zeros(1, 3, dtype=torch.long), 2, compile_step="fast")


# -- the pipeline: compiled by default on CPU, --no-compile / compile_step=False opt out --------


@pytest.fixture
def tiny_recipe(tmp_path_factory):
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny_compile_pipeline"))


@pytest.fixture
def spy_steps(monkeypatch):
    """Record every cached_step request (and decode eagerly: the spy returns None)."""
    calls: list[tuple] = []

    def spy(model, batch_size, sampling, masked, dtype=None, root=None):
        calls.append((batch_size, masked))
        return None

    monkeypatch.setattr("audiolm.inference.decode.cached_step", spy)
    return calls


def test_pipeline_uses_the_cached_step_by_default_on_cpu(tiny_recipe, spy_steps, monkeypatch):
    monkeypatch.setenv("AUDIOLM_COMPILE", "1")
    wav = tone(0.5)
    default = AudioLM.from_pretrained(tiny_recipe).continue_audio(wav, 24000, seconds=0.3, seed=1)
    assert (1, False) in spy_steps and (1, True) in spy_steps  # semantic (unmasked), coarse (masked)
    spy_steps.clear()
    off = AudioLM.from_pretrained(tiny_recipe, compile_step=False).continue_audio(wav, 24000, seconds=0.3, seed=1)
    assert spy_steps == [] and torch.equal(off, default)
    monkeypatch.setenv("AUDIOLM_COMPILE", "0")
    AudioLM.from_pretrained(tiny_recipe).continue_audio(wav, 24000, seconds=0.3, seed=1)
    assert spy_steps == []


def test_cli_no_compile(tiny_recipe, spy_steps, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AUDIOLM_COMPILE", "1")
    save_audio(tmp_path / "p.wav", tone(0.5), 24000)
    args = ["continue", str(tmp_path / "p.wav"), "--pipeline", str(tiny_recipe), "--seconds", "0.3", "--seed", "2"]
    assert main([*args, "-o", str(tmp_path / "a.wav"), "--no-compile"]) == 0
    assert spy_steps == []
    assert main([*args, "-o", str(tmp_path / "b.wav")]) == 0
    assert spy_steps  # the default path asked for the compiled step
    a, _ = load_audio(tmp_path / "a.wav")
    b, _ = load_audio(tmp_path / "b.wav")
    assert torch.equal(a, b)


def test_cache_keeps_under_its_size_limit_dropping_the_least_recently_used(fake_compiler, monkeypatch):
    """Each store prunes the folder to $AUDIOLM_CACHE_MAX_MB; an entry just loaded is the last
    to go, the one just stored always stays; a bad limit is a clear error."""
    import os
    import time

    model = tiny_model()
    steps = [CachedStep(model, 1, SamplingConfig(temperature=t)) for t in (0.5, 0.6, 0.7)]
    sizes = [s.path.stat().st_size for s in steps]
    now = time.time()
    for age, step in zip((30, 20, 10), steps):  # 0.5 oldest ... 0.7 newest
        os.utime(step.path, (now - age, now - age))
    assert compile_cache.lookup(steps[0].key) == steps[0].path  # a hit: 0.5 is now the newest
    # room for two entries: storing a fourth drops the least recently used two (0.6, then 0.7)
    monkeypatch.setenv("AUDIOLM_CACHE_MAX_MB", str((max(sizes) * 2 + 1) / (1 << 20)))
    fourth = CachedStep(model, 1, SamplingConfig(temperature=0.8))
    left = sorted(p.name for p in fourth.path.parent.glob("*.pt2"))
    assert left == sorted([steps[0].path.name, fourth.path.name])
    assert not steps[1].path.with_suffix(".json").exists()
    monkeypatch.setenv("AUDIOLM_CACHE_MAX_MB", "0")
    assert compile_cache.prune(fourth.path.parent, keep=fourth.path) == [steps[0].path]
    assert fourth.path.is_file()
    monkeypatch.setenv("AUDIOLM_CACHE_MAX_MB", "lots")
    with pytest.raises(ValueError, match="AUDIOLM_CACHE_MAX_MB"):
        compile_cache.max_bytes()
