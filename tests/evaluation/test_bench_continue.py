"""`audiolm bench continue` runs on a tiny pipeline and reports the agreed JSON fields."""

from __future__ import annotations

import json

import pytest

from audiolm.cli.app import main


def test_bench_continue_json(tiny_pipeline, capsys):
    code = main(
        [
            "bench",
            "continue",
            "--pipeline",
            str(tiny_pipeline),
            "--batches",
            "1,2",
            "--seconds",
            "0.2",
            "--prompt-seconds",
            "0.3",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["machine"]
    assert [r["batch"] for r in report["results"]] == [1, 2]
    for r in report["results"]:
        assert r["pipeline"] == "tiny" and r["device"] == "cpu" and r["seconds"] == 0.2
        assert set(r["rtf_stages"]) == {"semantic", "coarse", "fine", "codec"}
        assert r["rtf"] > 0 and all(v >= 0 for v in r["rtf_stages"].values())
        assert sum(r["rtf_stages"].values()) == pytest.approx(r["rtf"])


def test_bench_continue_table_and_errors(tiny_pipeline, capsys):
    code = main(
        [
            "bench",
            "continue",
            "--pipeline",
            str(tiny_pipeline),
            "--batches",
            "1",
            "--seconds",
            "0.1",
            "--prompt-seconds",
            "0.2",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "RTF" in out and "tiny" in out
    for bad, message in (
        (["--batches", "0"], "batch sizes must be >= 1"),
        (["--batches", "x"], "expected integers"),
        (["--seconds", "0"], "must be positive"),
    ):
        code = main(["bench", "continue", "--pipeline", str(tiny_pipeline), *bad])
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
