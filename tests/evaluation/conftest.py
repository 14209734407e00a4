"""Fixtures for the continuation eval / bench tests: the tiny pipeline loaded once (`tiny_pipeline`
and the one-CPU-thread setting for every test live in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_lm(tiny_pipeline):
    from audiolm.inference.pipeline import AudioLM

    return AudioLM.from_pretrained(tiny_pipeline)
