"""`audiolm bench decode --json` prints exactly the agreed JSON object (tiny sizes patched in;
this checks the format, it times nothing)."""

import json

import pytest

from audiolm.cli import CommandLine
from audiolm.generate import bench, commands
from audiolm.lm.config import TransformerConfig


def run_cli(argv):
    cli = CommandLine()
    cli.group("bench", "bench")
    commands.register(cli)
    args = cli.parser.parse_args(argv)
    return args._command.run(args)


def test_bench_decode_json_format(monkeypatch, capsys):
    tiny = TransformerConfig(vocab_size=64, dim=32, n_layers=1, n_heads=2, max_seq_len=64)
    monkeypatch.setattr(bench, "SIZES", {"10M": tiny})
    monkeypatch.setattr(bench, "measure_bandwidth", lambda device, **kw: 10.0)
    code = run_cli(["bench", "decode", "--json", "--sizes", "10M", "--batches", "1,2", "--new-tokens", "3",
                    "--repeats", "1"])
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
    from audiolm.cli import UsageError

    with pytest.raises(UsageError, match="sizes"):
        run_cli(["bench", "decode", "--sizes", "3B"])
    with pytest.raises(UsageError, match="batches"):
        run_cli(["bench", "decode", "--batches", "one"])
