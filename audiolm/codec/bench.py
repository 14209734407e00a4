"""`audiolm bench codec`: how many times faster than real time the codec encodes and decodes.

A clip of `seconds` of noise-like audio at 24 kHz (speed does not depend on the content) is
encoded and decoded at every bit rate; each figure is the best of `repeats` timed runs after
one warm-up run. "x real time" = audio seconds / wall seconds, so bigger is faster;
`roundtrip_x_realtime` counts encode and decode together (the issue's target: >= 50 on the
2-core CPU).
"""

from __future__ import annotations

import time
from typing import Any

import torch


def _timed(fn, repeats: int, sync) -> float:
    fn()  # warm-up (allocations, oneDNN kernels, CUDA context)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def bench_codec(codec, seconds: float = 10.0, repeats: int = 3, device: str = "cpu",
                batch_size: int = 1) -> dict[str, Any]:
    """Encode / decode speed of `codec` on `device` at each of its bit rates."""
    codec.to(device)
    generator = torch.Generator().manual_seed(0)
    n = int(seconds * codec.sample_rate)
    wav = (0.1 * torch.randn(batch_size, 1, n, generator=generator)).to(device)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    audio_seconds = seconds * batch_size
    results = []
    for kbps in codec.bandwidths:
        codes = codec.encode(wav, codec.sample_rate, kbps=kbps)
        encode_s = _timed(lambda: codec.encode(wav, codec.sample_rate, kbps=kbps), repeats, sync)
        decode_s = _timed(lambda: codec.decode(codes), repeats, sync)
        results.append({
            "kbps": kbps,
            "levels": int(codes.shape[1]),
            "encode_s": encode_s,
            "decode_s": decode_s,
            "encode_x_realtime": audio_seconds / encode_s,
            "decode_x_realtime": audio_seconds / decode_s,
            "roundtrip_x_realtime": audio_seconds / (encode_s + decode_s),
        })
    return {
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
        "| kbps | levels | encode × real time | decode × real time | encode+decode × real time |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(f"| {r['kbps']:g} | {r['levels']} | {r['encode_x_realtime']:.1f} | "
                     f"{r['decode_x_realtime']:.1f} | {r['roundtrip_x_realtime']:.1f} |")
    return "\n".join(lines)
