"""`audiolm bench stream` on a tiny pipeline, and the playback schedule it judges chunks by."""

from __future__ import annotations

import json

import pytest

from audiolm.cli.app import main
from audiolm.evaluation.bench_stream import playback_schedule


def test_playback_schedule():
    # playback starts at 1.0 s; the chunk starting 0.5 s into the audio is due at 1.5 s
    assert playback_schedule([(1.0, 0.0), (1.4, 0.5), (1.9, 1.0)]) == (0, pytest.approx(0.1), 0.0)
    underruns, margin, buffer = playback_schedule([(1.0, 0.0), (1.7, 0.5), (2.3, 1.0)])
    assert underruns == 2 and margin == pytest.approx(-0.3) and buffer == pytest.approx(0.3)


def test_bench_stream_json(tiny_pipeline, capsys):
    code = main(
        [
            "bench",
            "stream",
            "--pipeline",
            str(tiny_pipeline),
            "--seconds",
            "0.6",
            "--prompt-seconds",
            "0.3",
            "--chunk-seconds",
            "0.1",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    r = json.loads(out)["result"]
    assert r["pipeline"] == "tiny" and r["seconds"] == 0.6 and r["chunks"] == len(r["arrivals"]) >= 2
    assert 0 < r["first_audio_s"] <= r["total_s"]
    assert r["arrivals"][0][1] == 0 and r["arrivals"][-1][1] < 0.6
    assert [a for a, _ in r["arrivals"]] == sorted(a for a, _ in r["arrivals"])
    code = main(["bench", "stream", "--pipeline", str(tiny_pipeline), "--seconds", "0"])
    assert code == 2 and "--seconds" in capsys.readouterr().err
    code = main(
        [
            "bench",
            "stream",
            "--pipeline",
            str(tiny_pipeline),
            "--seconds",
            "0.3",
            "--prompt-seconds",
            "0.3",
            "--threads",
            "1",
            "--clock",
            "cpu",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "cpu clock" in out and "time to first audio" in out


def test_bench_serve_on_a_tiny_pipeline(tiny_pipeline, capsys):
    """The load test end to end: a real `audiolm serve` child process, 2 rounds of 3 requests."""
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    from audiolm.evaluation.bench_serve import percentile

    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0 and percentile([3.0, 1.0, 2.0, 4.0], 95) == 4.0
    code = main(
        [
            "bench",
            "serve",
            "--pipeline",
            str(tiny_pipeline),
            "--concurrency",
            "3",
            "--rounds",
            "2",
            "--seconds",
            "0.3",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    r = json.loads(out)["result"]
    assert r["requests"] == 6 and r["answered"] == 6 and r["lost"] == 0
    assert 0 < r["first_audio_p50_s"] <= r["latency_p95_s"] and len(r["rss_mb"]) == 2
