"""Fixtures for the continuation eval / bench tests: a tiny random pipeline (built once). The
one-CPU-thread setting for every test lives in tests/conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: pipeline_helpers

from pipeline_helpers import build_tiny_pipeline  # noqa: E402



@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """Recipe path of a tiny random pipeline (see tests/pipeline_helpers.py)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("eval_tiny_pipeline"))


@pytest.fixture(scope="session")
def tiny_lm(tiny_pipeline):
    from audiolm.inference.pipeline import AudioLM

    return AudioLM.from_pretrained(tiny_pipeline)
