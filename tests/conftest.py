"""Shared fixtures. `tiny_corpus`: a synthetic corpus in the real manifest format (built once);
`tiny_pipeline`: the recipe path of a tiny random pipeline (built once, read only: a test that
writes beside it builds its own with `tests.helpers.build_tiny_pipeline`). Helpers: tests/helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from audiolm.models.semantic.config import SSLConfig


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus folder: 8 speech items (6 voices, 2 phone inventories) and 6 music items, 24 kHz,
    1-2 s each; valid holds voices synth4/synth5 and piece5, which train does not."""
    from audiolm.training.data.synthetic_corpus import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("tiny_corpus"), n_speech=8, n_music=6, seed=0)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Recipe path of a tiny random pipeline: codec, MFCC tokenizer, three stages (tests/helpers.py)."""
    from tests.helpers import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny_pipeline"))


@pytest.fixture(scope="session", autouse=True)
def _one_thread_session():
    """Every test runs its tiny models on one CPU thread: a second thread gains nothing at these
    sizes and slows down badly when other processes share the cores. Session scope covers the
    module-scoped fixtures that train tiny models too."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session", autouse=True)
def _no_default_compile(tmp_path_factory: pytest.TempPathFactory):
    """The pipeline decodes with the eager step in tests (compiling a step per tiny model would
    take minutes), and compiled steps a test does build go to a temporary cache, never to
    ~/.cache. Tests of the compiled path ask for it explicitly."""
    saved = {k: os.environ.get(k) for k in ("AUDIOLM_COMPILE", "AUDIOLM_CACHE")}
    os.environ["AUDIOLM_COMPILE"] = "0"
    os.environ["AUDIOLM_CACHE"] = str(tmp_path_factory.mktemp("audiolm_cache"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _one_thread():
    """Back to one thread before each test (a test of `--threads` may have changed it)."""
    torch.set_num_threads(1)


# -- tiny configs shared by the semantic tests (models, training, evaluation) --
def tiny_ssl_config(**overrides) -> SSLConfig:
    base = dict(
        hidden_size=32,
        num_layers=2,
        contrastive_layers=1,
        num_heads=2,
        intermediate_size=64,
        feature_dim=32,
        conv_channels=16,
        codebook_groups=2,
        codebook_size=16,
        codevector_dim=32,
        num_negatives=10,
        crop_seconds=1.0,
        dropout=0.0,
        depthwise_kernel=5,
        frame_rate=50,
    )
    base.update(overrides)
    return SSLConfig(**base)


@pytest.fixture
def make_config():
    """`make_config(**overrides)` -> a tiny SSLConfig (2 layers, 32 wide)."""
    return tiny_ssl_config
