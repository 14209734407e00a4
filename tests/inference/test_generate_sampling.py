"""On-device sampling: exact Gumbel-max draws, filters, per-sample seeds."""

import pytest
import torch

from audiolm.inference.sampling import SamplingConfig, gumbel_from_bits, gumbel_noise, sample, seeds_tensor


def draws(logits, config, n=4000, seed=5, allowed=None):
    """n draws for one logits row, as n samples of a batch (seed + i each)."""
    seeds = seeds_tensor(list(range(seed, seed + n)), "cpu")
    return sample(logits.expand(n, -1), config, seeds, torch.tensor([0]), allowed)


def test_draws_follow_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]])
    for temperature in (1.0, 0.5):
        out = draws(logits, SamplingConfig(temperature=temperature), n=20000)
        freq = torch.bincount(out, minlength=5).float() / out.numel()
        expected = torch.softmax(logits[0] / temperature, -1)
        assert (freq - expected).abs().max() < 0.015, (freq, expected)


def test_noise_is_finite_for_every_hash_and_a_masked_token_is_never_drawn():
    """The largest 24-bit uniform, (2^24 - 0.5) / 2^24, rounds to 1.0 in float32; unclamped its
    noise was +inf, a masked logit's -inf + inf = NaN won the argmax, and a continuation held a
    code outside its level (found on a held-out clip: a level-1 token at a level-0 step)."""
    edges = torch.tensor([0, 1, 0xFF, 0xFFFFFF00, 0xFFFFFFFE, 0xFFFFFFFF], dtype=torch.int64)
    noise = gumbel_from_bits(edges)
    assert torch.isfinite(noise).all()
    assert noise[-1] > noise[0]  # still monotone at the top: the clamp only keeps it finite
    # the masked draw with that noise: +huge noise on a masked id must not win
    logits = torch.zeros(1, 4)
    allowed = torch.tensor([True, True, False, False])
    masked = logits.masked_fill(~allowed, float("-inf")) + torch.stack([noise[0], noise[1], noise[-1], noise[-1]])[None]
    assert int(masked.argmax(-1)) in (0, 1)


def test_noise_depends_on_seed_and_step_only():
    a = gumbel_noise(seeds_tensor([1, 2], "cpu"), torch.tensor([7]), 50)
    ids = torch.tensor([[4, 9], [0, 49]])
    torch.testing.assert_close(gumbel_noise(seeds_tensor([1, 2], "cpu"), torch.tensor([7]), 50, ids), a.gather(1, ids))
    b = gumbel_noise(seeds_tensor([2], "cpu"), torch.tensor([7]), 50)
    torch.testing.assert_close(a[1:], b)
    c = gumbel_noise(seeds_tensor([1], "cpu"), torch.tensor([8]), 50)
    assert not torch.allclose(a[:1], c)
    assert torch.isfinite(a).all()
    # the whole 32-bit range gives distinct streams; outside it seeds are refused, not aliased
    d = gumbel_noise(seeds_tensor([2**32 - 1, 0, 1], "cpu"), torch.tensor([7]), 50)
    assert not torch.allclose(d[0], d[1]) and not torch.allclose(d[0], d[2])
    for bad in ([-1], [2**32], [2**64], [True]):
        with pytest.raises(ValueError, match="seeds must be"):
            seeds_tensor(bad, "cpu")
    with pytest.raises(ValueError, match="seeds must be"):
        seeds_tensor(torch.tensor([-1, 0]), "cpu")


def test_top_k_top_p_greedy_and_mask():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    assert set(draws(logits, SamplingConfig(top_k=2)).tolist()) == {0, 1}
    # probs at T=1: .64 .23 .086 .032 .012 -> top_p 0.8 keeps the first two
    assert set(draws(logits, SamplingConfig(top_p=0.8)).tolist()) == {0, 1}
    assert set(draws(logits, SamplingConfig(temperature=0)).tolist()) == {0}
    allowed = torch.tensor([False, False, True, True, False])
    assert set(draws(logits, SamplingConfig(), allowed=allowed).tolist()) == {2, 3}
    # top-3 keeps .665 .245 .090 (renormalised); the first two already hold 0.91 > 0.9
    assert set(draws(logits, SamplingConfig(top_k=3, top_p=0.9)).tolist()) == {0, 1}
    assert set(draws(logits, SamplingConfig(top_k=3, top_p=0.95)).tolist()) == {0, 1, 2}


def test_top_k_draw_equals_full_vocabulary_draw():
    """Noise only for the top-k candidates == noise for all ids with the rest masked out."""
    torch.manual_seed(0)
    logits = torch.randn(64, 100)
    seeds = seeds_tensor(list(range(64)), "cpu")
    step = torch.tensor([3])
    fast = sample(logits, SamplingConfig(temperature=0.7, top_k=10), seeds, step)
    kth = torch.topk(logits, 10).values[:, -1:]
    slow = sample(logits, SamplingConfig(temperature=0.7), seeds, step, allowed=logits >= kth)
    assert torch.equal(fast, slow)


def test_config_validation():
    with pytest.raises(ValueError):
        SamplingConfig(temperature=-1)
    with pytest.raises(ValueError):
        SamplingConfig(top_p=0)
    with pytest.raises(ValueError):
        SamplingConfig(top_k=-2)


def test_position_seeds_are_per_sample_and_position_and_give_exact_draws():
    from audiolm.inference.sampling import position_seeds

    seeds = seeds_tensor([3, 4], "cpu")
    states = position_seeds(seeds, torch.arange(10, 2010))  # [2, 2000]
    assert states.shape == (2, 2000) and states.dtype == torch.int64
    # a sample's states do not depend on the batch, nor on which positions are asked with it
    assert torch.equal(position_seeds(seeds[1:], torch.arange(10, 2010))[0], states[1])
    assert torch.equal(position_seeds(seeds, torch.arange(500, 510)), states[:, 490:500])
    assert len(set(states.flatten().tolist())) == 4000  # distinct streams
    # draws from these states (one per position) still follow the softmax
    logits = torch.tensor([0.0, 1.0, 2.0])
    got = sample(logits.expand(4000, -1), SamplingConfig(), states.flatten(), torch.tensor([0]))
    freq = torch.bincount(got, minlength=3).float() / 4000
    torch.testing.assert_close(freq, torch.softmax(logits, 0), atol=0.03, rtol=0)
