"""Objective audio-quality metrics, one function each, on 1-D float tensors or arrays.

    mel_distance   multi-scale log-mel L1 distance (lower is better), any sample rate
    si_sdr         scale-invariant signal-to-distortion ratio in dB (higher is better)
    stoi           short-time objective intelligibility, 0..1 (pystoi; computed at 16 kHz)
    pesq_wb        wideband PESQ MOS-LQO, 1..4.64 (pesq; speech at 16 kHz)
    visqol         ViSQOL MOS-LQO, 1..5 (visqol-python): mode "speech" at 16 kHz (lattice
                   model when ai-edge-litert is installed), mode "audio" at 48 kHz

Reference and estimate are cut to the shorter length; inputs are resampled to the rate each
metric requires with `audiolm.core.audio.resample`. The continuation eval reuses `mel_distance`.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from audiolm.core.audio import resample
from audiolm.models.codec.mel import mel_distance

__all__ = ["mel_distance", "pesq_wb", "si_sdr", "stoi", "visqol"]


def _as_numpy(wav) -> np.ndarray:
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().float().numpy()
    wav = np.asarray(wav, dtype=np.float64)
    if wav.ndim != 1:
        wav = wav.reshape(-1) if wav.shape[0] == 1 else wav.mean(axis=0)
    return wav


def _pair(reference, estimate, from_sr: int, to_sr: int) -> tuple[np.ndarray, np.ndarray]:
    ref, est = _as_numpy(reference), _as_numpy(estimate)
    n = min(len(ref), len(est))
    ref, est = ref[:n], est[:n]
    if from_sr != to_sr:
        ref, est = resample(ref, from_sr, to_sr), resample(est, from_sr, to_sr)
    return ref, est


def si_sdr(reference, estimate) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), after removing the means."""
    ref, est = _pair(reference, estimate, 1, 1)
    ref, est = ref - ref.mean(), est - est.mean()
    scale = np.dot(est, ref) / (np.dot(ref, ref) + 1e-12)
    target = scale * ref
    noise = est - target
    return float(10 * np.log10((np.dot(target, target) + 1e-12) / (np.dot(noise, noise) + 1e-12)))


def stoi(reference, estimate, sample_rate: int) -> float:
    from pystoi import stoi as _stoi  # optional dependency (the eval extra)

    ref, est = _pair(reference, estimate, sample_rate, 16000)
    return float(_stoi(ref, est, 16000, extended=False))


def pesq_wb(reference, estimate, sample_rate: int) -> float:
    """Wideband PESQ at 16 kHz; NaN when PESQ finds no speech in the reference."""
    from pesq import pesq  # optional dependency (the eval extra)

    ref, est = _pair(reference, estimate, sample_rate, 16000)
    try:
        return float(pesq(16000, ref, est, "wb"))
    except Exception:  # noqa: BLE001 - pesq raises its own errors for silent / too-short input
        return float("nan")


@functools.lru_cache(maxsize=2)
def _visqol_api(mode: str):
    from visqol import VisqolApi  # optional dependency (the eval extra)

    api = VisqolApi()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api.create(mode=mode)
    return api


def visqol(reference, estimate, sample_rate: int, mode: str) -> float:
    """ViSQOL MOS-LQO: mode "speech" (16 kHz) or "audio" (48 kHz)."""
    if mode not in ("speech", "audio"):
        raise ValueError(f"visqol mode must be 'speech' or 'audio', got {mode!r}")
    rate = 16000 if mode == "speech" else 48000
    ref, est = _pair(reference, estimate, sample_rate, rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = _visqol_api(mode).measure_from_arrays(ref, est, sample_rate=rate)
    return float(result.moslqo)
