"""`AudioLM.continue_prompts`: prompts of different lengths run through the three stages as one
ragged batch, and each prompt's continuation equals that prompt run alone with the same seed
(AR and Bark-style fine stages, sampled and greedy, past the semantic stage's context)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audiolm.inference import stages
from audiolm.inference.pipeline import AudioLM
from tests.helpers import COARSE_LEVELS, build_tiny_pipeline, save_stage, tokens_info, tone, write_recipe

SR = 24000


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny_many")).parent


def _sharpened(lm: AudioLM) -> AudioLM:
    """Random stages with 5x larger matrices: at the tiny init (std 0.02) attention is nearly
    uniform and the logits hardly depend on the context, so a wrong position or an unmasked
    padding slot would go unseen; sharpened, they change the tokens."""
    with torch.no_grad():
        for stage in lm.stages.values():
            for p in stage.model.parameters():
                if p.dim() == 2:
                    p.mul_(5)
    return lm


@pytest.fixture(scope="module")
def lm(tiny_root) -> AudioLM:
    return _sharpened(AudioLM.from_pretrained(tiny_root))


@pytest.fixture(scope="module")
def bark_lm(tiny_root) -> AudioLM:
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
    return _sharpened(AudioLM.from_pretrained(write_recipe(tiny_root, name="bark", fine_stage="fine_bark_stage")))


def _prompts(lm):
    # 0.3 s, 0.55 s and 1.1 s: 22, 41 and 82 frames; 1.1 s + 0.6 s passes the semantic stage's
    # 64-token context, so that row's window slides while the others' do not
    return [
        lm.encode_prompt(tone(s, freq=f, seed=i), SR) for i, (s, f) in enumerate([(0.3, 200), (0.55, 330), (1.1, 250)])
    ]


def _decode_batches(monkeypatch) -> list[int]:
    """Spy: the batch size of every semantic/coarse/fine decoding loop."""
    sizes: list[int] = []
    original = stages.decode_steps

    def spy(model, prompt, *args, **kwargs):
        sizes.append(prompt.shape[0])
        return original(model, prompt, *args, **kwargs)

    monkeypatch.setattr(stages, "decode_steps", spy)
    return sizes


@pytest.mark.parametrize("pipeline", ["ar", "bark"])
@pytest.mark.parametrize("temperature", [None, 0.0])
def test_prompts_of_three_lengths_equal_single_runs(lm, bark_lm, pipeline, temperature, monkeypatch):
    model = lm if pipeline == "ar" else bark_lm
    prompts = _prompts(model)
    assert len({p.codes.shape[-1] for p in prompts}) == 3 and len({p.semantic.shape[-1] for p in prompts}) == 3
    sizes = _decode_batches(monkeypatch)
    results = model.continue_prompts(prompts, seconds=0.6, seed=5, num_samples=2, temperature=temperature)
    # every decoding loop ran all 3 prompts x 2 samples at once (until the shortest rows finish)
    assert sizes and sizes[0] == 6 and max(sizes) == 6
    assert len(results) == 3
    for prompt, result in zip(prompts, results):
        single = model.generate_continuation(
            None, None, seconds=0.6, seed=5, num_samples=2, prompt=prompt, temperature=temperature
        )
        assert torch.equal(result.semantic, single.semantic)
        assert torch.equal(result.codes, single.codes)
        assert result.audio.shape == single.audio.shape and result.prompt_samples == single.prompt_samples
        assert torch.allclose(result.audio, single.audio, atol=1e-5)


def test_continuation_only_and_one_prompt(lm):
    prompts = _prompts(lm)[:2]
    results = lm.continue_prompts(prompts, seconds=0.2, seed=1, continuation_only=True)
    for prompt, result in zip(prompts, results):
        single = lm.continue_audio(None, None, seconds=0.2, seed=1, prompt=prompt, continuation_only=True)
        assert result.audio.shape == single.shape == (1, 1, 15 * 320)
        assert torch.allclose(result.audio, single, atol=1e-5)
    assert lm.continue_prompts([], seconds=0.2) == []
