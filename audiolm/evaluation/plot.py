"""Spectrogram of prompt + continuation with the seam marked (`audiolm continue --plot`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from audiolm.core.errors import AudiolmError


def log_spectrogram(audio: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """audio [N] -> dB magnitudes [freq, frames]."""
    audio = audio.float().reshape(-1).cpu()
    if audio.shape[-1] < n_fft:  # the STFT's reflect padding needs at least one window
        audio = torch.nn.functional.pad(audio, (0, n_fft - audio.shape[-1]))
    window = torch.hann_window(n_fft)
    spec = torch.stft(audio, n_fft, hop, window=window, return_complex=True).abs()
    return (20 * torch.log10(spec.clamp_min(1e-5))).numpy()


def plot_continuation(path: str | Path, audio: torch.Tensor, sample_rate: int, seam_sample: int) -> Path:
    """Write a PNG: log spectrogram over time, a line where the continuation starts."""
    try:
        import matplotlib  # optional dependency (the eval extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # optional dependency (the eval extra)
    except ImportError:
        raise AudiolmError("--plot needs matplotlib: pip install 'audiolm[eval]'") from None
    db = log_spectrogram(audio, sample_rate)
    seconds = audio.shape[-1] / sample_rate
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    ax.imshow(
        db, origin="lower", aspect="auto", extent=(0, seconds, 0, sample_rate / 2000), vmin=db.max() - 80, cmap="magma"
    )
    if seam_sample > 0:
        ax.axvline(seam_sample / sample_rate, color="cyan", linewidth=2, linestyle="--", label="continuation starts")
        ax.legend(loc="upper right")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title("prompt + continuation")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
