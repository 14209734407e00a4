"""`audiolm bench wavenet`: generation speed, fast (ring buffers) vs naive (full receptive
field per sample), side by side in one run on the same randomly initialised model.

Both modes start from a prompt one receptive field long, so every naive step really runs the
whole receptive field (a run from silence would start with cheap, short windows). The figure
is steady-state: time(prompt + n samples) - time(prompt + 0 samples), so the set-up and the
fast path's prefill are not counted.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from tqdm.auto import tqdm

from audiolm.core.errors import AudiolmError
from audiolm.core.timing import synced_clock
from audiolm.evaluation.machine import describe_machine
from audiolm.models.wavenet.config import WaveNetConfig
from audiolm.models.wavenet.model import WaveNet


def _timed_generate(model: WaveNet, warm: int, samples: int, batch: int, prompt: torch.Tensor, naive: bool) -> float:
    """Seconds spent on the `samples` new samples that follow `warm` untimed ones."""
    device = model.device
    marks: dict[int, float] = {}
    first, last = prompt.shape[0] + warm, prompt.shape[0] + warm + samples

    now = synced_clock(device)

    def clock(ids: torch.Tensor, valid: int) -> None:
        if valid in (first, last):
            marks[valid] = now()

    model.generate(
        warm + samples, batch_size=batch, prompt=prompt, seed=0, naive=naive, callback=clock, callback_every=1
    )
    return marks[last] - marks[first]


def measure(
    model: WaveNet, mode: str, batch: int, samples: int, prompt: torch.Tensor, naive_threads: int | None = None
) -> dict[str, Any]:
    """One figure. The fast path always runs its loop on one CPU thread (fast_generate.py says
    why); the naive forward runs on `naive_threads` (default: torch's current setting)."""
    naive = mode == "naive"
    warm = 2 if naive else min(200, samples)
    previous = torch.get_num_threads()
    threads = (naive_threads or previous) if naive else 1
    if naive and model.device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        seconds = _timed_generate(model, warm, samples, batch, prompt, naive)
    finally:
        torch.set_num_threads(previous)
    cfg = model.config
    return {
        "mode": mode,
        "device": str(model.device),
        "batch": batch,
        "layers": cfg.layers,
        "residual_channels": cfg.residual_channels,
        "receptive_field": cfg.receptive_field,
        "threads": threads if model.device.type == "cpu" else None,
        "samples": samples,
        "seconds": round(seconds, 4),
        "samples_per_s": round(batch * samples / seconds, 1),
    }


def bench_wavenet(
    device: str = "cpu",
    batches: tuple[int, ...] = (1, 16),
    samples: int = 2000,
    naive_samples: int = 10,
    config: WaveNetConfig | None = None,
    progress: bool = True,
    naive_threads: int | None = None,
) -> dict[str, Any]:
    """Fast and naive samples/s at each batch size; returns the `--json` object."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AudiolmError("--device cuda was asked for, but no CUDA GPU is available")
    torch.manual_seed(0)
    model = WaveNet(config or WaveNetConfig()).to(device).eval()
    prompt = torch.randint(0, model.config.quantization_channels, (model.receptive_field,))
    results = []
    jobs = [(mode, b) for b in batches for mode in ("fast", "naive")]

    for mode, batch in tqdm(jobs, desc="bench wavenet", disable=not progress):
        n = samples if mode == "fast" else naive_samples
        results.append(measure(model, mode, batch, n, prompt, naive_threads))
    speedup = {}
    for batch in batches:
        fast, naive = (next(r for r in results if r["mode"] == m and r["batch"] == batch) for m in ("fast", "naive"))
        speedup[str(batch)] = round(fast["samples_per_s"] / naive["samples_per_s"], 1)
    return {
        "machine": describe_machine(device),
        # these figures swing with other processes on shared cores: record how busy it was
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "results": results,
        "fast_over_naive": speedup,
        "targets": {"cpu_batch1_samples_per_s": 2000, "gpu_batch1_samples_per_s": 24000},
    }


def format_table(report: dict[str, Any]) -> str:
    lines = [f"machine: {report['machine']}", f"{'mode':6} {'device':7} {'batch':>5} {'threads':>7} {'samples/s':>12}"]
    for r in report["results"]:
        lines.append(
            f"{r['mode']:6} {r['device']:7} {r['batch']:>5} {str(r['threads'] or '-'):>7} {r['samples_per_s']:>12,.1f}"
        )
    lines.append("fast / naive: " + ", ".join(f"batch {b}: {s}x" for b, s in report["fast_over_naive"].items()))
    return "\n".join(lines)
