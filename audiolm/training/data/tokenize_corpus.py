"""`audiolm tokenize`: run both tokenizers over a corpus once and write token shards.

Each manifest item is loaded once, resampled to the codec's rate (24 kHz, mono) and to the
semantic tokenizer's rate (16 kHz), and encoded into semantic tokens s [Ts] and acoustic codes
a [Q, Ta] that cover the same audio (the stages align them by time: see `audiolm.models.lm.alignment`).
Utterances go into shards of `shard_size` in manifest order per split, so a rerun after a kill
finds the same shards, skips the complete ones and redoes only the rest.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from audiolm.core.audio import load_audio, resample
from audiolm.core.corpus import read_manifest
from audiolm.training.data.shards import ShardWriter, Utterance
from tqdm.auto import tqdm


class AcousticTokenizer(Protocol):
    sample_rate: int
    frame_rate: float
    codebook_size: int

    def encode(self, wav: Any, sample_rate: int, kbps: float = 6) -> Any: ...  # [B, Q, T]

    def levels_for_kbps(self, kbps: float) -> int: ...


class SemanticTokenizerLike(Protocol):
    sample_rate: int
    frame_rate: float
    vocab_size: int

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


def tokenize_item(item: Any, codec: AcousticTokenizer, semantic: SemanticTokenizerLike, kbps: float) -> Utterance:
    """One corpus item -> Utterance(semantic [Ts], acoustic [Ta, Q])."""
    wav, sr = load_audio(item.audio_path, mono=True)  # [1, N]
    with torch.inference_mode():
        acoustic_wav = resample(wav, sr, codec.sample_rate) if sr != codec.sample_rate else wav
        codes = codec.encode(acoustic_wav[None], codec.sample_rate, kbps=kbps)  # [1, Q, Ta]
        semantic_wav = resample(wav, sr, semantic.sample_rate) if sr != semantic.sample_rate else wav
        tokens = semantic.encode(semantic_wav, semantic.sample_rate)  # [1, Ts]
    codes = torch.as_tensor(codes).cpu().numpy()
    tokens = torch.as_tensor(tokens).cpu().numpy()
    meta = {"kind": item.kind, "speaker": item.speaker, "duration": float(item.duration)}
    return Utterance(item.id, tokens.reshape(-1), codes[0].T, meta)


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
        lambda item: tokenize_item(item, codec, semantic, kbps),
        shard_size=shard_size,
        overwrite=overwrite,
        progress=progress,
    )


__all__ = ["tokenize_corpus", "tokenize_items", "tokenize_item", "tokenizer_settings"]
