"""`audiolm bench codec`: how many times faster than real time the codec encodes and decodes.

A clip of `seconds` of noise-like audio at 24 kHz (speed does not depend on the content) is
encoded and decoded at every bit rate; each figure is the best of `repeats` timed runs after
one warm-up run. "x real time" = audio seconds / wall seconds, so bigger is faster;
`roundtrip_x_realtime` counts encode and decode together (the target: >= 50 on a 2-core CPU;
BENCHMARKS.md, "Codec speed").

Wall-clock figures suffer when other processes share the cores, so the process CPU time is
recorded too: `roundtrip_x_realtime_per_cpu_second` is audio seconds per CPU second summed
over all threads — what one uncontended core achieves, a lower bound for two (with two
threads on two idle cores the wall-clock figure is up to twice it). The load average at the
start of the run is reported as well.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from audiolm.core.timing import synchronize


def _timed(fn, repeats: int, sync) -> tuple[float, float]:
    """Best wall-clock seconds and best process CPU seconds (all threads) over `repeats` runs."""
    fn()  # warm-up (allocations, oneDNN kernels, CUDA context)
    sync()
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best_wall, best_cpu


def bench_codec(
    codec, seconds: float = 10.0, repeats: int = 3, device: str = "cpu", batch_size: int = 1
) -> dict[str, Any]:
    """Encode / decode speed of `codec` on `device` at each of its bit rates."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    codec.to(device)
    generator = torch.Generator().manual_seed(0)
    n = int(seconds * codec.sample_rate)
    wav = (0.1 * torch.randn(batch_size, 1, n, generator=generator)).to(device)
    sync = lambda: synchronize(device)  # noqa: E731
    audio_seconds = seconds * batch_size
    results = []
    for kbps in codec.bandwidths:
        codes = codec.encode(wav, codec.sample_rate, kbps=kbps)
        encode_s, encode_cpu_s = _timed(
            lambda kbps=kbps: codec.encode(wav, codec.sample_rate, kbps=kbps), repeats, sync
        )
        decode_s, decode_cpu_s = _timed(lambda codes=codes: codec.decode(codes), repeats, sync)
        results.append(
            {
                "kbps": kbps,
                "levels": int(codes.shape[1]),
                "encode_s": encode_s,
                "decode_s": decode_s,
                "encode_x_realtime": audio_seconds / encode_s,
                "decode_x_realtime": audio_seconds / decode_s,
                "roundtrip_x_realtime": audio_seconds / (encode_s + decode_s),
                # CPU seconds of all threads: robust to other processes sharing the cores
                "encode_cpu_s": encode_cpu_s,
                "decode_cpu_s": decode_cpu_s,
                "roundtrip_x_realtime_per_cpu_second": audio_seconds / max(encode_cpu_s + decode_cpu_s, 1e-9),
            }
        )
    return {
        "load_average_1min": load,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "batch_size": batch_size,
        "repeats": repeats,
        "parameters": sum(p.numel() for p in codec.model.parameters()),
        "results": results,
    }


def format_bench(report: dict[str, Any]) -> str:
    lines = [
        f"codec speed on {report['machine']} — {report['seconds']:g} s clip, batch {report['batch_size']}, "
        f"best of {report['repeats']}, {report['parameters'] / 1e6:.2f}M parameters",
        "",
        f"(load average {report['load_average_1min']})",
        "",
        "| kbps | levels | encode × real time | decode × real time | encode+decode × real time "
        "| encode+decode × real time per CPU second |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['kbps']:g} | {r['levels']} | {r['encode_x_realtime']:.1f} | "
            f"{r['decode_x_realtime']:.1f} | {r['roundtrip_x_realtime']:.1f} | "
            f"{r['roundtrip_x_realtime_per_cpu_second']:.1f} |"
        )
    return "\n".join(lines)
