"""Codec tests run their tiny models on one thread: two OpenMP threads gain nothing at these
sizes and slow down badly when other processes share the cores."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
