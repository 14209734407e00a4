"""A 16-bit PCM WAV written chunk by chunk, playable while it is written.

    with WavStreamWriter(sys.stdout.buffer, 24000) as out:   # a pipe: `| aplay`, `| ffplay -`
        for chunk in chunks: out.write(chunk)                 # chunk: [channels, n] float in [-1, 1]

On a pipe the header cannot be rewritten, so its RIFF and data sizes hold 0xFFFFFFFF ("unknown
length", as ffmpeg writes when streaming; aplay, ffplay, sox and browsers play to the end of the
stream). On a seekable file the header is rewritten with the true sizes after every chunk, so
the file is a complete, valid WAV whenever a chunk has been written.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

import numpy as np
import torch

UNKNOWN = 0xFFFFFFFF
HEADER_BYTES = 44


def wav_header(sample_rate: int, channels: int, data_bytes: int | None) -> bytes:
    """The 44-byte header of a PCM_16 WAV; data_bytes None = unknown length (streaming)."""
    block = channels * 2
    data = UNKNOWN if data_bytes is None else data_bytes
    riff = UNKNOWN if data_bytes is None else 36 + data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data)
    )


def pcm16(chunk: torch.Tensor | np.ndarray) -> bytes:
    """[channels, n] (or [n]) float samples -> interleaved little-endian int16 bytes (clipped)."""
    array = chunk.detach().cpu().float().numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk, np.float32)
    if array.ndim == 1:
        array = array[None]
    array = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0)
    ints = np.round(np.clip(array, -1.0, 1.0) * 32767.0).astype("<i2")
    return ints.T.tobytes()  # frame-major: ch0 ch1 ch0 ch1 ...


class WavStreamWriter:
    """Write PCM_16 WAV audio chunk by chunk to a file object (see the module docstring)."""

    def __init__(self, file: BinaryIO, sample_rate: int, channels: int = 1) -> None:
        self.file = file
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.data_bytes = 0
        try:
            self.seekable = bool(file.seekable())
        except (AttributeError, ValueError, io.UnsupportedOperation):
            self.seekable = False
        self.file.write(wav_header(self.sample_rate, self.channels, 0 if self.seekable else None))
        self.file.flush()

    def write(self, chunk: torch.Tensor | np.ndarray) -> None:
        """Append chunk [channels, n]; on a file, rewrite the header so the file is valid now."""
        data = pcm16(chunk)
        if len(data) % (2 * self.channels):
            raise ValueError(f"chunk does not hold {self.channels} channel(s)")
        self.file.write(data)
        self.data_bytes += len(data)
        if self.seekable:
            end = self.file.tell()
            self.file.seek(0)
            self.file.write(wav_header(self.sample_rate, self.channels, self.data_bytes))
            self.file.seek(end)
        self.file.flush()

    def close(self) -> None:
        self.file.flush()

    def __enter__(self) -> WavStreamWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
