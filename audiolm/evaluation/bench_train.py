"""`audiolm bench train`: LM-stage training throughput on 1 process and on N DDP processes, side
by side in one command (each process on `--threads` threads).

Each case is a real `audiolm train STAGE` run in a fresh run directory — one process plainly,
N processes under `torch.distributed.run` (gloo on CPU) — on the same per-process batch, so N
processes train on an N-times larger global batch per step. Samples/s is the trainer's own
`items_per_s` (global items per second of wall time on process 0), averaged over the log
intervals after the first (which holds start-up and the first step's allocations). On a shared
machine the ratio is not parallel efficiency alone: `cpu_share` says how much of a core each
process got (two processes can win a larger share from other jobs than one). Without
`--tokens`, random tokens with the shipped tokenizers' sizes (semantic vocabulary 256 at 25 Hz,
4 codec levels of 1024 at 75 Hz) stand in: speed does not depend on the token values.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from audiolm.core.errors import AudiolmError
from audiolm.evaluation.machine import describe_machine
from audiolm.training.data.shards import ShardWriter, Utterance


def random_tokens(out: Path, utterances: int = 64, seconds: float = 10.0, seed: int = 0) -> Path:
    """A token directory of random ids (train split only) with the shipped tokenizers' sizes."""
    writer = ShardWriter(
        out,
        {
            "codec": {
                "dir": None,
                "sample_rate": 24000,
                "frame_rate": 75.0,
                "codebook_size": 1024,
                "n_q": 4,
                "kbps": 3.0,
            },
            "semantic": {"dir": None, "sample_rate": 16000, "frame_rate": 25.0, "vocab_size": 256},
        },
    )
    writer.start()
    rng = np.random.default_rng(seed)
    semantic, frames = int(25 * seconds), int(75 * seconds)
    writer.write_shard(
        "train",
        0,
        [
            Utterance(f"u{i}", rng.integers(0, 256, semantic), rng.integers(0, 1024, (frames, 4)))
            for i in range(utterances)
        ],
    )
    writer.finish({"train": 1})
    return out


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# gloo sometimes aborts a worker while the process group starts ("terminate called without an
# active exception", SIGABRT; also in PyTorch's own CI, pytorch/pytorch#65231): such a launch
# never reached training, so it is run once more
GLOO_START_ABORT = "terminate called without an active exception"


def failure_line(stderr: str) -> str:
    """The line of a failed run's stderr that says what went wrong: the last one naming an
    error, else the last that is not torchrun's ruler of '=' signs."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip().strip("=")]
    named = [line for line in lines if "Error" in line or "error:" in line or GLOO_START_ABORT in line]
    return (named or lines or ["?"])[-1]


def run_case(
    processes: int,
    stage: str,
    tokens: Path,
    config: Path | None,
    batch_size: int,
    steps: int,
    threads: int,
    run_dir: Path,
    log_every: int,
) -> dict[str, Any]:
    train_config = run_dir.with_suffix(".train.json")
    train_config.write_text(
        json.dumps({"log_every": log_every, "valid_every": steps + 1, "save_every": steps + 1, "warmup_steps": 0})
    )
    argv = [
        "-m",
        "audiolm",
        "train",
        stage,
        "--tokens",
        str(tokens),
        "--out",
        str(run_dir),
        "--device",
        "cpu",
        "--steps",
        str(steps),
        "--batch-size",
        str(batch_size),
        "--train-config",
        str(train_config),
    ]
    if config is not None:
        argv += ["--config", str(config)]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        cmd = launcher + argv
    else:
        cmd = [sys.executable, *argv]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    for attempt in range(2):
        load_before = _load_average()
        cpu_before = _children_cpu_s()
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        cpu = _children_cpu_s() - cpu_before
        if done.returncode == 0 or attempt == 1 or processes == 1 or GLOO_START_ABORT not in done.stderr:
            break
        shutil.rmtree(run_dir, ignore_errors=True)  # it never reached training: start it afresh
    if done.returncode != 0:
        raise AudiolmError(f"the {processes}-process run failed: {failure_line(done.stderr)}")
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    rates = [r["items_per_s"] for r in log if "items_per_s" in r][1:]
    if not rates:
        raise AudiolmError(f"--steps {steps} leaves no timed log interval after the first; raise --steps")
    return {
        "processes": processes,
        "threads_per_process": threads,
        "batch_per_process": batch_size,
        "global_batch": batch_size * processes,
        "samples_per_s": round(float(np.mean(rates)), 3),
        "intervals": [round(r, 3) for r in rates],
        "wall_s": round(wall, 1),
        # CPU time of the whole run (start-up included) per process and wall second: 1.0 = each
        # process had a core to itself; on a shared machine it shows how much of one it got
        "cpu_share": round(cpu / wall / processes, 3),
        "load_before": load_before,
        "load_after": _load_average(),
    }


def bench_train(
    stage: str = "coarse",
    tokens: str | None = None,
    config: str | None = None,
    processes: tuple[int, ...] = (1, 2),
    batch_size: int = 8,
    steps: int = 24,
    threads: int = 1,
    log_every: int = 4,
    repeats: int = 1,
) -> dict[str, Any]:
    """Runs the cases in turn, `repeats` rounds (1, 2, 1, 2, ...: a load change on a shared
    machine hits both); each case's fastest round counts, every round is listed."""
    rounds: dict[int, list[dict[str, Any]]] = {p: [] for p in processes}
    with tempfile.TemporaryDirectory(prefix="audiolm-bench-train-") as tmp:
        token_dir = Path(tokens) if tokens else random_tokens(Path(tmp) / "tokens")
        for r in range(repeats):
            for p in processes:
                rounds[p].append(
                    run_case(
                        p,
                        stage,
                        token_dir,
                        Path(config) if config else None,
                        batch_size,
                        steps,
                        threads,
                        Path(tmp) / f"run-{p}-{r}",
                        log_every,
                    )
                )
    results = []
    for p in processes:
        best = dict(max(rounds[p], key=lambda case: case["samples_per_s"]))
        best["rounds_samples_per_s"] = [case["samples_per_s"] for case in rounds[p]]
        results.append(best)
    base = results[0]["samples_per_s"]
    for result in results:
        result["speedup"] = round(result["samples_per_s"] / base, 3)
    return {
        "machine": describe_machine(),
        "stage": stage,
        "tokens": tokens or "random (shipped tokenizer sizes)",
        "config": config,
        "steps": steps,
        "repeats": repeats,
        "results": results,
    }


def format_table(report: dict[str, Any]) -> str:
    lines = [
        f"train {report['stage']} on {report['machine']}, {report['steps']} steps",
        "processes  threads  global batch  samples/s  speed-up  cpu share  load before -> after",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['processes']:>9}  {r['threads_per_process']:>7}  {r['global_batch']:>12}  "
            f"{r['samples_per_s']:>9.2f}  {r['speedup']:>7.2f}x  {r['cpu_share']:>9.2f}  "
            f"{r['load_before']} -> {r['load_after']}"
        )
    return "\n".join(lines)
