"""One clock for every speed figure: wall time (`time.perf_counter`) read after the device's
queued work is done, so a CUDA measurement holds the kernels it launched (on CPU, a plain read)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronize(device: str | torch.device) -> None:
    """Wait for the work queued on `device` (CUDA); nothing to wait for on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synced_clock(device: str | torch.device) -> Callable[[], float]:
    """now() -> seconds, read once `device` has finished its queued work."""

    def now() -> float:
        synchronize(device)
        return time.perf_counter()

    return now


class Timer:
    """`with Timer(device) as t: ...` -> t.seconds, the synchronised wall time of the block."""

    def __init__(self, device: str | torch.device) -> None:
        self.now = synced_clock(device)

    def __enter__(self) -> Timer:
        self.start = self.now()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = self.now() - self.start
