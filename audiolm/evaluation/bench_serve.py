"""`audiolm bench serve`: a bounded load test of `audiolm serve` on localhost.

Starts `python -m audiolm serve` as a child process on a free port, waits for it, then sends
`rounds` rounds of `concurrency` simultaneous POST /api/continue requests (the bundled speech
prompt, `seconds` of continuation, seeds 0..n-1) over plain HTTP from as many threads. Per
request: the status, the latency to the last byte, and the time to the first audio bytes (past
the WAV header). After each round the server's resident memory (VmRSS) is read, so growth from
round to round shows a leak. Generations run one at a time on the server, so with C concurrent
requests the last one waits for C - 1 others: p95 latency grows about linearly with C.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from audiolm.core.errors import AudiolmError
from audiolm.core.paths import CHECKPOINTS_DIR

PROMPT = CHECKPOINTS_DIR / "prompts" / "speech_prompt.wav"


@dataclass
class ServeResult:
    pipeline: str
    concurrency: int
    rounds: int
    seconds: float
    requests: int
    answered: int  # status 200 with a complete body
    lost: int  # errors, resets, short bodies
    latency_p50_s: float
    latency_p95_s: float
    latency_max_s: float
    first_audio_p50_s: float
    first_audio_p95_s: float
    rss_mb: list[float] = field(default_factory=list)  # server memory after each round

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _request(port: int, query: str, body: bytes, timeout: float) -> tuple[int, int, float, float]:
    """(status, body bytes, seconds to the first audio bytes, seconds to the last byte)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", f"/api/continue?{query}", body=body, headers={"Content-Type": "audio/wav"})
        r = conn.getresponse()
        first = math.nan
        size = 0
        while True:
            piece = r.read1(65536) if hasattr(r, "read1") else r.read(65536)
            if not piece:
                break
            size += len(piece)
            if size > 44 and math.isnan(first):
                first = time.perf_counter() - start
        return r.status, size, first, time.perf_counter() - start
    except OSError:
        return 0, 0, math.nan, time.perf_counter() - start
    finally:
        conn.close()


def bench_serve(
    pipeline: str = "default",
    concurrency: int = 8,
    rounds: int = 2,
    seconds: float = 2.0,
    threads: int = 1,
    timeout: float = 600.0,
) -> ServeResult:
    body = PROMPT.read_bytes()
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [
        sys.executable,
        "-m",
        "audiolm",
        "serve",
        "--port",
        str(port),
        "--pipeline",
        pipeline,
        "--max-waiting",
        str(concurrency),
        "--max-seconds",
        str(max(seconds, 1.0)),
    ]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while True:
            if server.poll() is not None:
                err = server.stderr.read().decode() if server.stderr is not None else ""
                raise AudiolmError(f"bench serve: the server exited: {err[-500:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/info")
                json.loads(conn.getresponse().read())
                conn.close()
                break
            except OSError:
                if time.time() > deadline:
                    raise AudiolmError("bench serve: the server did not answer within 120 s") from None
                time.sleep(0.2)
        # the server offers the one pipeline, so requests need not name it. Warm-up: loads it (not timed)
        _request(port, "seconds=0.5&seed=0", body, timeout)
        expected = _request(port, f"seconds={seconds}&seed=0", body, timeout)[1]
        results, rss = [], []
        for r in range(rounds):
            with ThreadPoolExecutor(concurrency) as pool:
                queries = [f"seconds={seconds}&seed={r * concurrency + i}" for i in range(concurrency)]
                results += list(pool.map(lambda q: _request(port, q, body, timeout), queries))
            rss.append(_rss_mb(server.pid))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    answered = [r for r in results if r[0] == 200 and r[1] == expected]
    latencies = [r[3] for r in answered] or [math.nan]
    firsts = [r[2] for r in answered] or [math.nan]
    return ServeResult(
        pipeline=pipeline,
        concurrency=concurrency,
        rounds=rounds,
        seconds=seconds,
        requests=len(results),
        answered=len(answered),
        lost=len(results) - len(answered),
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        latency_max_s=max(latencies),
        first_audio_p50_s=percentile(firsts, 50),
        first_audio_p95_s=percentile(firsts, 95),
        rss_mb=rss,
    )


def format_serve(machine: str, r: ServeResult) -> str:
    return "\n".join(
        [
            f"machine: {machine}",
            f"pipeline {r.pipeline}: {r.rounds} rounds x {r.concurrency} concurrent requests, {r.seconds:g} s each",
            f"answered {r.answered}/{r.requests}, lost {r.lost}",
            f"latency (to the last byte)  p50 {r.latency_p50_s:.2f} s  p95 {r.latency_p95_s:.2f} s  max {r.latency_max_s:.2f} s",
            f"first audio                 p50 {r.first_audio_p50_s:.2f} s  p95 {r.first_audio_p95_s:.2f} s",
            f"server memory after each round: {', '.join(f'{m:.0f} MB' for m in r.rss_mb)}",
        ]
    )
