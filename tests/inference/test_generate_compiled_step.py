"""The in-process compiled CPU step (`decode(..., compile_step="jit")`): same logits as the eager step
(fp32, atol 1e-4) and the same tokens for the same seeds, across window slides; compiled once
per model / batch / sampling config and then reused without recompiling; rebuilt when the
weights change. Skipped, with the reason, where inductor cannot build C++ kernels (CI installs
g++ and the Python headers: `.ci/run`). The first compile takes ~30 s on a cold inductor
cache (one 2-core machine), so the default run compiles once."""

import pytest
import torch

from audiolm.inference.compiled_step import CompiledStep, compile_unavailable, compiled_step, compiled_steps
from audiolm.inference.decode import decode
from audiolm.inference.sampling import SamplingConfig
from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.transformer import Transformer

pytestmark = pytest.mark.skipif(compile_unavailable() is not None, reason=str(compile_unavailable()))


def tiny_model(seed=0):
    # matrices of only three shapes (96x32, 32x32, 32x16), so inductor autotunes few GEMMs
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=96, dim=32, n_layers=2, n_heads=2, hidden_dim=16, max_seq_len=24)
    model = Transformer(cfg)
    with torch.no_grad():  # weights 8x the init's: peaked attention, so a small error shows
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    return model


def assert_same_generation(compiled, eager):
    torch.testing.assert_close(compiled.logits, eager.logits, atol=1e-4, rtol=0)
    assert torch.equal(compiled.tokens, eager.tokens)
    assert compiled.window_starts == eager.window_starts


def test_compiled_step_equals_eager_and_is_reused(monkeypatch):
    model = tiny_model()
    sampling = SamplingConfig(temperature=1.0, top_k=8)
    prompt = torch.randint(0, 96, (1, 5))
    # 24-token context, keep 10: 40 new tokens slide the window several times; the steps at
    # kv_len 24 (before a slide) run eagerly, all the others compiled
    kwargs = dict(sampling=sampling, seeds=[7], return_logits=True, window_keep=10)
    eager = decode(model, prompt, 40, **kwargs)
    compiled = decode(model, prompt, 40, compile_step="jit", **kwargs)
    assert len(set(eager.window_starts)) >= 3
    assert_same_generation(compiled, eager)
    steps = compiled_steps(model)
    assert len(steps) == 1
    (step,) = steps
    assert step.calls > 10

    # another prompt length (a one-token prompt: its first step, kv_len 1, runs eagerly) and
    # other seeds reuse the compiled step. The step skips Dynamo's guards after compiling;
    # here they are evaluated, and any guard failing (a recompile) would raise
    prompt1 = torch.randint(0, 96, (1, 1))
    kwargs.update(seeds=[123])
    monkeypatch.setattr(CompiledStep, "check_guards", True)
    with torch.compiler.set_stance("fail_on_recompile"):
        compiled1 = decode(model, prompt1, 30, compile_step="jit", **kwargs)
    monkeypatch.setattr(CompiledStep, "check_guards", False)
    assert_same_generation(compiled1, decode(model, prompt1, 30, **kwargs))
    assert compiled_steps(model) == [step]

    # different seeds give different draws through the compiled step too
    other = decode(model, prompt, 40, compile_step="jit", **{**kwargs, "seeds": [8]})
    assert not torch.equal(other.tokens, compiled.tokens)

    # new KV caches (another batch size was decoded): the step is rebuilt, not recompiled silently
    model.setup_caches(1, 24)
    assert not step.fresh()
    assert compiled_step(model, 1, sampling, masked=False) is not step
    step = compiled_step(model, 1, sampling, masked=False)
    assert step.fresh()
    # a weight changed in place: the step no longer matches the model and is not used again
    with torch.no_grad():
        model.output.weight.mul_(2.0)
    assert not step.fresh()
    assert compiled_step(model, 1, sampling, masked=False) is not step  # built anew (compiles lazily)


# a second compile (~20 s on a cold inductor cache): in the default run, so CI checks batching,
# masks and top-p on the compiled path (both compile tests: 25 s of CPU, BENCHMARKS.md)
def test_compiled_step_batched_with_logits_mask_and_top_p():
    model = tiny_model(seed=1)
    sampling = SamplingConfig(temperature=0.8, top_k=0, top_p=0.9)
    allowed = torch.stack([torch.arange(96) % 2 == 0, torch.arange(96) % 3 != 0])  # [2, V]
    prompt = torch.randint(0, 96, (2, 4))
    kwargs = dict(sampling=sampling, seeds=[1, 2], return_logits=True, logits_mask=lambda pos: allowed)
    eager = decode(model, prompt, 25, **kwargs)
    compiled = decode(model, prompt, 25, compile_step="jit", **kwargs)
    assert_same_generation(compiled, eager)
    assert bool(allowed.gather(1, compiled.tokens[:, 4:]).all())


def test_compile_step_is_for_cpu_only():
    model = tiny_model()
    with pytest.raises(ValueError, match="CPU"):
        decode(model, torch.zeros(1, 3, dtype=torch.long, device="meta"), 2, compile_step="jit")


def test_bench_decode_compile_adds_compiled_rows(monkeypatch, capsys):
    import json

    from audiolm.evaluation.lm import bench
    from tests.helpers import run_command

    monkeypatch.setattr(bench, "SIZES", {"10M": tiny_model().config})
    # the cached step's own tests compile it (test_compile_cache.py); here the row is what counts
    monkeypatch.setattr("audiolm.inference.decode.cached_step", lambda *a, **k: None)
    monkeypatch.setattr(bench, "measure_bandwidth", lambda device, **kw: 10.0)
    code = run_command(
        [
            "bench",
            "decode",
            "--json",
            "--sizes",
            "10M",
            "--batches",
            "1",
            "--new-tokens",
            "30",
            "--repeats",
            "1",
            "--no-hf",
        ]
    )
    assert code == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["impl"] for r in results] == ["audiolm", "audiolm-compiled"]  # compiled by default
    code = run_command(
        [
            "bench",
            "decode",
            "--json",
            "--sizes",
            "10M",
            "--batches",
            "1",
            "--new-tokens",
            "30",
            "--repeats",
            "1",
            "--no-hf",
            "--no-compile",
        ]
    )
    assert code == 0 and [r["impl"] for r in json.loads(capsys.readouterr().out)["results"]] == ["audiolm"]
    assert results[0]["bound_tokens_per_s"] == results[1]["bound_tokens_per_s"] and results[1]["tokens_per_s"] > 0
