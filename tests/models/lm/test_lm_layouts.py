"""Stage token layouts: alignment, vocabulary offsets, targets, config completion."""

import numpy as np
import pytest

from audiolm.core.errors import ConfigError
from audiolm.models.lm.config import StageConfig, TransformerConfig
from audiolm.models.lm.layouts import IGNORE, CoarseLayout, FineLayout, dedup, semantic_span
from audiolm.models.lm.stage import complete_stage_config, make_layout

INFO = {
    "semantic": {"vocab_size": 10, "frame_rate": 25.0},
    "codec": {"codebook_size": 8, "frame_rate": 75.0, "n_q": 4},
}


def stage(name, max_seq_len=64, **kw):
    return complete_stage_config(
        StageConfig(stage=name, model=TransformerConfig(dim=32, n_layers=1, n_heads=2, max_seq_len=max_seq_len), **kw),
        INFO,
    )


def test_semantic_span_25_and_50_hz():
    # 25 Hz: one semantic token per 3 acoustic frames
    assert semantic_span(0, 6, 25, 75, 100) == (0, 2)
    assert semantic_span(3, 7, 25, 75, 100) == (1, 3)
    # 50 Hz: two semantic tokens per 3 frames; a span starting mid-token includes that token
    assert semantic_span(0, 3, 50, 75, 100) == (0, 2)
    assert semantic_span(1, 4, 50, 75, 100) == (0, 3)
    assert semantic_span(30, 45, 50, 75, 25) == (20, 25)  # clipped to what exists


def test_dedup():
    assert dedup(np.array([5, 5, 5, 2, 2, 7, 5])).tolist() == [5, 2, 7, 5]
    assert dedup(np.array([], dtype=np.int64)).tolist() == []


def test_complete_config_fills_vocab_and_window():
    semantic = stage("semantic")
    assert semantic.model.vocab_size == 10 and semantic.window_frames == 65
    coarse = stage("coarse")
    assert coarse.model.vocab_size == 10 + 2 + 2 * 8
    # the largest window that fits: S + 1 + F * Qc - 1 <= 64 with S = ceil(F / 3) + 1
    assert coarse.window_frames == 27 and make_layout(coarse).sequence_length() - 1 <= 64
    with pytest.raises(ConfigError, match="window_frames"):
        stage("coarse", window_frames=28)
    fine = stage("fine")
    assert fine.model.vocab_size == 4 * 8 + 2 and fine.window_frames == 16
    with pytest.raises(ConfigError, match="codebook_size"):
        complete_stage_config(StageConfig(stage="coarse", codebook_size=16), INFO)
    with pytest.raises(ConfigError, match="window_frames"):
        stage("fine", window_frames=40)
    with pytest.raises(ConfigError, match="fine stage"):
        stage("fine", coarse_levels=4)


def test_coarse_example_layout():
    cfg = stage("coarse", window_frames=6)
    layout = CoarseLayout(cfg)
    semantic = np.arange(4) % 10  # 4 tokens at 25 Hz = 12 frames
    acoustic = np.random.default_rng(1).integers(0, 8, size=(12, 4))  # [T, Q]
    rng = np.random.default_rng(0)
    inputs, targets = layout.training_example(semantic, acoustic, rng)
    seq = np.concatenate([inputs, targets[-1:]])
    S = layout.prefix_length
    assert seq[S - 1] == layout.sep
    body = seq[S:].reshape(6, 2) - np.array(layout.level_offsets)
    t0 = next(t for t in range(7) if (acoustic[t : t + 6, :2] == body).all())
    j0, j1 = semantic_span(t0, t0 + 6, 25, 75, 4)
    sem = seq[: S - 1]
    assert (sem[sem != layout.pad] == semantic[j0:j1]).all()
    assert (targets[: S - 1] == IGNORE).all() and (targets[S - 1 :] != IGNORE).all()
    # ids of level q lie in level q's range
    assert ((seq[S::2] >= layout.level_offsets[0]) & (seq[S::2] < layout.level_offsets[0] + 8)).all()


def test_fine_example_layout_and_short_utterance():
    cfg = stage("fine", window_frames=5)
    layout = FineLayout(cfg)
    acoustic = np.arange(3 * 4).reshape(3, 4) % 8  # shorter than the window
    inputs, targets = layout.training_example(np.zeros(1), acoustic, np.random.default_rng(0))
    seq = np.concatenate([inputs, targets[-1:]])
    assert seq.shape[0] == layout.sequence_length() == 5 * 4 + 1
    assert seq[layout.fine_start - 1] == layout.sep
    coarse = seq[: 3 * 2].reshape(3, 2)
    assert (coarse == acoustic[:, :2] + np.array([0, 8])).all()
    assert (seq[3 * 2 : 5 * 2] == layout.pad).all()
    fine = seq[layout.fine_start : layout.fine_start + 3 * 2].reshape(3, 2)
    assert (fine == acoustic[:, 2:] + np.array([16, 24])).all()
    counted = targets != IGNORE
    assert counted.sum() == 3 * 2 and counted[layout.fine_start - 1 : layout.fine_start - 1 + 6].all()


def test_semantic_example_with_dedup_and_padding():
    cfg = stage("semantic", max_seq_len=8, dedup_semantic=True)
    layout = make_layout(cfg)
    inputs, targets = layout.training_example(np.array([1, 1, 2, 2, 3]), np.zeros((0, 4)), np.random.default_rng(0))
    assert inputs.shape == targets.shape == (8,)
    assert inputs[:3].tolist() == [1, 2, 3] and targets[:2].tolist() == [2, 3]
    assert (targets[2:] == IGNORE).all()


def test_bark_fine_config_is_non_causal_with_one_token_per_frame():
    bark = stage("fine", fine_style="bark")
    assert not bark.model.causal and bark.window_frames == 64  # one position per frame
    assert bark.model.vocab_size == 4 * 8 + 2 + 1  # codes, a query per fine level, PAD
    assert stage("fine").model.causal and stage("coarse").model.causal
    with pytest.raises(ConfigError, match="window_frames"):
        stage("fine", fine_style="bark", window_frames=65)
    with pytest.raises(ConfigError, match="causal"):
        complete_stage_config(StageConfig(stage="coarse", model=TransformerConfig(causal=False)), INFO)
    with pytest.raises(ValueError, match="fine_style"):
        StageConfig(stage="coarse", fine_style="bark")
    with pytest.raises(ValueError, match="fine_style"):
        StageConfig(stage="fine", fine_style="maskgit")


def test_bark_fine_layout_round_trip():
    import torch

    from audiolm.models.lm.fine_bark import EMPTY, FineBarkLayout

    cfg = stage("fine", fine_style="bark", window_frames=6)
    layout = make_layout(cfg)
    assert isinstance(layout, FineBarkLayout)
    acoustic = np.random.default_rng(3).integers(0, 8, size=(6, 4))  # [F, Q]
    offsets = np.array(layout.level_offsets)
    for level in (2, 3):
        for prompt in (0, 1):
            inputs, targets = layout.level_inputs(acoustic, level, prompt)
            assert inputs.shape == (6, 4) and targets.shape == (6,)
            # columns below the level decode back to the codes; the level's column is the query
            assert (inputs[:, :level] - offsets[:level] == acoustic[:, :level]).all()
            assert (inputs[prompt:, level] == layout.query_ids[level - 2]).all()
            assert (inputs[:prompt, level] - offsets[level] == acoustic[:prompt, level]).all()
            assert (inputs[:, level + 1 :] == EMPTY).all()
            assert (targets[:prompt] == IGNORE).all()
            assert (targets[prompt:] - offsets[level] == acoustic[prompt:, level]).all()
            # the batched builder used at generation gives the same inputs
            codes = torch.from_numpy(acoustic.T[None])  # [1, Q, F]
            assert np.array_equal(layout.level_input_tokens(codes, level, prompt)[0].numpy(), inputs)
    with pytest.raises(ValueError, match="fine level"):
        layout.level_inputs(acoustic, 1)
    # a short utterance: PAD frames after it, their targets ignored
    inputs, targets = layout.training_example(np.zeros(1), acoustic[:4], np.random.default_rng(0))
    assert (inputs[4:, 0] == layout.pad).all() and (inputs[4:, 1:] == EMPTY).all()
    assert (targets[4:] == IGNORE).all() and (targets[:4] != IGNORE).sum() >= 3
    # training draws both fine levels and prompts of 0..F/4 frames
    levels = set()
    for seed in range(40):
        inputs, targets = layout.training_example(np.zeros(1), acoustic, np.random.default_rng(seed))
        level = int((inputs >= 0).sum(1).max()) - 1
        levels.add(level)
        prompt = int((targets == IGNORE).sum())
        assert 0 <= prompt <= 6 // 4
    assert levels == {2, 3}
    mask = layout.level_mask(3, "cpu")
    assert mask.sum() == 8 and mask[24:32].all()
