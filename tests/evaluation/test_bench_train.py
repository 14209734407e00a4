"""`audiolm bench train`: one process and two DDP processes, side by side, in one command."""

import json

from audiolm.cli import main


def test_bench_train_reports_both_process_counts(tmp_path, capsys):
    config = tmp_path / "coarse.json"
    config.write_text(
        json.dumps({"stage": "coarse", "model": {"dim": 16, "n_layers": 1, "n_heads": 2, "max_seq_len": 32}})
    )
    assert (
        main(
            [
                "bench",
                "train",
                "--json",
                "--config",
                str(config),
                "--steps",
                "5",
                "--batch-size",
                "2",
                "--processes",
                "1,2",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    one, two = report["results"]
    assert (one["processes"], two["processes"]) == (1, 2) and two["global_batch"] == 2 * one["global_batch"]
    assert one["speedup"] == 1.0 and two["samples_per_s"] > 0 and len(two["intervals"]) == 1
    assert "CPU" in report["machine"] and one["load_before"] is not None and 0 < one["cpu_share"] < 2


def test_bench_train_refuses_bad_process_counts(capsys):
    assert main(["bench", "train", "--processes", "1,x"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
