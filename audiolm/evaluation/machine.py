"""Describe the machine a figure was measured on (for `--json` output and BENCHMARKS.md)."""

from __future__ import annotations

import os
import platform

import torch


def describe_machine(device: str | None = None) -> str:
    """ "2-core CPU (x86_64, torch 2.13.0, 2 threads)" or "NVIDIA H100 80GB HBM3 (torch ...)"."""
    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(torch.device(device))} (torch {torch.__version__})"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cores}-core CPU ({platform.machine()}, {_cpu_model()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads)"
    )


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"
