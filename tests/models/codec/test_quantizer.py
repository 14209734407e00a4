"""The residual VQ: EMA updates, k-means init, dead-code replacement, straight-through."""

from __future__ import annotations

import pytest
import torch

from audiolm.models.codec.quantizer import EMACodebook, ResidualVQ, kmeans


def test_ema_update_moves_codebook_toward_assigned_vectors():
    torch.manual_seed(0)
    book = EMACodebook(codebook_size=4, dim=3, decay=0.9)
    book.embed.copy_(torch.eye(4, 3) * 5)
    book.embed_avg.copy_(book.embed)
    book.cluster_size.fill_(1.0)
    target = torch.tensor([4.0, 1.0, -1.0])
    x = target + 0.01 * torch.randn(32, 3)  # all nearest to entry 0 (5, 0, 0)
    index = book.quantize(x)
    assert (index == 0).all()
    before = (book.embed[0] - target).norm()
    others = book.embed[1:].clone()
    for _ in range(20):
        book.ema_update(x, book.quantize(x))
    after = (book.embed[0] - target).norm()
    assert after < 0.2 * before
    # unused entries keep their direction (they only shrink slightly through the smoothing)
    cos = torch.nn.functional.cosine_similarity(book.embed[1:3], others[:2], dim=-1)
    assert (cos > 0.99).all()


def test_dead_codes_are_replaced_by_batch_vectors():
    torch.manual_seed(0)
    book = EMACodebook(codebook_size=8, dim=2, decay=0.99, dead_code_threshold=1.0)
    book.embed.copy_(torch.full((8, 2), 100.0) + torch.arange(8.0)[:, None])  # far from the data
    book.embed_avg.copy_(book.embed)
    # EMA usage (vectors per step) below 1.0 -> dead: entries 2, 3, 4, 6
    book.cluster_size.copy_(torch.tensor([5.0, 5.0, 0.0, 0.0, 0.1, 5.0, 0.9, 5.0]))
    x = torch.randn(64, 2)
    alive_before = book.embed[[0, 1, 5, 7]].clone()
    replaced = book.replace_dead_codes(x)
    assert replaced == 4
    for i in (2, 3, 4, 6):  # each dead entry is now one of the batch vectors
        assert torch.isclose(book.embed[i][None], x).all(dim=-1).any()
        assert torch.allclose(book.embed_avg[i], book.embed[i] * book.cluster_size[i])
    assert torch.equal(book.embed[[0, 1, 5, 7]], alive_before)
    # the replaced entries now sit on the data: they are picked, and the far ones are not
    used = set(book.quantize(x).tolist())
    assert used <= {2, 3, 4, 6} and len(used) == 4


def test_replacement_undoes_a_collapse_onto_one_stale_entry():
    # all vectors drift away from the codebook and fall onto one stale entry (perplexity 1);
    # unused entries are re-seeded from that batch, so the next batch from the drifted
    # distribution spreads over many entries again. Small-batch regime: 300 vectors, 1024 entries.
    torch.manual_seed(0)
    rvq = ResidualVQ(n_q=1, codebook_size=1024, dim=4, kmeans_iters=3).train()
    z = 0.01 * torch.randn(2, 4, 150) + 1.0
    rvq(z)
    drifted = rvq(0.01 * torch.randn(2, 4, 150) + 1.5)  # common offset drifts far beyond the spread
    assert drifted.metrics["perplexity"] < 5
    # re-seeded after quantizing: the batch was not quantized onto copies of itself
    assert drifted.commitment_loss > 1e-3
    out = rvq(0.01 * torch.randn(2, 4, 150) + 1.5)
    assert out.metrics["perplexity"] > 50


def test_kmeans_finds_clusters():
    torch.manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2) for c in centers])
    found, sizes = kmeans(x, 3, iters=10)
    dist = torch.cdist(centers, found).min(dim=1).values
    assert (dist < 0.5).all()
    assert sizes.sum() == 150


def test_rvq_training_pass_inits_and_passes_gradients_straight_through():
    torch.manual_seed(0)
    rvq = ResidualVQ(n_q=4, codebook_size=16, dim=8, kmeans_iters=3).train()
    z = torch.randn(2, 8, 30, requires_grad=True)
    out = rvq(z, n_q=3)
    assert all(bool(layer.inited) for layer in rvq.layers[:3]) and not bool(rvq.layers[3].inited)
    assert out.codes.shape == (2, 3, 30) and out.quantized.shape == z.shape
    assert out.commitment_loss.requires_grad
    out.quantized.sum().backward()
    assert torch.allclose(z.grad, torch.ones_like(z))  # straight-through estimator
    assert {"perplexity", "dead_codes"} <= set(out.metrics)


def test_rvq_more_levels_reconstruct_better_and_decode_matches_encode():
    torch.manual_seed(0)
    rvq = ResidualVQ(n_q=8, codebook_size=32, dim=4, kmeans_iters=5).train()
    z = torch.randn(4, 4, 50)
    for _ in range(3):
        rvq(z)
    rvq.eval()
    errors = []
    for n_q in (1, 2, 4, 8):
        codes = rvq.encode(z, n_q)
        assert torch.equal(rvq(z, n_q).codes, codes)
        errors.append(float((rvq.decode(codes) - z).pow(2).mean()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.5 * errors[0]


def test_pitched_quantizer_puts_the_pitch_code_first():
    from audiolm.models.codec.pitch import codes_to_pitch, pitch_to_codes
    from audiolm.models.codec.quantizer import PitchedResidualVQ

    torch.manual_seed(0)
    vq = PitchedResidualVQ(4, codebook_size=64, dim=8, fmin=50.0, fmax=800.0, hz_to_bins=1280 / 24000, kmeans_iters=2)
    assert len(vq.layers) == 3  # the pitch is one of the 4 levels
    z = torch.randn(2, 9, 50)
    z[:, 0] = torch.where(torch.rand(2, 50) > 0.5, 60 + 500 * torch.rand(2, 50), torch.zeros(2, 50))  # Hz
    vq.train()
    out = vq(z, 3)
    assert out.codes.shape == (2, 3, 50) and out.quantized.shape == (2, 9, 50)
    assert torch.equal(out.codes[:, 0], pitch_to_codes(z[:, 0], 64, 50.0, 800.0))
    vq.eval()
    codes = vq.encode(z, 3)
    assert torch.equal(codes, vq(z, 3).codes)
    decoded = vq.decode(codes)
    assert torch.allclose(decoded, vq(z, 3).quantized)
    assert torch.allclose(decoded[:, 0], codes_to_pitch(codes[:, 0], 64, 50.0, 800.0) * (1280 / 24000))
    coarse = PitchedResidualVQ(4, codebook_size=64, dim=8, fmin=50.0, fmax=800.0, hz_to_bins=1.0, code_step=2)
    assert torch.equal(coarse.encode(z, 2)[:, 0], pitch_to_codes(z[:, 0], 64, 50.0, 800.0, 2))
    with pytest.raises(ValueError, match=">= 2 levels"):
        vq.encode(z, 1)
    with pytest.raises(ValueError, match="n_q >= 2"):
        PitchedResidualVQ(1, codebook_size=64, dim=8, fmin=50.0, fmax=800.0, hz_to_bins=1.0)
