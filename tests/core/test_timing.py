"""The one synchronised clock (audiolm/core/timing.py)."""

import time

import pytest
import torch

from audiolm.core.timing import Timer, synced_clock, synchronize


def test_timer_measures_the_block():
    with Timer("cpu") as t:
        time.sleep(0.05)
    assert 0.04 < t.seconds < 1.0


def test_synced_clock_is_monotonic_on_cpu():
    now = synced_clock(torch.device("cpu"))
    a, b = now(), now()
    assert b >= a


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_timer_waits_for_cuda_work():
    x = torch.randn(2048, 2048, device="cuda")
    synchronize("cuda")
    with Timer("cuda") as t:
        for _ in range(20):
            x = x @ x / 2048
    with Timer("cpu") as unsynced:  # the queue is drained: nothing left to wait for
        pass
    assert t.seconds > unsynced.seconds
