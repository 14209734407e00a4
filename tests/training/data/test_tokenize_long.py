"""`audiolm tokenize` on long files: chunked encoding equals whole-file encoding away from seams.

Tolerance: frame-local encoders (MFCC tokens, a framewise codec) give the whole file's tokens
exactly once the context covers their few frames of receptive field; the shipped codec
(causal convolutions + LSTM) too with 1 s of context. The shipped SSL encoder attends over its
whole input, so no chunking reproduces whole-file semantic tokens exactly: >= 80% are equal on
the synthetic tones here (8 s chunks, 2 s context; 85% measured); on speech at the defaults
(30 s chunks, 5 s context) 94% (BENCHMARKS.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolm.core.corpus import CorpusItem
from audiolm.training.data.tokenize_corpus import encode_chunked, tokenize_item


def _framewise(wav: np.ndarray, hop: int = 320) -> np.ndarray:
    """A codec-like encoder with one-frame receptive field: [2, ceil(N / hop)] codes."""
    n = math.ceil(len(wav) / hop)
    frames = np.pad(wav, (0, n * hop - len(wav))).reshape(n, hop)
    energy = (np.abs(frames).mean(-1) * 1000).astype(np.int64)
    return np.stack([energy % 16, (energy // 16) % 16])


def _speechlike(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.3 * t)
    x = sum(np.sin(2 * np.pi * np.cumsum(f0 * h) / rate) / h for h in range(1, 8))
    return (0.2 * x * (0.5 + 0.5 * np.sin(2 * np.pi * 3.7 * t)) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("n", [320 * 100, 320 * 100 + 17, 5000])
@pytest.mark.parametrize("context", [0, 3])
def test_framewise_encoder_chunks_exactly(n: int, context: int) -> None:
    wav = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    chunked = encode_chunked(_framewise, lambda s, c: wav[s : s + c], n, 320, chunk_frames=7, context_frames=context)
    np.testing.assert_array_equal(chunked, _framewise(wav))


@pytest.fixture(scope="module")
def mfcc_tokenizer():
    from audiolm.models.semantic.tokenizer import SemanticTokenizer

    tok = SemanticTokenizer.mfcc(frame_rate=50)
    feats = tok.features(torch.from_numpy(_speechlike(20, 16000, 1)), 16000)
    return tok.fit_kmeans_on(feats.reshape(-1, feats.shape[-1]), k=16, steps=20, progress=False)


def test_mfcc_tokens_equal_away_from_seams(mfcc_tokenizer) -> None:
    wav = _speechlike(30, 16000)

    def encode(x: np.ndarray) -> np.ndarray:
        return mfcc_tokenizer.encode(torch.from_numpy(x), 16000)[0].numpy()

    whole = encode(wav)
    read = lambda s, c: wav[s : s + c]  # noqa: E731
    bare = encode_chunked(encode, read, len(wav), 320, chunk_frames=250, context_frames=0)  # 5 s chunks
    assert bare.shape == whole.shape
    seams = np.arange(250, len(whole), 250)
    distance = np.abs(np.arange(len(whole))[:, None] - seams[None]).min(axis=1)
    np.testing.assert_array_equal(bare[distance >= 3], whole[distance >= 3])  # only frames at a seam differ
    with_context = encode_chunked(encode, read, len(wav), 320, chunk_frames=250, context_frames=50)
    np.testing.assert_array_equal(with_context, whole)


def _shipped():
    from audiolm.models.codec.codec import Codec
    from audiolm.models.semantic.tokenizer import SemanticTokenizer

    try:
        return Codec.from_pretrained(), SemanticTokenizer.from_pretrained()
    except Exception as e:  # noqa: BLE001 - no shipped weights: nothing to compare
        pytest.skip(f"shipped tokenizers not loadable: {e}")


def test_shipped_tokenizers_chunked(tiny_corpus: Path) -> None:
    from audiolm.core.audio import load_audio
    from audiolm.core.corpus import read_manifest

    codec, semantic = _shipped()
    clips = [load_audio(i.audio_path, sample_rate=24000, mono=True)[0][0].numpy() for i in read_manifest(tiny_corpus)]
    wav = np.concatenate(clips + clips)  # ~40 s of speech and music
    assert len(wav) > 30 * 24000

    def codes(x: np.ndarray) -> np.ndarray:
        return codec.encode(torch.from_numpy(x)[None, None], 24000, kbps=6)[0].numpy()

    whole = codes(wav)
    chunked = encode_chunked(codes, lambda s, c: wav[s : s + c], len(wav), 320, chunk_frames=600, context_frames=75)
    assert chunked.shape == whole.shape and (chunked == whole).mean() >= 0.999
    from audiolm.core.audio import resample

    wav16 = resample(wav, 24000, 16000)
    hop = 16000 // semantic.frame_rate

    def tokens(x: np.ndarray) -> np.ndarray:
        return semantic.encode(torch.from_numpy(x), 16000)[0].numpy()

    whole = tokens(wav16)
    chunked = encode_chunked(
        tokens,
        lambda s, c: wav16[s : s + c],
        len(wav16),
        hop,
        chunk_frames=8 * semantic.frame_rate,
        context_frames=2 * semantic.frame_rate,
    )
    assert chunked.shape == whole.shape and (chunked == whole).mean() >= 0.8


class _FramewiseCodec:
    sample_rate, frame_rate, codebook_size = 24000, 75.0, 16

    def encode(self, wav, sample_rate, kbps=6):
        return torch.from_numpy(_framewise(wav[0, 0].numpy()))[None]


def test_tokenize_item_never_reads_a_long_file_whole(tmp_path: Path, mfcc_tokenizer, monkeypatch) -> None:
    import audiolm.core.audio

    wav = _speechlike(50, 22050, 3)
    sf.write(tmp_path / "long.wav", wav, 22050)
    item = CorpusItem("long", "long.wav", "speech", "train", 50.0, 22050, root=tmp_path)
    whole = tokenize_item(item, _FramewiseCodec(), mfcc_tokenizer, 6, chunk_seconds=1000)  # one window
    read = sf.SoundFile.read

    def bounded_read(self, frames=-1, *args, **kwargs):
        assert 0 <= frames <= 22050 * 25, "read more than a window"
        return read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", bounded_read)
    monkeypatch.setattr(audiolm.core.audio, "load_audio", lambda *a, **k: pytest.fail("loaded a file whole"))
    chunked = tokenize_item(item, _FramewiseCodec(), mfcc_tokenizer, 6, chunk_seconds=10, context_seconds=1)
    np.testing.assert_array_equal(chunked.acoustic, whole.acoustic)
    np.testing.assert_array_equal(chunked.semantic, whole.semantic)
    assert chunked.acoustic.shape == (math.ceil(50 * 24000 / 320), 2)
