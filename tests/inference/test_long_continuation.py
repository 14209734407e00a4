"""A continuation longer than every stage's context (issue #17, item 4): the semantic stage's
decoder slides its window, the coarse stage walks several windows, the codec decodes in chunks,
and the result has the length asked for. Memory flat in length is a benchmark (`audiolm bench continue-memory`,
BENCHMARKS.md), not a test."""

from __future__ import annotations

import math

import pytest
import torch

from audiolm.inference import pipeline, stages
from audiolm.inference.pipeline import AudioLM
from tests.helpers import SEMANTIC_CONTEXT, build_tiny_pipeline, tone

SR = 24000


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> AudioLM:
    return AudioLM.from_pretrained(build_tiny_pipeline(tmp_path_factory.mktemp("tiny_long")), compile_step=False)


def test_long_continuation_slides_the_windows_and_has_the_asked_length(lm, monkeypatch):
    starts: dict[int, list[int]] = {}  # id(model) -> window_start of every step
    real = stages.decode_steps

    def spy(model, *args, **kwargs):
        for step in real(model, *args, **kwargs):
            starts.setdefault(id(model), []).append(step.window_start)
            yield step

    monkeypatch.setattr(stages, "decode_steps", spy)
    monkeypatch.setattr(pipeline, "DECODE_CHUNK_SECONDS", 1.0)  # the codec decodes 1 s chunks
    prompt_seconds, seconds = 0.5, 3.0
    out = lm.generate_continuation(tone(prompt_seconds), SR, seconds=seconds, seed=3, continuation_only=True)

    sem_cfg = lm.stages["semantic"].config
    new_frames = round(seconds * lm.codec.frame_rate)
    prompt_frames = int(prompt_seconds * SR) // lm.codec.hop_length
    total_frames = prompt_frames + new_frames
    total_semantic = math.ceil(total_frames * sem_cfg.semantic_frame_rate / lm.codec.frame_rate)
    assert total_semantic > 2 * SEMANTIC_CONTEXT  # longer than the semantic context, twice over
    # the semantic decoder slid its window (a step saw a window starting after token 0) ...
    semantic_starts = starts[id(lm.stages["semantic"].model)]
    assert max(semantic_starts) > 0 and len(set(semantic_starts)) >= 3
    # ... and the coarse stage walked more than one window
    coarse_cfg = lm.stages["coarse"].config
    assert new_frames > coarse_cfg.window_frames
    # shapes: every frame asked for, tokens in range
    assert out.audio.shape == (1, 1, new_frames * lm.codec.hop_length)
    assert out.codes.shape == (1, lm.n_q, total_frames)
    assert out.semantic.shape == (1, total_semantic)
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < lm.codec.codebook_size
    assert int(out.semantic.max()) < lm.semantic_tokenizer.vocab_size
    assert torch.isfinite(out.audio).all()
    # the chunked codec decode equals the whole-sequence decode up to float rounding
    whole = lm.codec.decode(out.codes)[..., prompt_frames * lm.codec.hop_length :]
    assert (out.audio - whole).abs().max() < 1e-4
