"""Per-kind token data: `TokenShards(kind=...)`, `audiolm train semantic --kind`, `audiolm eval stage`.

Speech utterances count up (0 1 2 3 4 5 0 ...), music utterances count down: a model trained on
speech only predicts speech well and music badly, which only holds if the kind filter works.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiolm.cli.app import main
from audiolm.core.errors import AudiolmError
from audiolm.training.data.shards import ShardWriter, TokenShards, Utterance

V = 6


def pattern(n: int, kind: str, phase: int) -> np.ndarray:
    step = 1 if kind == "speech" else -1
    return ((phase + step * np.arange(n)) % V).astype(np.int64)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    out = tmp_path_factory.mktemp("kind_tokens")
    writer = ShardWriter(
        out,
        {
            "codec": {
                "dir": None,
                "sample_rate": 24000,
                "frame_rate": 75.0,
                "codebook_size": 16,
                "n_q": 2,
                "kbps": 1.5,
            },
            "semantic": {"dir": None, "sample_rate": 16000, "frame_rate": 25.0, "vocab_size": V},
        },
    )
    writer.start()
    for split, n in (("train", 8), ("valid", 4)):
        utts = []
        for i in range(n):
            kind = ("speech", "music")[i % 2]
            s = pattern(24 + i, kind, i)
            utts.append(Utterance(f"{split}{i}", s, np.zeros((3 * len(s), 2), np.int64), {"kind": kind}))
        writer.write_shard(split, 0, utts)
    writer.finish({"train": 1, "valid": 1})
    return out


def test_token_shards_filter_by_kind(tokens):
    both, speech, music = (TokenShards(tokens, "train", k) for k in (None, "speech", "music"))
    assert len(both) == 8 and len(speech) == len(music) == 4
    assert {u.meta["kind"] for u in speech} == {"speech"} and {u.meta["kind"] for u in music} == {"music"}
    assert [u.id for u in speech] == ["train0", "train2", "train4", "train6"]
    assert speech.semantic_lengths() == [24, 26, 28, 30]
    with pytest.raises(AudiolmError, match=r"no train utterance of kind 'speach' \(kinds here: music, speech\)"):
        TokenShards(tokens, "train", "speach")


def test_train_on_one_kind_and_score_each_kind(tokens, tmp_path, capsys):
    config = tmp_path / "stage.json"
    config.write_text(json.dumps({"model": {"dim": 32, "n_layers": 1, "n_heads": 2, "max_seq_len": 16}}))
    run = tmp_path / "speech_run"
    code = main(
        [
            "train",
            "semantic",
            "--tokens",
            str(tokens),
            "--kind",
            "speech",
            "--out",
            str(run),
            "--config",
            str(config),
            "--steps",
            "60",
            "--batch-size",
            "8",
            "--lr",
            "3e-3",
            "--warmup-steps",
            "5",
            "--valid-every",
            "60",
            "--save-every",
            "60",
            "--device",
            "cpu",
            "--seed",
            "0",
        ]
    )
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    code = main(
        ["eval", "stage", str(run), "--tokens", str(tokens), "--kinds", "speech,music,all", "--repeats", "2", "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    results = {r["kind"]: r for r in json.loads(out)["results"]}
    speech, music, both = results["speech"], results["music"], results[None]
    assert speech["utterances"] == music["utterances"] == 2 and both["utterances"] == 4
    assert speech["windows"] == 2 * 2 * 2  # 2 windows per utterance (24-27 tokens, context 16), drawn twice
    # learned the rising pattern only: speech near 0 nats, music worse than a uniform guess
    assert speech["cross_entropy"] < 0.5 < np.log(V) < music["cross_entropy"]
    assert speech["cross_entropy"] < both["cross_entropy"] < music["cross_entropy"]
    # the table form
    code = main(["eval", "stage", str(run), "--tokens", str(tokens)])
    out, err = capsys.readouterr()
    assert code == 0 and "| checkpoint | speech | music |" in out and str(run) in out


def test_eval_stage_errors(tokens, tmp_path, capsys):
    from audiolm.models.lm.config import StageConfig
    from audiolm.training.lm.task import StageTask

    with pytest.raises(AudiolmError, match="no train utterance of kind 'noise'"):
        StageTask(StageConfig(stage="semantic"), tokens, kind="noise")
    cases = [
        (["eval", "stage", str(tmp_path / "none"), "--tokens", str(tokens)], "checkpoint directory not found"),
        (["eval", "stage", str(tmp_path), "--tokens", str(tmp_path / "nope")], "no such folder"),
        (["eval", "stage", str(tmp_path), "--tokens", str(tokens), "--repeats", "0"], "--repeats must be at least 1"),
    ]
    for argv, message in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
