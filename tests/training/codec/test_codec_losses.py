"""Mel spectrograms, losses, the discriminator, the balancer and the metrics."""

from __future__ import annotations

import pytest
import torch

from audiolm.models.codec.mel import mel_filterbank
from audiolm.models.codec.metrics import mel_distance, si_sdr
from audiolm.training.codec.balancer import Balancer
from audiolm.training.codec.discriminator import MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator
from audiolm.training.codec.losses import (
    MultiScaleMel,
    discriminator_hinge_loss,
    discriminator_lsgan_loss,
    feature_matching_loss,
    generator_hinge_loss,
    generator_lsgan_loss,
    multiscale_mel_loss,
)
from tests.helpers import tone


def test_mel_filterbank_is_a_partition_of_the_spectrum():
    filters = mel_filterbank(1024, 40, 24000)
    assert filters.shape == (40, 513)
    assert (filters >= 0).all() and (filters.max(dim=1).values > 0.5).all()
    centers = filters.argmax(dim=1)
    assert (centers[1:] > centers[:-1]).all()  # ascending, non-empty bands


def test_multiscale_mel_loss_is_zero_for_identical_and_grows_with_distortion():
    mel = MultiScaleMel(24000, 6, 10, 32, power=1)
    x = tone(0.5, 24000, 440, harmonics=(0.3,), noise=0)[None]
    assert float(multiscale_mel_loss(mel, x, x)) == pytest.approx(0.0, abs=1e-6)
    small = multiscale_mel_loss(mel, x + 0.001 * torch.randn_like(x), x)
    large = multiscale_mel_loss(mel, x + 0.05 * torch.randn_like(x), x)
    assert 0 < small < large


def test_hinge_and_feature_matching():
    real, fake = [torch.full((2, 1, 3, 3), 2.0)], [torch.full((2, 1, 3, 3), -2.0)]
    assert float(discriminator_hinge_loss(real, fake)) == 0.0  # both beyond the margin
    assert float(generator_hinge_loss(fake)) == 3.0
    features = [[torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 3)]]
    assert float(feature_matching_loss(features, features)) == 0.0
    assert float(feature_matching_loss(features, [[f + 1 for f in features[0]]])) > 0


def test_discriminator_outputs_logits_and_features_per_scale():
    disc = MultiScaleSTFTDiscriminator(n_ffts=(256, 128), filters=4)
    logits, features = disc(torch.randn(2, 1, 4800))
    assert len(logits) == len(features) == 2
    assert all(l.shape[:2] == (2, 1) for l in logits)
    assert all(len(f) == 5 for f in features)  # first conv, 3 dilated convs, last conv


def test_multi_period_discriminator_folds_by_period():
    disc = MultiPeriodDiscriminator(periods=(2, 3, 5), filters=2)
    wav = torch.randn(2, 1, 4801)  # not a multiple of any period: padded
    logits, features = disc(wav)
    assert len(logits) == len(features) == 3
    for period, logit, feature in zip((2, 3, 5), logits, features):
        assert logit.shape[:2] == (2, 1) and logit.shape[-1] == period  # one column per phase
        assert len(feature) == 5 and feature[0].shape[1] == 2 and feature[-1].shape[1] == 64
    # one changed sample moves the logits
    wav2 = wav.clone()
    wav2[..., 100] += 1
    assert not torch.equal(disc(wav2)[0][0], logits[0])


def test_lsgan_losses():
    real, fake = [torch.ones(2, 1, 3)], [torch.zeros(2, 1, 3)]
    assert float(discriminator_lsgan_loss(real, fake)) == 0.0  # perfect discriminator
    assert float(generator_lsgan_loss(fake)) == 1.0
    assert float(generator_lsgan_loss(real)) == 0.0


def test_balancer_gives_each_loss_its_share_of_the_gradient():
    balancer = Balancer({"a": 1.0, "b": 3.0}, ema_decay=0.0)
    y = torch.randn(4, 1, 100, requires_grad=True)
    target = torch.randn(4, 1, 100)
    losses = {"a": 1000.0 * (y - target).pow(2).mean(), "b": 0.001 * (y - target).abs().mean()}
    surrogate, norms = balancer.balance(losses, y)
    assert float(surrogate.detach()) == pytest.approx(float((losses["a"] + 3 * losses["b"]).detach()), rel=1e-5)
    (grad,) = torch.autograd.grad(surrogate, y)
    # the gradient is 1/4 of a unit-norm "a" direction plus 3/4 of a unit-norm "b" direction,
    # whatever the raw scales (1000 vs 0.001)
    ga = torch.autograd.grad(losses["a"], y, retain_graph=True)[0]
    gb = torch.autograd.grad(losses["b"], y)[0]
    per_item = lambda g: g.flatten(1).norm(dim=1).mean()  # noqa: E731
    expected = 0.25 * ga / per_item(ga) + 0.75 * gb / per_item(gb)
    assert torch.allclose(grad, expected, atol=1e-6)
    assert set(norms) == {"grad_norm_a", "grad_norm_b"}


def test_metrics_on_identical_and_degraded_audio():
    x = tone(1.0, 24000, 330, harmonics=(0.3,), noise=0)[0]
    noisy = x + 0.03 * torch.randn_like(x)
    assert si_sdr(x, x) > 100 and 5 < si_sdr(x, noisy) < 30
    assert si_sdr(x, 3 * x) > 100  # scale-invariant
    assert mel_distance(x, x, 24000) == pytest.approx(0.0, abs=1e-6)
    assert mel_distance(x, noisy, 24000) > mel_distance(x, x + 0.003 * torch.randn_like(x), 24000)
