"""Mel spectrograms, losses, the discriminator, the balancer and the metrics."""

from __future__ import annotations

import math

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
    phase_derivative_loss,
    stft_magnitude_loss,
)
from tests.helpers import tone


def _tone(freq: float, seconds: float) -> torch.Tensor:
    """0.3 sin(2 pi freq t), [N], no noise."""
    return tone(seconds, 24000, freq, harmonics=(0.3,), noise=0)[0]


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


def test_phase_derivative_loss_sees_phase_that_mel_ignores():
    """A signal vs itself: 0. Vs the same magnitudes with each frame's phase scrambled (what an
    untrained iSTFT decoder makes): large. Gradients are finite even through silence."""
    gen = torch.Generator().manual_seed(0)
    wav = (_tone(220.0, 1.0) + _tone(660.0, 1.0) * 0.5)[None, None]
    window = torch.hann_window(1024)
    spec = torch.stft(wav[:, 0], 1024, 256, window=window, return_complex=True)
    scrambled_phase = torch.rand(spec.shape, generator=gen) * 2 * math.pi
    scrambled = torch.istft(torch.polar(spec.abs(), scrambled_phase), 1024, 256, window=window, length=wav.shape[-1])[
        :, None
    ]
    assert float(phase_derivative_loss(wav, wav)) < 1e-5
    assert float(phase_derivative_loss(scrambled, wav)) > 0.5
    # and it rises with the share of frames scrambled
    half = torch.cat([wav[..., :12000], scrambled[..., 12000:]], dim=-1)
    assert 0.2 < float(phase_derivative_loss(half, wav)) < float(phase_derivative_loss(scrambled, wav))
    estimate = torch.zeros(1, 1, 24000, requires_grad=True)
    phase_derivative_loss(estimate, wav).backward()
    assert torch.isfinite(estimate.grad).all()


def test_stft_magnitude_loss_grows_with_a_pitch_shift():
    """0 for a signal vs itself; a harmonic voice shifted in pitch scores worse the further it
    moves; gradients are finite from silence."""

    def voice(f0: float) -> torch.Tensor:
        return sum(_tone(f0 * h, 1.0) / h for h in range(1, 20))[None, None]

    a = voice(200.0)
    assert float(stft_magnitude_loss(a, a)) < 1e-6
    losses = [float(stft_magnitude_loss(voice(f0), a)) for f0 in (202.0, 208.0, 230.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    silence = torch.zeros(1, 1, 24000, requires_grad=True)
    stft_magnitude_loss(silence, a).backward()
    assert torch.isfinite(silence.grad).all()


def test_head_spectral_losses_vanish_on_the_target_and_see_scrambled_phase():
    """The head's own losses: zero when its outputs are the target's spectrum in its framing;
    the phase term grows when the per-hop advances are wrong (what a buzzing decoder does)."""
    from audiolm.models.codec.frame_rate import ISTFTHead
    from audiolm.training.codec.losses import head_spectral_losses

    wav = (_tone(203.3, 1.0) + 0.5 * _tone(611.0, 1.0))[None, None]
    for phase in ("integrated", "direct"):
        head = ISTFTHead(4, 1280, 320, max_log_magnitude=7.6, phase=phase)
        spec = head.analyse(wav, 75)
        log_magnitude = torch.log(spec.abs().clamp(min=1e-2))
        angle = torch.angle(spec)
        param = torch.cat([angle[..., :1], angle.diff(dim=-1)], -1) if phase == "integrated" else angle
        magnitude_loss, phase_loss = head_spectral_losses(head, log_magnitude, param, wav)
        assert float(magnitude_loss) < 1e-5 and float(phase_loss) < 1e-4
        scrambled = param + torch.rand(param.shape, generator=torch.Generator().manual_seed(0)) * 6
        assert float(head_spectral_losses(head, log_magnitude, scrambled, wav)[1]) > 0.5
        assert float(head_spectral_losses(head, log_magnitude + 1.0, param, wav)[0]) == pytest.approx(1.0, abs=0.01)
