"""Shared fixtures. `tiny_corpus`: a synthetic corpus in the real manifest format (built once)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus folder: 8 speech items (6 voices, 2 phone inventories) and 6 music items, 24 kHz,
    1-2 s each; valid holds voices synth4/synth5 and piece5, which train does not."""
    from audiolm.data.synthetic_corpus import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("tiny_corpus"), n_speech=8, n_music=6, seed=0)


@pytest.fixture(scope="session", autouse=True)
def _one_thread_session():
    """Every test runs its tiny models on one CPU thread: a second thread gains nothing at these
    sizes and slows down badly when other processes share the cores. Session scope covers the
    module-scoped fixtures that train tiny models too."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _one_thread():
    """Back to one thread before each test (a test of `--threads` may have changed it)."""
    torch.set_num_threads(1)
