"""`audiolm bench continue`: real-time factor of a pipeline, per stage and end to end.

Real-time factor (RTF) = wall seconds spent / seconds of audio produced, counting every sample
of the batch (B continuations of S seconds produce B * S seconds): below 1 is faster than real
time. `rtf_stages` splits the same wall time into the semantic, coarse and fine stages and the
codec decoder (`Continuation.timings`); prompt encoding is measured once beside them
(`encode_s`), since a saved prompt skips it. Each case runs once untimed (warm-up: caches,
kernels, CUDA graphs, and on CPU the compiled decoding step: compiled on a machine's first run,
loaded from the cache after) and then `repeats` times; the fastest run counts. `warmup_s` is
that first run's wall time, so a first and a second run of the command show the compile and
the load.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from audiolm.models.lm.config import STAGES as LM_STAGES

STAGES = (*LM_STAGES, "codec")


@dataclass
class ContinueResult:
    pipeline: str
    device: str
    batch: int
    seconds: float
    prompt_seconds: float
    wall_s: float
    encode_s: float
    rtf: float
    rtf_stages: dict[str, float]
    warmup_s: float = 0.0  # the untimed first run, compile or load of the compiled step included
    # process CPU seconds of the counted run / seconds produced: on one torch thread, what the
    # run takes on an idle core (a shared machine inflates wall time, not this)
    rtf_cpu: float = 0.0  # (the prompt's encoding, timed in wall seconds, subtracted)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def bench_prompt(seconds: float, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """A deterministic prompt [1, N]: a gliding harmonic tone with a little noise (any pipeline
    accepts it; its content does not change the speed)."""
    n = int(seconds * sample_rate)
    t = torch.arange(n) / sample_rate
    freq = 180 + 60 * torch.sin(2 * torch.pi * 0.5 * t)
    phase = 2 * torch.pi * torch.cumsum(freq, 0) / sample_rate
    gen = torch.Generator().manual_seed(seed)
    wav = 0.3 * torch.sin(phase) + 0.1 * torch.sin(3 * phase) + 0.02 * torch.randn(n, generator=gen)
    return wav[None]


def bench_continue(
    lm,
    batches: list[int],
    seconds: float,
    prompt_seconds: float = 3.0,
    repeats: int = 1,
    seed: int = 0,
) -> list[ContinueResult]:
    prompt_audio = bench_prompt(prompt_seconds, lm.sample_rate, seed)
    results = []
    for batch in batches:
        best = None
        warmup = best_cpu = 0.0
        for run in range(repeats + 1):  # run 0 warms up
            start, cpu = time.perf_counter(), time.process_time()
            out = lm.generate_continuation(prompt_audio, lm.sample_rate, seconds=seconds, seed=seed, num_samples=batch)
            cpu = time.process_time() - cpu - out.timings["encode"]  # encoding: its own column
            if run == 0:
                warmup = time.perf_counter() - start
            if run and (best is None or sum(out.timings[s] for s in STAGES) < sum(best[s] for s in STAGES)):
                best, best_cpu = out.timings, cpu
        assert best is not None
        produced = batch * (out.audio.shape[-1] - out.prompt_samples) / lm.sample_rate
        wall = sum(best[s] for s in STAGES)
        results.append(
            ContinueResult(
                pipeline=lm.recipe.name,
                device=str(lm.device),
                batch=batch,
                seconds=seconds,
                prompt_seconds=prompt_seconds,
                wall_s=wall,
                encode_s=best["encode"],
                rtf=wall / produced,
                rtf_stages={s: best[s] / produced for s in STAGES},
                warmup_s=warmup,
                rtf_cpu=best_cpu / produced,
            )
        )
    return results


def format_table(machine: str, results: list[ContinueResult]) -> str:
    lines = [
        f"machine: {machine}",
        "RTF = wall seconds / seconds of audio produced (all samples of the batch); below 1 is faster than real time",
        f"{'pipeline':12} {'device':6} {'batch':>5} {'seconds':>7} {'RTF':>8} "
        + " ".join(f"{s:>9}" for s in STAGES)
        + f" {'encode s':>9} {'warm-up s':>9} {'RTF cpu':>8}",
    ]
    for r in results:
        lines.append(
            f"{r.pipeline[:12]:12} {r.device:6} {r.batch:>5} {r.seconds:>7g} {r.rtf:>8.3f} "
            + " ".join(f"{r.rtf_stages[s]:>9.3f}" for s in STAGES)
            + f" {r.encode_s:>9.3f} {r.warmup_s:>9.2f} {r.rtf_cpu:>8.3f}"
        )
    return "\n".join(lines)
