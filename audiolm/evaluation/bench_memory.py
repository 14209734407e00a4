"""`audiolm bench continue-memory`: peak resident memory of `audiolm continue` against length.

Each length runs `python -m audiolm continue PROMPT -o OUT --seconds S` in a fresh process (so
every figure is that command's own peak, start-up and model load included) and reads the
child's peak RSS from `os.wait4` (ru_maxrss, KiB on Linux). A continuation keeps its memory
bounded by the stages' sliding windows (the semantic stage's KV cache slides, the coarse and
fine stages walk fixed windows), so the peak should stay flat in length: what still grows is
only the tokens and audio themselves (~0.4 MB per second of 24 kHz float audio per copy).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class MemoryResult:
    seconds: float
    peak_rss_mib: float
    wall_s: float
    returncode: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_continue(prompt: Path, seconds: float, extra: list[str], env: dict[str, str] | None = None) -> MemoryResult:
    """One `audiolm continue` in a child process: its peak RSS and wall time."""
    with tempfile.TemporaryDirectory(prefix="audiolm-mem-") as tmp:
        cmd = [sys.executable, "-m", "audiolm", "continue", str(prompt), "-o", str(Path(tmp) / "out.wav")]
        cmd += ["--seconds", f"{seconds:g}", "--seed", "0", *extra]
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        assert child.stderr is not None
        err = child.stderr.read()  # drained while it runs (progress lines), so the child never blocks
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
    if child.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"audiolm continue --seconds {seconds:g} failed ({child.returncode}): {tail[0]}")
    return MemoryResult(seconds, usage.ru_maxrss / 1024, wall, child.returncode)


def bench_continue_memory(prompt: Path, lengths: list[float], extra: list[str]) -> list[MemoryResult]:
    return [run_continue(prompt, s, extra) for s in lengths]


def format_table(machine: str, results: list[MemoryResult]) -> str:
    lines = [f"machine: {machine}", f"{'seconds':>8} {'peak RSS MiB':>13} {'wall s':>8}"]
    lines += [f"{r.seconds:>8g} {r.peak_rss_mib:>13.1f} {r.wall_s:>8.1f}" for r in results]
    return "\n".join(lines)
