"""`audiolm bench decode --json` prints exactly the agreed JSON object (tiny sizes patched in;
this checks the format, it times nothing)."""

import json

import pytest

from audiolm.evaluation.lm import bench
from audiolm.models.lm.config import TransformerConfig
from tests.helpers import run_command


def test_bench_decode_json_format(monkeypatch, capsys):
    tiny = TransformerConfig(vocab_size=64, dim=32, n_layers=1, n_heads=2, max_seq_len=64)
    monkeypatch.setattr(bench, "SIZES", {"10M": tiny})
    monkeypatch.setattr(bench, "measure_bandwidth", lambda device, **kw: 10.0)
    code = run_command(
        [
            "bench",
            "decode",
            "--json",
            "--sizes",
            "10M",
            "--batches",
            "1,2",
            "--new-tokens",
            "3",
            "--repeats",
            "1",
            "--no-compile",
        ]
    )  # the compiled rows: test_generate_compiled_step.py
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"machine", "bandwidth_GBps", "results"} and out["bandwidth_GBps"] == 10.0
    assert [(r["impl"], r["batch"]) for r in out["results"]] == [("audiolm", 1), ("hf", 1), ("audiolm", 2), ("hf", 2)]
    for r in out["results"]:
        assert set(r) == {"impl", "params", "batch", "device", "tokens_per_s", "bound_tokens_per_s"}
        assert r["device"] == "cpu" and r["tokens_per_s"] > 0 and r["bound_tokens_per_s"] > 0
    # the HF peer is the same architecture: same parameter count
    assert out["results"][0]["params"] == out["results"][1]["params"]


def test_bench_decode_rejects_bad_arguments():
    from audiolm.cli.args import UsageError

    with pytest.raises(UsageError, match="sizes"):
        run_command(["bench", "decode", "--sizes", "3B"])
    with pytest.raises(UsageError, match="batches"):
        run_command(["bench", "decode", "--batches", "one"])


def test_bench_decode_compile_needs_a_cpp_compiler(monkeypatch):
    from audiolm.cli.args import UsageError
    from audiolm.inference import compiled_step

    monkeypatch.setattr(compiled_step, "compile_unavailable", lambda: "no C++ compiler for torch.compile")
    with pytest.raises(UsageError, match="--compile: no C\\+\\+ compiler"):
        run_command(["bench", "decode", "--compile", "--sizes", "10M"])


def test_bandwidth_is_a_read_of_a_large_buffer_and_cpu_clock_needs_one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # a small buffer here to stay fast; the bench default is 1 GiB
        gbps = bench.measure_bandwidth(torch.device("cpu"), gibibytes=1 / 64, repeats=1, clock="cpu")
        assert 0.1 < gbps < 10_000
        torch.set_num_threads(2)
        with pytest.raises(ValueError, match="one torch thread"):
            bench.measure_bandwidth(torch.device("cpu"), gibibytes=1 / 64, repeats=1, clock="cpu")
    finally:
        torch.set_num_threads(threads)
    from audiolm.cli.args import UsageError

    with pytest.raises(UsageError, match="clock cpu"):
        run_command(["bench", "decode", "--clock", "cpu", "--threads", "2"])


def test_streamed_bytes_count_packed_decoding_weights_at_their_dtype():
    import torch

    from audiolm.models.lm.packed_linear import packing_available
    from audiolm.models.lm.transformer import Transformer

    model = Transformer(TransformerConfig(vocab_size=64, dim=32, n_layers=2, n_heads=2, max_seq_len=16))
    fp32 = bench.streamed_weight_bytes(model, model.tok_embeddings, 1)
    matrices = sum(layer.weight.numel() for layer in model.linears())
    norms = sum(p.numel() for n, p in model.named_parameters() if n.endswith("norm.weight"))
    assert fp32 == 4 * (matrices + norms + 32)  # + one embedding row
    if not packing_available():
        pytest.skip("this torch build has no oneDNN linear")
    from audiolm.core.cpu_features import bf16_fallback_reason, cpu_bf16_kernels
    from audiolm.inference.packed_step import packed_model

    if not cpu_bf16_kernels():
        pytest.skip(bf16_fallback_reason())
    packed_model(model, "bfloat16")
    assert bench.streamed_weight_bytes(model, model.tok_embeddings, 1) == fp32 - 2 * matrices
    torch.nn.init.zeros_(model.output.weight)  # a stale packed copy no longer counts
    assert bench.streamed_weight_bytes(model, model.tok_embeddings, 1) == fp32 - 2 * (
        matrices - model.output.weight.numel()
    )


def test_bench_decode_refuses_bfloat16_on_a_cpu_without_bf16_kernels(monkeypatch, capsys):
    from audiolm.cli.app import main
    from audiolm.core import cpu_features

    monkeypatch.setattr(cpu_features.torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(cpu_features, "_onednn_bf16", lambda: False)
    for flags in (["--decode-weights", "bfloat16"], ["--dtype", "bfloat16"]):
        assert main(["bench", "decode", "--sizes", "10M", "--batches", "1", *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "capability AVX2" in err[0]
