"""`audiolm bench gpu` on a machine without a GPU: one line, exit 2 (the check itself runs on a
GPU machine; tests/train/test_cuda.py and tests/generate/test_generate_cuda_graph.py are its tests)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audiolm.cli.app import main
from audiolm.evaluation import gpu_check


def test_bench_gpu_on_a_cpu_only_machine_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "gpu", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU" in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine")
def test_bench_gpu_command_line_exit_code_without_a_gpu():
    done = subprocess.run(
        [sys.executable, "-m", "audiolm", "bench", "gpu"], capture_output=True, text=True, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 2 and done.stdout == "" and len(done.stderr.strip().splitlines()) == 1


def test_every_cuda_test_is_marked_for_the_check():
    """A test that skips without CUDA must carry the `cuda` marker, or `bench gpu` misses it."""
    tests = gpu_check.tests_dir()
    for path in tests.rglob("test_*.py"):
        text = path.read_text()
        if "torch.cuda.is_available()" in text and "skip" in text:
            assert "mark.cuda" in text, path


def test_gpu_check_runs_its_parts_within_the_budget(monkeypatch, tmp_path):
    """The orchestration, with a CPU bench standing in for the GPU benches: one JSON report,
    each bench's own JSON inside, parts past the budget reported as skipped."""
    config = tmp_path / "tiny.json"
    config.write_text(
        '{"layers": 2, "stacks": 1, "residual_channels": 4, "dilation_channels": 4, '
        '"skip_channels": 4, "crop_samples": 16}'
    )
    bench = [
        "bench",
        "wavenet",
        "--json",
        "--config",
        str(config),
        "--batches",
        "1",
        "--samples",
        "20",
        "--naive-samples",
        "2",
    ]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(gpu_check, "describe_machine", lambda device: "a stand-in GPU")
    monkeypatch.setattr(gpu_check, "_run_tests", lambda env, limit: {"passed": 5, "failed": 0, "skipped": 0})
    monkeypatch.setattr(gpu_check, "BENCHES", [("wavenet", bench, 120), ("later", bench, 120)])
    clock = iter([0.0, 0.0, 470.0, 470.0])  # start, before bench 1, before bench 2, end
    monkeypatch.setattr(gpu_check.time, "perf_counter", lambda: next(clock, 470.0))
    report = gpu_check.run_gpu_check(budget_s=480)
    assert report["machine"] == "a stand-in GPU" and report["tests"]["passed"] == 5
    assert report["benches"]["wavenet"]["result"]["results"]
    assert "skipped" in report["benches"]["later"] and report["ok"] is False
    assert "bench later: time budget spent" in gpu_check.format_report(report)
