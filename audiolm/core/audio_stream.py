"""Audio read in pieces, never whole: file lengths from headers, one segment by seeking, or a
whole file as a stream of blocks — mono, at a requested sample rate (soxr, as `load_audio`).

Training data (crops.py, the WaveNet dataset, k-means features) and `corpus import` read
through these, so memory follows the size of a crop or a block, not of a file or a corpus.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import soxr

from audiolm.core.audio import resample
from audiolm.core.errors import AudioError

_CONTEXT_S = 0.02  # source context either side of a resampled segment


def file_lengths(files: list[str], sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(lengths at `sample_rate` [files] int64, the files' own rates [files]) from the headers;
    a length follows soxr's rule, as `load_audio(path, sample_rate)` gives it."""
    frames, rates = np.zeros(len(files), np.int64), np.zeros(len(files), np.int64)
    for i, path in enumerate(files):
        try:
            info = sf.info(str(path))
        except Exception as e:  # noqa: BLE001 - any libsndfile failure is a bad file
            raise AudioError(f"{path}: cannot read audio: {' '.join(str(e).split())}") from None
        frames[i], rates[i] = info.frames, info.samplerate
    lengths = np.where(
        rates == sample_rate, frames, np.round(frames * sample_rate / np.maximum(rates, 1)).astype(np.int64)
    )
    return lengths, rates


def read_segment(path: str, rate: int, sample_rate: int, start: int, count: int) -> np.ndarray:
    """Mono float32 samples [start, start + count) at `sample_rate` of a file whose own rate is
    `rate` (fewer at its end). A seek when the rates match; else a window with ~20 ms of context
    either side, starting on a multiple of the resampling period so that output sample j of
    the window is output sample offset + j of the whole file, resampled with soxr."""
    with sf.SoundFile(str(path)) as f:
        if rate == sample_rate:
            f.seek(start)
            data = f.read(count, dtype="float32", always_2d=True)
            return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        period = rate // math.gcd(rate, sample_rate)
        first = max(0, int(start * rate / sample_rate) - int(_CONTEXT_S * rate))
        first -= first % period
        last = min(f.frames, int(math.ceil((start + count) * rate / sample_rate)) + int(_CONTEXT_S * rate))
        f.seek(first)
        data = f.read(last - first, dtype="float32", always_2d=True)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    offset = first * sample_rate // rate
    out = resample(np.ascontiguousarray(mono), rate, sample_rate)
    return out[start - offset : start - offset + count]


def iter_blocks(path: str, sample_rate: int, block_seconds: float = 20.0) -> Iterator[np.ndarray]:
    """The whole file as mono float32 blocks at `sample_rate` (a streaming soxr resampler, so the
    blocks join into what `load_audio(path, sample_rate, mono=True)` gives, up to float rounding).
    Raises what libsndfile raises on a bad file."""
    with sf.SoundFile(str(path)) as f:
        if f.frames == 0:
            return
        rate = int(f.samplerate)
        stream = (
            None if rate == sample_rate else soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="VHQ")
        )
        block = max(1, int(block_seconds * rate))
        while True:
            data = f.read(block, dtype="float32", always_2d=True)
            last = len(data) < block
            mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            if stream is not None:
                mono = stream.resample_chunk(mono, last=last)
            if len(mono):
                yield np.ascontiguousarray(mono, dtype=np.float32)
            if last:
                return
