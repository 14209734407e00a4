"""Streaming continuation (`AudioLM.stream`) on tiny random components: the stream puts
together what `continue_audio` gives with the same seed, whatever the chunking, and audio comes
out before the later stages' work is done. (The incremental codec decoding it uses,
`ChunkedDecoder.skip` / `push_ready`, is tested in test_codec_chunks.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audiolm.inference.pipeline import AudioLM, PipelineError
from tests.helpers import COARSE_LEVELS, build_tiny_pipeline, save_stage, tokens_info, tone, write_recipe

SR = 24000
HOP = 320


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """Its own tiny pipeline: bark_lm adds a stage and a recipe beside it."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny_stream")).parent


@pytest.fixture(scope="module")
def lm(tiny_root) -> AudioLM:
    return AudioLM.from_pretrained(tiny_root)


@pytest.fixture(scope="module")
def bark_lm(tiny_root) -> AudioLM:
    """The same pipeline with a Bark-style fine stage (one step = one 16-frame window)."""
    from audiolm.models.lm.config import StageConfig, TransformerConfig
    from audiolm.models.lm.stage import complete_stage_config

    config = StageConfig(
        stage="fine",
        fine_style="bark",
        window_frames=16,
        coarse_levels=COARSE_LEVELS,
        model=TransformerConfig(dim=32, n_layers=1, n_heads=2, max_seq_len=16, causal=False),
    )
    save_stage(tiny_root / "fine_bark_stage", complete_stage_config(config, tokens_info()), seed=5)

    recipe = write_recipe(tiny_root, name="bark", fine_stage="fine_bark_stage")
    return AudioLM.from_pretrained(recipe)


def _joined(chunks) -> torch.Tensor:
    return torch.cat(list(chunks), dim=-1)


@pytest.mark.parametrize("chunk_seconds", [0.0, 0.2, 30.0])
def test_stream_equals_continue_audio(lm, chunk_seconds):
    """1.5 s: past the semantic stage's context and over several coarse and fine windows."""
    expected = lm.continue_audio(tone(0.5), SR, seconds=1.5, seed=3, num_samples=2)
    streamed = _joined(lm.stream(tone(0.5), SR, seconds=1.5, seed=3, num_samples=2, chunk_seconds=chunk_seconds))
    assert streamed.shape == expected.shape
    # equal up to float rounding in the codec's LSTM (state carried over chunks)
    assert torch.allclose(streamed, expected, atol=1e-5, rtol=0)


def test_stream_tokens_are_continue_audio_tokens(lm):
    """The stream decodes exactly the codes `generate_continuation` samples: decoding the
    reference codes in one go gives the streamed audio."""
    ref = lm.generate_continuation(tone(0.5), SR, seconds=0.8, seed=9, continuation_only=True)
    streamed = _joined(lm.stream(tone(0.5), SR, seconds=0.8, seed=9, continuation_only=True, chunk_seconds=0))
    whole = lm.codec.decode(ref.codes)[..., ref.codes.shape[-1] * HOP - streamed.shape[-1] :]
    assert torch.allclose(streamed, whole, atol=1e-5, rtol=0)
    other = _joined(lm.stream(tone(0.5), SR, seconds=0.8, seed=10, continuation_only=True))
    assert not torch.allclose(other, streamed, atol=1e-3)


def test_stream_with_bark_fine_stage(bark_lm):
    expected = bark_lm.continue_audio(tone(0.5), SR, seconds=1.0, seed=1, continuation_only=True)
    streamed = _joined(bark_lm.stream(tone(0.5), SR, seconds=1.0, seed=1, continuation_only=True))
    assert torch.allclose(streamed, expected, atol=1e-5, rtol=0)


def test_stream_interleaves_stages(lm):
    """The first continuation chunk arrives while the semantic and coarse stages still have
    work left: they run only as far ahead as the next fine window needs."""
    state: dict[str, tuple[int, int]] = {}

    def progress(stage, done, total):
        state[stage] = (done, total)

    stream = lm.stream(tone(0.5), SR, seconds=3.0, seed=0, continuation_only=True, progress=progress, chunk_seconds=0.1)
    first = next(stream)
    assert 0 < first.shape[-1] < round(3.0 * 75) * HOP
    for stage in ("semantic", "coarse", "fine"):
        done, total = state[stage]
        assert done < total, (stage, done, total)
    rest = _joined(stream)
    assert first.shape[-1] + rest.shape[-1] == round(3.0 * 75) * HOP
    assert all(done == total for done, total in state.values())


def test_stream_first_chunk_is_the_prompt(lm):
    prompt = lm.encode_prompt(tone(0.5), SR)
    chunks = list(lm.stream(None, None, seconds=0.3, seed=2, prompt=prompt))
    assert torch.equal(chunks[0], prompt.audio[None])
    with pytest.raises(PipelineError, match="seconds must be a positive"):
        next(lm.stream(tone(0.5), SR, seconds=0))


def test_first_chunk_seconds(lm, bark_lm):
    """A short first fine window: audio starts sooner; semantic and coarse tokens are those of
    the default schedule, and generate_continuation with the same option gives what the stream
    gives."""
    for pipeline in (lm, bark_lm):
        default = pipeline.generate_continuation(tone(0.5), SR, seconds=1.2, seed=2, continuation_only=True)
        short = pipeline.generate_continuation(
            tone(0.5), SR, seconds=1.2, seed=2, continuation_only=True, first_chunk_seconds=0.1
        )
        assert torch.equal(short.semantic, default.semantic)
        assert torch.equal(short.codes[:, :2], default.codes[:, :2])  # coarse levels
        # (the fine levels may differ: other windows give other logits; the draws' noise is keyed
        # by position, so near-uniform random models often pick the same codes anyway)
        chunks = list(
            pipeline.stream(
                tone(0.5), SR, seconds=1.2, seed=2, continuation_only=True, first_chunk_seconds=0.1, chunk_seconds=0.1
            )
        )
        assert chunks[0].shape[-1] == round(0.1 * 75) * HOP
        assert torch.allclose(_joined(chunks), short.audio, atol=1e-5, rtol=0)
    with pytest.raises(PipelineError, match="first_chunk_seconds must be positive"):
        next(lm.stream(tone(0.5), SR, seconds=1.0, first_chunk_seconds=0))
