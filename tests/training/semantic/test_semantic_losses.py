import math

import numpy as np
import pytest
import torch

from audiolm.training.semantic.losses import codebook_perplexity, contrastive_loss, diversity_loss, mlm_loss
from audiolm.training.semantic.pretraining import draw_masks, gumbel_temperature


def test_masks_cover_spans_inside_valid_frames(make_config):
    cfg = make_config(mask_prob=0.5, mask_span_seconds=0.1, num_negatives=7)  # spans of 5 frames
    num_frames = torch.tensor([100, 60])
    masks = draw_masks(cfg, num_frames, 100, seed=3)
    assert masks.mask.shape == (2, 100) and masks.mask.dtype == torch.bool
    assert not masks.mask[1, 60:].any()  # never inside padding
    assert masks.valid[1, :60].all() and not masks.valid[1, 60:].any()
    coverage = masks.mask[0].float().mean()
    assert 0.2 < coverage < 0.6
    # spans: masked runs are at least the span length (overlaps only make them longer)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, masks.mask[0].int().numpy(), 0])))[::2]
    assert runs.min() >= 5
    assert masks.negatives.shape == (2, 100, 7)
    # distractors come from the same row's valid frames and are never the frame itself
    rows = masks.negatives // 100
    assert (rows[0] == 0).all() and (rows[1] == 1).all()
    local = masks.negatives[1, :60] % 100
    assert (local < 60).all()
    assert (local != torch.arange(60)[:, None]).all()


def test_masks_fixed_by_seed_and_leave_global_state(make_config):
    cfg = make_config()
    state = np.random.get_state()[1].copy()
    a = draw_masks(cfg, torch.tensor([50, 50]), 50, seed=1)
    b = draw_masks(cfg, torch.tensor([50, 50]), 50, seed=1)
    c = draw_masks(cfg, torch.tensor([50, 50]), 50, seed=2)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.negatives, b.negatives)
    assert not torch.equal(a.mask, c.mask)
    assert np.array_equal(np.random.get_state()[1], state)


def test_contrastive_loss_low_when_context_matches_target(make_config):
    torch.manual_seed(0)
    targets = torch.randn(2, 30, 8)
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[:, 5:20] = True
    negatives = draw_masks(make_config(num_negatives=10), torch.tensor([30, 30]), 30, seed=0).negatives
    good, acc_good = contrastive_loss(targets.clone(), targets, negatives, mask, temperature=0.1)
    bad, _ = contrastive_loss(torch.randn(2, 30, 8), targets, negatives, mask, temperature=0.1)
    assert acc_good == 1.0
    assert good < 0.5 < bad


def test_contrastive_loss_ignores_distractors_equal_to_the_positive():
    targets = torch.ones(1, 10, 4)  # every frame quantized to the same vector
    mask = torch.ones(1, 10, dtype=torch.bool)
    negatives = torch.randint(0, 10, (1, 10, 5))
    loss, acc = contrastive_loss(torch.ones(1, 10, 4), targets, negatives, mask, temperature=0.1)
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and acc == 1.0


def test_diversity_loss_zero_for_uniform_use_one_for_collapse():
    g, v = 2, 16
    uniform = torch.full((3, 20, g, v), 1.0 / v)
    assert diversity_loss(uniform).item() == pytest.approx(0.0, abs=1e-6)
    collapsed = torch.zeros(3, 20, g, v)
    collapsed[..., 0] = 1.0
    assert codebook_perplexity(collapsed).item() == pytest.approx(g)
    assert diversity_loss(collapsed).item() == pytest.approx((g * v - g) / (g * v))
    valid = torch.zeros(3, 20, dtype=torch.bool)
    valid[:, :10] = True
    assert diversity_loss(uniform, valid).item() == pytest.approx(0.0, abs=1e-6)


def test_mlm_loss_only_on_masked_frames():
    torch.manual_seed(0)
    ids = torch.randint(0, 16, (2, 12, 2))
    logits = torch.nn.functional.one_hot(ids, 16).float() * 20
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, :6] = True
    wrong = logits.clone()
    wrong[:, 6:] = torch.randn(2, 6, 2, 16)  # garbage on unmasked frames must not count
    loss, acc = mlm_loss(wrong, ids, mask)
    assert loss.item() < 1e-3 and acc == 1.0
    uniform, _ = mlm_loss(torch.zeros(2, 12, 2, 16), ids, mask)
    assert uniform.item() == pytest.approx(math.log(16), rel=1e-5)


def test_gumbel_temperature_anneals(make_config):
    cfg = make_config(gumbel_max_temperature=2.0, gumbel_min_temperature=0.5, gumbel_decay_steps=100)
    assert gumbel_temperature(cfg, 0) == pytest.approx(2.0)
    assert gumbel_temperature(cfg, 50) == pytest.approx(1.0)
    assert gumbel_temperature(cfg, 1000) == pytest.approx(0.5)


def test_quantizer_noise_scale():
    """noise_scale 0 samples the argmax (targets a function of the audio); 1 is Gumbel-softmax,
    which with soft logits often picks another entry. Both pass a soft gradient."""
    from audiolm.training.semantic.quantizer import GumbelProductQuantizer

    torch.manual_seed(0)
    feats = torch.randn(2, 40, 16)
    for scale, expect_equal in ((0.0, True), (1.0, False)):
        q = GumbelProductQuantizer(16, 2, 32, 16, logit_scale=1.0, noise_scale=scale).train()
        out = q(feats)
        sampled = out.one_hot.argmax(dim=-1)
        assert torch.equal(sampled, out.ids) == expect_equal
        out.codevectors.sum().backward()
        assert q.logits.weight.grad.abs().sum() > 0
