"""The loss split of `eval codec --diagnose`: hybrids take exactly the part they name."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from audiolm.evaluation.codec.loss_split import _framing, _stft, envelope_error_db, log_envelope, spectral_hybrids

SR = 24000


def _voice(f0: float = 140.0, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Harmonics of f0 up to 8 kHz under one fixed envelope (1 / (1 + f / 300 Hz)), a little noise: [N]."""
    torch.manual_seed(seed)
    t = torch.arange(int(SR * seconds)) / SR
    wav = sum(torch.sin(2 * math.pi * f0 * h * t + h) / (1 + f0 * h / 300) for h in range(1, int(8000 / f0)))
    return 0.1 * wav + 0.002 * torch.randn_like(t)


def _tilted(wav: torch.Tensor) -> torch.Tensor:
    """A zero-phase filter, +6 dB at 0 Hz to -14 dB at 12 kHz: the envelope moves, the phase stays."""
    spectrum = torch.fft.rfft(wav)
    gain_db = torch.linspace(6.0, -14.0, spectrum.numel())
    return torch.fft.irfft(spectrum * 10 ** (gain_db / 20), n=wav.numel())


def _notched(wav: torch.Tensor) -> torch.Tensor:
    """-20 dB from 1 to 2.5 kHz (where ViSQOL's speech mode listens; a gentle tilt it barely hears)."""
    spectrum = torch.fft.rfft(wav)
    hz = torch.arange(spectrum.numel()) * SR / wav.numel()
    return torch.fft.irfft(spectrum * torch.where((hz > 1000) & (hz < 2500), 0.1, 1.0), n=wav.numel())


def _envelope_db(wav: torch.Tensor) -> torch.Tensor:
    """[F, T] in dB, frames away from the edges."""
    n_fft, hop = _framing(SR)
    return log_envelope(_stft(wav, n_fft, hop).abs().square()[:, 8:-8], n_fft, SR) * (20 / math.log(10))


def test_hybrids_of_a_signal_with_itself_are_the_signal():
    x = _voice()
    for part, hybrid in spectral_hybrids(x, x, SR).items():
        assert hybrid.shape == x.shape
        assert (hybrid - x)[2000:-2000].abs().max() < 1e-5, part


def test_each_hybrid_takes_its_part_from_the_estimate():
    reference = _voice()
    estimate = _tilted(reference)  # same phase and harmonics, another envelope
    hybrids = spectral_hybrids(reference, estimate, SR)
    env_ref, env_est = _envelope_db(reference), _envelope_db(estimate)
    apart = (env_est - env_ref).abs().mean()
    # magnitude and envelope come from the estimate; phase and fine structure keep the reference's envelope
    for part, expected in (("magnitude", env_est), ("envelope", env_est), ("phase", env_ref), ("fine", env_ref)):
        assert (_envelope_db(hybrids[part]) - expected).abs().mean() < apart / 10, part


def test_the_envelope_follows_the_spectrum_not_the_pitch():
    """Two pitches under one envelope: < 1 dB apart (a liftered cepstrum puts them 6-7 dB apart)."""
    assert envelope_error_db(_voice(140.0), _voice(150.0), SR) < 1.0
    assert envelope_error_db(_voice(140.0), _tilted(_voice(140.0)), SR) > 2.0


def test_envelope_error_in_db():
    x = _voice()
    assert envelope_error_db(x, x, SR) < 1e-3
    assert envelope_error_db(x, 0.5 * x, SR) == pytest.approx(20 * math.log10(2), abs=1e-3)
    # cut to the shorter signal; a noisier estimate is further off
    assert envelope_error_db(x, (x + 0.05 * torch.randn_like(x))[:-100], SR) > 1.0


@pytest.mark.skipif(importlib.util.find_spec("visqol") is None, reason="visqol-python not installed (eval extra)")
def test_visqol_of_the_hybrids_points_at_the_part_that_differs():
    from audiolm.evaluation.codec.evaluate import score_pair

    reference = _voice(seconds=2.0)
    # another envelope, same fine structure: the hybrids with the estimate's envelope lose
    notched = score_pair(reference, _notched(reference), SR, "speech", use_judges=False, diagnose=True)
    assert notched["visqol_fine"] > notched["visqol_envelope"] + 0.3
    assert notched["visqol_phase"] > notched["visqol_magnitude"] + 0.3
    # another pitch, same envelope: the hybrid with the estimate's fine structure loses
    detuned = score_pair(reference, _voice(150.0, seconds=2.0), SR, "speech", use_judges=False, diagnose=True)
    assert detuned["visqol_envelope"] > detuned["visqol_fine"] + 0.3
    assert set(detuned) >= {"envelope_db", "visqol_magnitude", "visqol_phase", "visqol_envelope", "visqol_fine"}
