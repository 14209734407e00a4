"""The acoustic-consistency metric (audiolm/evaluation/consistency.py) on cases whose answer is known."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from audiolm.core.errors import AudiolmError
from audiolm.evaluation.consistency import (
    DEFAULT_EMBEDDING,
    EMBEDDINGS,
    _spectral_frames,
    active_mask,
    embed,
    frame_statistics,
    rank_score,
    retrieval_accuracy,
    similarity,
)
from tests.helpers import tone

SR = 16000
FAKE_LM = SimpleNamespace(sample_rate=SR)  # the spectral embeddings only read the sample rate


def voice(freq: float, seconds: float, harmonics: tuple[float, ...] = (1.0,), seed: int = 0) -> torch.Tensor:
    """[1, N] harmonic tone, peak harmonic 0.3, with a little noise (so no frame is exactly silent)."""
    return tone(seconds, SR, freq, harmonics=[0.3 * a / max(harmonics) for a in harmonics], noise=1e-3, seed=seed)


def test_retrieval_known_cases():
    prompts = torch.eye(4) + 0.1
    assert retrieval_accuracy(prompts, prompts * 3) == 1.0  # cosine: the scale does not matter
    assert retrieval_accuracy(prompts, prompts[[1, 0, 3, 2]]) == 0.0
    assert retrieval_accuracy(prompts, prompts[[0, 1, 3, 2]]) == 0.5
    assert rank_score(prompts, prompts * 3) == 1.0
    # own prompt tied second with the two others, below the swapped one: (0 + 0.5 + 0.5) / 3
    assert rank_score(prompts, prompts[[1, 0, 3, 2]]) == pytest.approx(1 / 3)


def test_identical_items_score_chance():
    """N identical items: every prompt ties, so top-1 is exactly 1/N and the rank score 0.5."""
    for n in (2, 5, 16):
        same = torch.randn(1, 12).repeat(n, 1)
        assert retrieval_accuracy(same, same) == pytest.approx(1 / n)
        assert rank_score(same, same) == pytest.approx(0.5)
        assert retrieval_accuracy(same, same, centred=False) == pytest.approx(1 / n)
    assert rank_score(torch.ones(1, 3), torch.ones(1, 3)) is None  # nothing to rank against


def test_centring_removes_what_the_set_shares():
    """A continuation set offset as a group (as codec output is from raw prompts) is matched
    once each side is centred; without centring the shared offset decides."""
    g = torch.Generator().manual_seed(0)
    prompts = torch.randn(8, 16, generator=g)
    continuations = prompts + 0.05 * torch.randn(8, 16, generator=g) + 20.0 * torch.randn(1, 16, generator=g)
    assert retrieval_accuracy(prompts, continuations) == 1.0
    assert retrieval_accuracy(prompts, continuations, centred=False) < 0.5
    with pytest.raises(AudiolmError, match=r"\[N, D\]"):
        similarity(prompts, continuations[:3])


@pytest.mark.parametrize("how", ["logmel-stats", "mfcc-stats"])
def test_tones_of_distinct_pitch_find_their_own_prompt(how):
    """Prompt and continuation of each item are different stretches (and noise) of one tone;
    6 pitches and timbres: every continuation retrieves its own prompt."""
    voices = [
        (110, (1.0, 0.5)),
        (180, (1.0,)),
        (260, (1.0, 0.8, 0.6)),
        (400, (0.3, 1.0)),
        (650, (1.0,)),
        (990, (1.0, 0.2, 0.7)),
    ]
    prompts = torch.stack([embed(FAKE_LM, voice(f, 0.8, h, seed=i), how) for i, (f, h) in enumerate(voices)])
    conts = torch.stack([embed(FAKE_LM, voice(f, 0.5, h, seed=100 + i), how) for i, (f, h) in enumerate(voices)])
    assert retrieval_accuracy(prompts, conts) == 1.0
    assert rank_score(prompts, conts) == 1.0
    shuffled = conts[[1, 2, 3, 4, 5, 0]]
    assert retrieval_accuracy(prompts, shuffled) == 0.0


def test_statistics_leave_out_silent_frames():
    """Pauses do not change the embedding: a tone with silence around it embeds as the tone."""
    loud = voice(300, 0.6)
    padded = torch.cat([torch.zeros(1, 4000), loud, torch.zeros(1, 8000)], dim=1)
    a, b = embed(FAKE_LM, loud), embed(FAKE_LM, padded)
    frames, _ = _spectral_frames(padded, SR, "logmel-stats")
    unmasked = frame_statistics(frames)  # what the statistics would be with the silence in
    assert a.shape == (128,)
    assert (a - b).norm() < 0.1 * (a - unmasked).norm()
    mask = active_mask(torch.tensor([1.0, 1e-5, 0.5, 0.0]))
    assert mask.tolist() == [True, False, True, False]
    assert active_mask(torch.zeros(3)).all()  # all silent: keep every frame
    stats = frame_statistics(torch.tensor([[1.0, 2.0], [3.0, 2.0], [100.0, 100.0]]), torch.tensor([True, True, False]))
    assert stats.tolist() == [2.0, 2.0, 1.0, 0.0]  # means, then standard deviations


def test_embed_bad_input():
    assert DEFAULT_EMBEDDING == EMBEDDINGS[0]
    with pytest.raises(AudiolmError, match="unknown embedding"):
        embed(FAKE_LM, voice(200, 0.2), "nope")
    with pytest.raises(AudiolmError, match="shorter than one analysis frame"):
        embed(FAKE_LM, torch.zeros(1, 50))


def test_cli_choices_match_the_module():
    from audiolm.cli import eval as eval_commands

    assert eval_commands.EMBEDDINGS == EMBEDDINGS
