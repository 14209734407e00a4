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


def test_a_gloo_start_up_abort_is_launched_once_more_and_other_failures_say_why(tmp_path, monkeypatch):
    import subprocess

    import pytest

    from audiolm.core.errors import AudiolmError
    from audiolm.evaluation import bench_train

    run_dir = tmp_path / "run"
    calls = []
    abort = "worker 1\nterminate called without an active exception\n" + "=" * 40 + "\n"

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        if len(calls) == 1:  # the first launch dies while the process group starts
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "half").write_text("left by the aborted launch")
            return subprocess.CompletedProcess(cmd, -6, "", abort)
        assert not (run_dir / "half").exists()  # the second one starts afresh
        run_dir.mkdir(parents=True, exist_ok=True)
        lines = [{"step": s, "items_per_s": 10.0 + s} for s in (1, 2, 3)]
        (run_dir / "log.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(bench_train.subprocess, "run", fake_run)
    result = bench_train.run_case(2, "coarse", tmp_path, None, 2, 3, 1, run_dir, 1)
    assert len(calls) == 2 and result["samples_per_s"] == 12.5

    failure = "Traceback (most recent call last):\nValueError: no tokens\n" + "=" * 40 + "\n"
    monkeypatch.setattr(
        bench_train.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", failure)
    )
    with pytest.raises(AudiolmError, match="2-process run failed: ValueError: no tokens$"):
        bench_train.run_case(2, "coarse", tmp_path, None, 2, 3, 1, tmp_path / "other", 1)
