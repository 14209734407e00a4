"""Token shards: writer/reader round trip, memory mapping, resume, and `tokenize_corpus`."""

import json
import math

import numpy as np
import pytest
import torch

from audiolm.core.errors import AudiolmError
from audiolm.training.data.shards import ShardWriter, TokenShards, Utterance, read_token_index
from audiolm.training.data.tokenize_corpus import tokenize_corpus, tokenize_items
from tests.helpers import FakeCodec

SETTINGS = {
    "codec": {"dir": None, "sample_rate": 24000, "frame_rate": 75.0, "codebook_size": 1024, "n_q": 3, "kbps": 3.0},
    "semantic": {"dir": None, "sample_rate": 16000, "frame_rate": 25.0, "vocab_size": 100000},
}


def utterances(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        frames = int(rng.integers(1, 30))
        out.append(
            Utterance(
                f"u{i}",
                rng.integers(0, 100000, size=frames // 3 + 1),
                rng.integers(0, 1024, size=(frames, 3)),
                {"kind": "speech", "speaker": f"s{i % 2}"},
            )
        )
    return out


def test_round_trip_and_mmap(tmp_path):
    utts = utterances(5)
    writer = ShardWriter(tmp_path / "tok", SETTINGS)
    writer.start()
    writer.write_shard("train", 0, utts[:3])
    writer.write_shard("train", 1, utts[3:])
    writer.write_shard("valid", 0, utts[:1])
    writer.finish({"train": 2, "valid": 1})
    shards = TokenShards(tmp_path / "tok", "train")
    assert len(shards) == 5
    for original, (_i, got) in zip(utts, enumerate(shards)):
        assert got.id == original.id and got.meta["speaker"] == original.meta["speaker"]
        assert np.array_equal(got.semantic, original.semantic)
        assert np.array_equal(got.acoustic, original.acoustic)
        assert got.codes.shape == (3, original.acoustic.shape[0])
    assert isinstance(shards[0].acoustic.base, np.memmap) or isinstance(shards[0].acoustic, np.memmap)
    assert shards[0].semantic.dtype == np.int32 and shards[0].acoustic.dtype == np.int16  # vocab > int16
    info = read_token_index(tmp_path / "tok")
    assert info["splits"]["train"]["n_utterances"] == 5
    assert info["splits"]["train"]["n_frames"] == sum(u.acoustic.shape[0] for u in utts)
    assert len(TokenShards(tmp_path / "tok", "valid")) == 1
    # pickling (DataLoader workers) drops the maps; they reopen on access
    import pickle

    clone = pickle.loads(pickle.dumps(shards))
    assert np.array_equal(clone[4].acoustic, utts[4].acoustic)


def test_errors(tmp_path):
    with pytest.raises(AudiolmError, match="not a token directory"):
        TokenShards(tmp_path)
    writer = ShardWriter(tmp_path / "tok", SETTINGS)
    writer.start()
    with pytest.raises(AudiolmError, match="did not finish"):
        TokenShards(tmp_path / "tok")
    other = json.loads(json.dumps(SETTINGS))
    other["codec"]["n_q"] = 8
    with pytest.raises(AudiolmError, match="other settings"):
        ShardWriter(tmp_path / "tok", other).start()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    with pytest.raises(AudiolmError, match="not a token directory"):
        ShardWriter(tmp_path / "busy", SETTINGS).start()
    with pytest.raises(ValueError, match="acoustic codes"):
        writer.write_shard("train", 0, [Utterance("x", np.zeros(2), np.zeros((4, 2)))])


class Item:
    def __init__(self, id, split):
        self.id, self.split = id, split


def test_resume_after_a_kill_redoes_only_unfinished_shards(tmp_path):
    utts = {u.id: u for u in utterances(7)}
    items = {"train": [Item(f"u{i}", "train") for i in range(5)], "valid": [Item("u5", "valid"), Item("u6", "valid")]}
    calls = []

    def encode(item, fail_at=None):
        calls.append(item.id)
        if item.id == fail_at:
            raise KeyboardInterrupt
        return utts[item.id]

    with pytest.raises(KeyboardInterrupt):
        tokenize_items(items, tmp_path / "tok", SETTINGS, lambda it: encode(it, "u4"), shard_size=2, progress=False)
    assert calls == ["u0", "u1", "u2", "u3", "u4"]
    calls.clear()
    tokenize_items(items, tmp_path / "tok", SETTINGS, encode, shard_size=2, progress=False)
    assert calls == ["u4", "u5", "u6"]  # shards 0 and 1 of train were complete
    shards = TokenShards(tmp_path / "tok", "train")
    assert [shards[i].id for i in range(len(shards))] == [f"u{i}" for i in range(5)]
    calls.clear()
    tokenize_items(items, tmp_path / "tok", SETTINGS, encode, shard_size=2, progress=False)
    assert calls == []


class FakeSemantic:
    sample_rate, frame_rate, vocab_size = 16000, 25.0, 10

    def encode(self, wav, sample_rate):
        assert sample_rate == 16000
        n = math.ceil(wav.shape[-1] / 640)
        frames = torch.nn.functional.pad(wav, (0, n * 640 - wav.shape[-1])).view(wav.shape[0], n, 640)
        return (frames.abs().mean(-1) * 1000).long() % 10


def test_tokenize_corpus_aligns_streams(tiny_corpus, tmp_path):
    from audiolm.core.corpus import read_manifest

    index = tokenize_corpus(
        tiny_corpus, tmp_path / "tok", FakeCodec(), FakeSemantic(), kbps=3, shard_size=4, progress=False
    )
    info = json.loads(index.read_text())
    assert info["codec"]["n_q"] == 4 and info["semantic"]["vocab_size"] == 10
    items = read_manifest(tiny_corpus)
    train = TokenShards(tmp_path / "tok", "train")
    assert len(train) == sum(it.split == "train" for it in items)
    for i in range(len(train)):
        utt = train[i]
        seconds = utt.meta["duration"]
        # both streams cover the utterance: 75 Hz frames and 25 Hz tokens, 3 frames per token
        assert abs(utt.acoustic.shape[0] - seconds * 75) <= 1
        assert abs(utt.semantic.shape[0] * 3 - utt.acoustic.shape[0]) <= 3
        assert utt.acoustic.shape[1] == 4 and utt.acoustic.max() < 16
