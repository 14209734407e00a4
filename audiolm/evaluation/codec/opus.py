"""Opus at a fixed bit rate, as the reference codec in `audiolm eval codec`.

Round trip through the command-line tools from opus-tools: `opusenc --bitrate K --hard-cbr`
(constant bit rate, so K kbps is what the stream really costs) and `opusdec --rate R`.
opusdec removes the encoder's pre-skip, so the output lines up with the input sample for
sample; it is cut or zero-padded to the input length.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from audiolm.core.audio import load_audio, save_audio
from audiolm.core.errors import AudiolmError


def opus_available() -> bool:
    return shutil.which("opusenc") is not None and shutil.which("opusdec") is not None


def opus_round_trip(wav: torch.Tensor, sample_rate: int, kbps: float) -> torch.Tensor:
    """Encode mono `wav` [N] with Opus at `kbps` (hard CBR) and decode it at `sample_rate` -> [N]."""
    if not opus_available():
        raise AudiolmError("opusenc/opusdec not found; install opus-tools to compare against Opus")
    with tempfile.TemporaryDirectory(prefix="audiolm-opus-") as tmp:
        src, packed, out = Path(tmp) / "in.wav", Path(tmp) / "x.opus", Path(tmp) / "out.wav"
        save_audio(src, wav.reshape(1, -1).float(), sample_rate, subtype="FLOAT")
        for command in (
            ["opusenc", "--quiet", "--bitrate", f"{kbps:g}", "--hard-cbr", str(src), str(packed)],
            ["opusdec", "--quiet", "--rate", str(sample_rate), str(packed), str(out)],
        ):
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if result.returncode != 0:
                message = " ".join((result.stderr or result.stdout).split())[:200]
                raise AudiolmError(f"{command[0]} failed ({message})")
        decoded, rate = load_audio(out, sample_rate=sample_rate, mono=True)
    decoded = decoded[0]
    n = wav.numel()
    if decoded.numel() >= n:
        return decoded[:n]
    return torch.nn.functional.pad(decoded, (0, n - decoded.numel()))
