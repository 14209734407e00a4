"""`audiolm bench continue-memory` runs `audiolm continue` in child processes on a tiny pipeline
and reports each one's peak RSS (the figures themselves: BENCHMARKS.md, not a timed test)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from audiolm.cli.app import main
from audiolm.core.audio import save_audio
from tests.helpers import tone

REPO = Path(__file__).resolve().parents[2]


def test_bench_continue_memory_json(tiny_pipeline, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    save_audio(tmp_path / "p.wav", tone(0.4), 24000)
    code = main(
        [
            "bench",
            "continue-memory",
            "--prompt",
            str(tmp_path / "p.wav"),
            "--pipeline",
            str(tiny_pipeline),
            "--lengths",
            "0.2,0.4",
            "--no-compile",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert [r["seconds"] for r in report["results"]] == [0.2, 0.4]
    for r in report["results"]:
        assert r["returncode"] == 0 and 50 < r["peak_rss_mib"] < 8192 and r["wall_s"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lengths", "ten"], "--lengths"),
        (["--lengths", "0"], "--lengths"),
        (["--prompt", "/nonexistent.wav"], "no such"),
    ],
)
def test_bench_continue_memory_usage_errors(extra, message, capsys):
    assert main(["bench", "continue-memory", *extra]) == 2
    assert message in capsys.readouterr().err
