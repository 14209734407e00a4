"""`audiolm tokenize`: run both tokenizers over a corpus once and write token shards.

Each manifest item is read at the codec's rate (24 kHz, mono) and at the semantic tokenizer's
rate (16 kHz) and encoded into semantic tokens s [Ts] and acoustic codes a [Q, Ta] that cover the
same audio (the stages align them by time: see `audiolm.models.lm.alignment`). Utterances go into
shards of `shard_size` in manifest order per split, so a rerun after a kill finds the same
shards, skips the complete ones and redoes only the rest.

Long files are encoded in chunks (`encode_chunked`), so memory follows the chunk, not the file:
chunk k keeps the frames of [k C, (k + 1) C) seconds but is encoded from a window with
`context_seconds` more audio on either side, every window starting on a frame boundary, so a
kept frame sees at least that much context on both sides (or the file's own edge). A file no
longer than one chunk is encoded whole, exactly as before. Tokens then equal whole-file tokens
wherever the encoder's receptive field fits inside the context: always for convolutional and
frame-local encoders (MFCC), and for encoders with global context (attention, LSTM) at the
fraction of frames measured in tests/data/test_tokenize_long.py and BENCHMARKS.md.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from audiolm.core.audio_stream import file_lengths, read_segment
from audiolm.core.corpus import read_manifest
from audiolm.training.data.shards import ShardWriter, Utterance

CHUNK_SECONDS = 30.0
CONTEXT_SECONDS = 5.0


class AcousticTokenizer(Protocol):
    @property
    def sample_rate(self) -> int: ...
    @property
    def frame_rate(self) -> float: ...
    @property
    def codebook_size(self) -> int: ...

    def encode(self, wav: Any, sample_rate: int, kbps: float = 6) -> Any: ...  # [B, Q, T]

    def levels_for_kbps(self, kbps: float) -> int: ...


class SemanticTokenizerLike(Protocol):
    @property
    def sample_rate(self) -> int: ...
    @property
    def frame_rate(self) -> float: ...
    @property
    def vocab_size(self) -> int: ...

    def encode(self, wav: Any, sample_rate: int) -> Any: ...  # [B, T]


def tokenizer_settings(
    codec: AcousticTokenizer,
    semantic: SemanticTokenizerLike,
    kbps: float,
    codec_dir: str | None = None,
    semantic_dir: str | None = None,
) -> dict[str, Any]:
    """The tokenize.json content: what the tokens mean (stages read vocabularies from it)."""
    return {
        "codec": {
            "dir": codec_dir,
            "sample_rate": int(codec.sample_rate),
            "frame_rate": float(codec.frame_rate),
            "codebook_size": int(codec.codebook_size),
            "n_q": int(codec.levels_for_kbps(kbps)),
            "kbps": float(kbps),
        },
        "semantic": {
            "dir": semantic_dir,
            "sample_rate": int(semantic.sample_rate),
            "frame_rate": float(semantic.frame_rate),
            "vocab_size": int(semantic.vocab_size),
        },
    }


def encode_chunked(
    encode: Callable[[np.ndarray], np.ndarray],
    read: Callable[[int, int], np.ndarray],
    n_samples: int,
    hop: int,
    chunk_frames: int,
    context_frames: int,
) -> np.ndarray:
    """Encode `n_samples` of audio in chunks: `encode(wav [N]) -> [..., T]` frames of `hop`
    samples from the window's start, `read(start, count) -> wav` any part of the audio.

    Chunk [s0, s1) (s0, s1 multiples of the hop, `chunk_frames` frames) is encoded from the
    window [s0 - context, s1 + context] (clipped to the audio) and keeps the window's frames that
    start inside [s0, s1); the last chunk keeps every frame to the end, so the frame count is
    the encoder's own for the whole file. Returns [..., T] (chunks joined on the last axis)."""
    chunk, context = chunk_frames * hop, context_frames * hop
    parts = []
    s0 = 0
    while True:
        s1 = min(n_samples, s0 + chunk)
        w0, w1 = max(0, s0 - context), min(n_samples, s1 + context)
        frames = np.asarray(encode(read(w0, w1 - w0)))
        first = (s0 - w0) // hop
        parts.append(frames[..., first : (s1 - w0) // hop] if s1 < n_samples else frames[..., first:])
        if s1 >= n_samples:
            return np.concatenate(parts, axis=-1)
        s0 = s1


def tokenize_item(
    item: Any,
    codec: AcousticTokenizer,
    semantic: SemanticTokenizerLike,
    kbps: float,
    chunk_seconds: float = CHUNK_SECONDS,
    context_seconds: float = CONTEXT_SECONDS,
) -> Utterance:
    """One corpus item -> Utterance(semantic [Ts], acoustic [Ta, Q]), long files in chunks."""
    path = str(item.audio_path)

    def stream(tokenizer: Any, run: Callable[[torch.Tensor], Any]) -> np.ndarray:
        rate = int(tokenizer.sample_rate)
        hop = int(round(rate / float(tokenizer.frame_rate)))
        (n,), (file_rate,) = file_lengths([path], rate)
        frames = max(1, int(chunk_seconds * tokenizer.frame_rate))
        context = int(np.ceil(context_seconds * tokenizer.frame_rate))

        def encode(wav: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return torch.as_tensor(run(torch.from_numpy(np.ascontiguousarray(wav))[None])).cpu().numpy()[0]

        return encode_chunked(
            encode, lambda s, c: read_segment(path, int(file_rate), rate, s, c), int(n), hop, frames, context
        )

    codes = stream(codec, lambda wav: codec.encode(wav[None], codec.sample_rate, kbps=kbps))  # [Q, Ta]
    tokens = stream(semantic, lambda wav: semantic.encode(wav, semantic.sample_rate))  # [Ts]
    meta = {"kind": item.kind, "speaker": item.speaker, "duration": float(item.duration)}
    return Utterance(item.id, tokens.reshape(-1), codes.T, meta)


def tokenize_items(
    items_by_split: dict[str, list[Any]],
    out_dir: str | Path,
    settings: dict[str, Any],
    encode: Any,
    *,
    shard_size: int = 64,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write shards for every split; `encode(item) -> Utterance`. Resumes an interrupted run.

    Returns the index path. Skips shards that are already complete.
    """
    out_dir = Path(out_dir)
    if overwrite and out_dir.exists():
        shutil.rmtree(out_dir)
    writer = ShardWriter(out_dir, settings)
    writer.start()
    total = sum(len(v) for v in items_by_split.values())
    bar = None
    if progress:
        bar = tqdm(total=total, desc="tokenize", unit="utt", dynamic_ncols=True)
    counts = {}
    for split, items in items_by_split.items():
        chunks = [items[i : i + shard_size] for i in range(0, len(items), shard_size)]
        counts[split] = len(chunks)
        for index, chunk in enumerate(chunks):
            if not writer.shard_done(split, index, [it.id for it in chunk]):
                writer.write_shard(split, index, [encode(it) for it in _ticking(chunk, bar)])
            elif bar is not None:
                bar.update(len(chunk))
        # a shorter rerun must not leave stale shards from a longer one behind
        for stale in (out_dir / split).glob("shard-*.json") if (out_dir / split).is_dir() else []:
            if int(stale.stem.split("-")[1]) >= len(chunks):
                for suffix in (".json", ".semantic.npy", ".acoustic.npy"):
                    stale.with_name(stale.stem + suffix).unlink(missing_ok=True)
    if bar is not None:
        bar.close()
    return writer.finish(counts)


def _ticking(items: Iterable[Any], bar: Any) -> Iterable[Any]:
    for it in items:
        yield it
        if bar is not None:
            bar.update(1)


def tokenize_corpus(
    corpus_dir: str | Path,
    out_dir: str | Path,
    codec: AcousticTokenizer,
    semantic: SemanticTokenizerLike,
    *,
    kbps: float = 6.0,
    codec_dir: str | None = None,
    semantic_dir: str | None = None,
    shard_size: int = 64,
    overwrite: bool = False,
    progress: bool = True,
    chunk_seconds: float = CHUNK_SECONDS,
    context_seconds: float = CONTEXT_SECONDS,
) -> Path:
    """Tokenize every item of a corpus (audiolm.core.corpus format) into OUT; returns index.json."""
    items = read_manifest(corpus_dir)
    by_split: dict[str, list[Any]] = {}
    for item in items:
        by_split.setdefault(item.split, []).append(item)
    settings = tokenizer_settings(codec, semantic, kbps, codec_dir, semantic_dir)
    return tokenize_items(
        by_split,
        out_dir,
        settings,
        lambda item: tokenize_item(item, codec, semantic, kbps, chunk_seconds, context_seconds),
        shard_size=shard_size,
        overwrite=overwrite,
        progress=progress,
    )


__all__ = ["encode_chunked", "tokenize_corpus", "tokenize_items", "tokenize_item", "tokenizer_settings"]
