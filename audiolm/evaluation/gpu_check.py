"""`audiolm bench gpu`: everything that needs a CUDA GPU, in one command that fits the few
minutes a GPU machine is lent for (its run time: BENCHMARKS.md, "Figures moved out of the code").

1. The CUDA-only tests (`pytest -m cuda`): CUDA-graph decoding step == eager step, bf16 and
   fp16 training steps against an fp32 step, DDP over NCCL when there are 2 GPUs.
2. The GPU benches, each `--json`: decoding vs Hugging Face generate() (`bench decode`),
   continuation real-time factor (`bench continue`), WaveNet samples/s (`bench wavenet`).

Each part runs in its own process under a time limit; whatever is left of the budget when a
part would start is reported as skipped. The tests need the repository's tests/ folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from audiolm.core.errors import AudiolmError
from audiolm.evaluation.machine import describe_machine

BUDGET_S = 8 * 60

# (name, argv after `audiolm`, time limit in seconds)
BENCHES: list[tuple[str, list[str], int]] = [
    (
        "decode",
        [
            "bench",
            "decode",
            "--json",
            "--device",
            "cuda",
            "--sizes",
            "10M,50M",
            "--batches",
            "1,8",
            "--new-tokens",
            "256",
            "--repeats",
            "2",
        ],
        150,
    ),
    (
        "continue",
        ["bench", "continue", "--json", "--device", "cuda", "--batches", "1,8", "--seconds", "4", "--repeats", "2"],
        120,
    ),
    (
        "wavenet",
        [
            "bench",
            "wavenet",
            "--json",
            "--device",
            "cuda",
            "--batches",
            "1,16",
            "--samples",
            "4000",
            "--naive-samples",
            "50",
        ],
        90,
    ),
]
TESTS_LIMIT_S = 150

NO_GPU = "no CUDA GPU here: `audiolm bench gpu` runs the CUDA-only tests and GPU benches on a GPU machine"


def tests_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "tests"


def run_gpu_check(budget_s: float = BUDGET_S) -> dict[str, Any]:
    if not torch.cuda.is_available():
        raise AudiolmError(NO_GPU)
    if not tests_dir().is_dir():
        raise AudiolmError(f"{tests_dir()}: no tests folder (run `audiolm bench gpu` from a repository checkout)")
    start = time.perf_counter()
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tests_dir().parent), os.environ.get("PYTHONPATH")]))
    )
    report: dict[str, Any] = {"machine": describe_machine("cuda"), "gpus": torch.cuda.device_count()}
    report["tests"] = _run_tests(env, min(TESTS_LIMIT_S, budget_s))
    report["benches"] = {}
    for name, argv, limit in BENCHES:
        left = budget_s - (time.perf_counter() - start)
        if left < 20:
            report["benches"][name] = {"skipped": f"time budget spent ({budget_s:.0f} s)"}
            continue
        report["benches"][name] = _run_bench(argv, env, min(limit, left))
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["ok"] = (
        report["tests"].get("failed", 1) == 0
        and report["tests"].get("passed", 0) > 0
        and all("error" not in b and "skipped" not in b for b in report["benches"].values())
    )
    return report


def _run_tests(env: dict[str, str], limit: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-rs", "-p", "no:cacheprovider", str(tests_dir())]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limit, cwd=tests_dir().parent)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {limit:.0f} s", "failed": 1}
    out = done.stdout + done.stderr
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", out)}
    result: dict[str, Any] = {
        "passed": counts.get("passed", 0),
        "failed": counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0),
        "skipped": counts.get("skipped", 0),
        "seconds": round(time.perf_counter() - t0, 1),
        "skip_reasons": sorted(set(re.findall(r"SKIPPED \[\d+\] [^:]+:\d+: (.*)", out))),
    }
    if done.returncode not in (0, 5) or result["failed"]:
        result["output_tail"] = out[-3000:]
    return result


def _run_bench(argv: list[str], env: dict[str, str], limit: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "audiolm", *argv], env=env, capture_output=True, text=True, timeout=limit
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {limit:.0f} s", "command": "audiolm " + " ".join(argv)}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {
            "error": (done.stderr.strip().splitlines() or ["no output"])[-1],
            "command": "audiolm " + " ".join(argv),
        }
    return {
        "command": "audiolm " + " ".join(argv),
        "seconds": round(time.perf_counter() - t0, 1),
        "result": json.loads(lines[-1]),
    }


def format_report(report: dict[str, Any]) -> str:
    tests = report["tests"]
    lines = [
        f"GPU check on {report['machine']} ({report['gpus']} GPU), {report['seconds']} s",
        f"CUDA tests: {tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, "
        f"{tests.get('skipped', 0)} skipped" + (f" ({tests['error']})" if "error" in tests else ""),
    ]
    lines += [f"  skipped: {reason}" for reason in tests.get("skip_reasons", [])]
    for name, bench in report["benches"].items():
        state = bench.get("error") or bench.get("skipped") or f"done in {bench['seconds']} s"
        lines.append(f"bench {name}: {state}")
    return "\n".join(lines)
