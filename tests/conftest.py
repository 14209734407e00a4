"""Shared fixtures. `tiny_corpus`: a synthetic corpus in the real manifest format (built once)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus folder: 8 speech items (6 voices, 2 phone inventories) and 6 music items, 24 kHz,
    1-2 s each; valid holds voices synth4/synth5 and piece5, which train does not."""
    from audiolm.data.synthetic_corpus import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("tiny_corpus"), n_speech=8, n_music=6, seed=0)
