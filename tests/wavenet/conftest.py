"""The wavenet tests use tiny tensors: one CPU thread is faster, and much faster when the
machine's cores are shared (a second thread only adds waiting)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
