"""`audiolm bench stream`: does a streamed continuation keep ahead of playback?

The prompt is encoded first (timed apart: `encode_s`); the clock then starts and `AudioLM.stream`
runs with `continuation_only`. Each chunk's arrival time is recorded. Playback starts when the
first chunk arrives (`first_audio_s`, the time to first audio) and plays in real time, so the
chunk that starts `a` seconds into the continuation is due at `first_audio_s + a`. A chunk that
arrives later than that is an underrun (the listener hears a gap); `min_margin_s` is the
smallest (due - arrival) over the chunks, negative when there was an underrun, and
`buffer_needed_s` the start-up delay that would have avoided every underrun. The stream runs
once untimed first (warm-up), then `repeats` times; the run with the earliest first audio counts.

clock "cpu" times everything in process CPU time instead of wall time: with one torch thread
that is the wall time the same work takes on an otherwise idle core, so the figures stay
meaningful on a shared, loaded machine (where wall time measures the other jobs too).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from audiolm.core.timing import synced_clock
from audiolm.evaluation.bench_continue import bench_prompt


@dataclass
class StreamResult:
    pipeline: str
    device: str
    clock: str  # "wall" or "cpu" (process CPU time, one thread)
    first_chunk_seconds: float | None  # AudioLM.stream's option (None: tokens as continue_audio)
    seconds: float
    prompt_seconds: float
    encode_s: float  # prompt encoding, before the clock starts
    first_audio_s: float  # time to first audio after the prompt is encoded
    total_s: float  # the whole continuation
    rtf: float  # total_s / seconds
    chunks: int
    underruns: int  # chunks that arrived after playback needed them
    min_margin_s: float  # smallest (due - arrival); < 0 means an underrun
    buffer_needed_s: float  # extra start-up delay that would have avoided every underrun
    arrivals: list[tuple[float, float]] = field(default_factory=list)  # (arrival s, audio start s) per chunk

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def playback_schedule(arrivals: list[tuple[float, float]]) -> tuple[int, float, float]:
    """(underruns, min margin, buffer needed) for chunks [(arrival s, audio start s)], playback
    starting at the first arrival."""
    start = arrivals[0][0]
    margins = [start + audio - arrival for arrival, audio in arrivals[1:]] or [0.0]  # the first is on time
    return sum(m < 0 for m in margins), min(margins), max(0.0, -min(margins))


def bench_stream(
    lm,
    seconds: float = 10.0,
    prompt_seconds: float = 3.0,
    repeats: int = 1,
    seed: int = 0,
    chunk_seconds: float = 0.2,
    clock_kind: str = "wall",
    first_chunk_seconds: float | None = None,
) -> StreamResult:
    if clock_kind == "cpu" and (lm.device.type != "cpu" or torch.get_num_threads() != 1):
        raise ValueError("clock 'cpu' needs a CPU pipeline and one torch thread")
    wav = bench_prompt(prompt_seconds, lm.sample_rate, seed)
    clock = time.process_time if clock_kind == "cpu" else synced_clock(lm.device)
    t0 = clock()
    prompt = lm.encode_prompt(wav, lm.sample_rate)
    encode = clock() - t0
    best: StreamResult | None = None
    for run in range(repeats + 1):  # run 0 warms up
        arrivals = []
        produced = 0
        t0 = clock()
        for chunk in lm.stream(
            None,
            None,
            seconds=seconds,
            seed=seed,
            prompt=prompt,
            continuation_only=True,
            chunk_seconds=chunk_seconds,
            first_chunk_seconds=first_chunk_seconds,
        ):
            arrivals.append((clock() - t0, produced / lm.sample_rate))
            produced += chunk.shape[-1]
        total = clock() - t0
        if not run:
            continue
        underruns, margin, buffer = playback_schedule(arrivals)
        result = StreamResult(
            pipeline=lm.recipe.name,
            device=str(lm.device),
            clock=clock_kind,
            first_chunk_seconds=first_chunk_seconds,
            seconds=seconds,
            prompt_seconds=prompt_seconds,
            encode_s=encode,
            first_audio_s=arrivals[0][0],
            total_s=total,
            rtf=total / seconds,
            chunks=len(arrivals),
            underruns=underruns,
            min_margin_s=margin,
            buffer_needed_s=buffer,
            arrivals=arrivals,
        )
        if best is None or result.first_audio_s < best.first_audio_s:
            best = result
    assert best is not None
    return best


def format_stream(machine: str, r: StreamResult) -> str:
    lines = [
        f"machine: {machine}",
        f"pipeline {r.pipeline} on {r.device}: {r.prompt_seconds:g} s prompt (encoded in {r.encode_s:.3f} s), "
        f"{r.seconds:g} s streamed in {r.chunks} chunks; {r.clock} clock; first chunk "
        + ("as continue_audio" if r.first_chunk_seconds is None else f"{r.first_chunk_seconds:g} s"),
        f"time to first audio  {r.first_audio_s:.3f} s (after the prompt is encoded)",
        f"whole continuation   {r.total_s:.3f} s (RTF {r.rtf:.3f})",
        f"playback underruns   {r.underruns}; smallest margin {r.min_margin_s:+.3f} s; "
        f"start-up buffer needed {r.buffer_needed_s:.3f} s",
    ]
    return "\n".join(lines)
