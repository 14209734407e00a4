"""`audiolm eval continuation` on a tiny random pipeline and the tiny synthetic corpus."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from audiolm.cli.app import main
from audiolm.evaluation.continuation import (
    embed,
    format_table,
    load_clip,
    load_clips,
    resynthesize,
    retrieval_accuracy,
    select_items,
    shard_utterances,
    stage_cross_entropy,
    tokenize_clip,
)

EVAL = ["--n", "2", "--prompt-seconds", "0.5", "--seconds", "0.3"]


@pytest.fixture(scope="module")
def tokens(tiny_corpus, tiny_lm, tmp_path_factory):
    """The tiny corpus tokenized with the tiny pipeline's own codec and tokenizer."""
    from audiolm.training.data.tokenize_corpus import tokenize_corpus

    out = tmp_path_factory.mktemp("tok") / "tokens"
    tokenize_corpus(tiny_corpus, out, tiny_lm.codec, tiny_lm.semantic_tokenizer, kbps=3.0, progress=False)
    return out


def test_retrieval_accuracy_is_reexported():
    """bench compare imports the metric and the embedding from here (tests of the metric:
    test_continuation_consistency.py)."""
    from audiolm.evaluation import consistency

    assert retrieval_accuracy is consistency.retrieval_accuracy and embed is consistency.embed


def test_clips_come_from_distinct_voices(tiny_corpus):
    items, clips = load_clips(tiny_corpus, "train", "speech", 8, 24000, 0.5, 0.3)
    speakers = [it.speaker for it in items]
    assert len(speakers) == len(set(speakers)) >= 2
    all_items, _ = load_clips(tiny_corpus, "train", "speech", 8, 24000, 0.5, 0.3, distinct=False)
    assert len(all_items) > len(items)  # the tiny corpus has voices with several clips


def test_cross_entropy_matches_the_training_loss(tokens, tiny_lm):
    """Windows are the training windows (StageDataset with seed = index), the loss the task's."""
    from audiolm.models.lm.stage import make_layout
    from audiolm.training.data.shards import TokenShards
    from audiolm.training.lm.task import StageDataset, StageTask
    from audiolm.training.task import ItemKey

    ce = stage_cross_entropy(tiny_lm, shard_utterances(tokens, "train", tiny_lm))
    shards = TokenShards(tokens, "train")
    for stage, loaded in tiny_lm.stages.items():
        model, config = loaded.model, loaded.config
        data = StageDataset(shards, make_layout(config))
        batch = [data[ItemKey(i, i)] for i in range(len(data))]
        batch = {k: torch.stack([b[k] for b in batch]) for k in ("inputs", "targets")}
        task = StageTask.__new__(StageTask)  # only training_step is used
        with torch.no_grad():
            out = task.training_step({"model": model}, batch, 0)
        assert ce[stage] == pytest.approx(float(out.losses["model"]), rel=1e-4), stage
        # a random model is about as unsure as a uniform guess over the stage's range
        assert 0.5 * np.log(config.semantic_vocab if stage == "semantic" else 1024) < ce[stage] < 12


def test_resynthesis_shapes(tiny_corpus, tiny_lm):
    item = select_items(tiny_corpus, "valid", "speech", 1.0)[0]
    clip = load_clip(item, tiny_lm.sample_rate, max_seconds=0.5)
    out, roundtrip = resynthesize(tiny_lm, clip.audio, seed=0)
    frames = clip.audio.shape[-1] // 320
    assert out.shape == roundtrip.shape == (1, frames * 320)
    again, _ = resynthesize(tiny_lm, clip.audio, seed=0)
    assert torch.equal(out, again)
    utt = tokenize_clip(tiny_lm, clip)
    assert utt.acoustic.shape == (frames, 4) and utt.kind == "speech"


def test_eval_cli_json_and_table(tiny_corpus, tiny_pipeline, tokens, tmp_path, capsys):
    table = tmp_path / "table.md"
    args = ["eval", "continuation", "--data", str(tiny_corpus), "--pipeline", str(tiny_pipeline), *EVAL]
    code = main([*args, "--tokens", str(tokens), "--json", "--out", str(table)])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)  # exactly one JSON object on stdout
    assert re.fullmatch(r"\d+-core CPU \(.+, torch .+, \d+ threads\)|.+ \(torch .+\)", report["machine"])
    speech, music = report["kinds"]["speech"], report["kinds"]["music"]
    assert speech["n"] == 2 and music["n"] == 1  # the tiny corpus holds 2 speech, 1 music valid clip
    assert speech["consistency"]["real_rank"] is not None and music["consistency"]["real_rank"] is None
    assert report["embedding"] == "logmel-stats"
    for kind in (speech, music):
        assert set(kind["cross_entropy"]) == {"semantic", "coarse", "fine"}
        assert all(v > 0 for v in kind["cross_entropy"].values())
        assert kind["cross_entropy_windows_from"] == "tokens"
        c = kind["consistency"]
        assert set(c) == {
            "chance",
            "generated_by_seed",
            *(f"{w}{r}" for w in ("generated", "real", "real_codec") for r in ("", "_rank")),
        }
        assert [d["seed"] for d in c["generated_by_seed"]] == [0] and c["generated_by_seed"][0]["top1"] == c[
            "generated"
        ]
        assert 0 <= c["generated"] <= 1 and c["chance"] == 1 / kind["n"]
        assert len(set(kind["speakers"])) == kind["n"]  # one clip per voice / instrument
        assert kind["resynthesis_mel"] > 0 and kind["codec_mel"] > 0
    text = table.read_text()
    assert "| figure | speech | music |" in text and "codec round trip" in text and "Machine:" in text
    assert "rank score: real continuation through the codec (chance 0.50)" in text
    # the table file is never replaced without --overwrite
    code = main([*args, "--out", str(table)])
    assert code == 2 and "already exists" in capsys.readouterr().err
    # without --tokens the cross entropy comes from the clips; the table goes to stdout
    code = main([*args, "--out", str(table), "--overwrite", "--embed", "semantic"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "the clips" in out and "finds its prompt (semantic)" in out


def test_eval_several_draws_per_prompt(tiny_corpus, tiny_pipeline, capsys):
    """--seeds 2: every prompt continued twice (seeds 0 + i and 1000 + i); the generated figures
    are the draws' mean, each draw listed; the first draw is the --seeds 1 run."""
    args = ["eval", "continuation", "--data", str(tiny_corpus), "--pipeline", str(tiny_pipeline), *EVAL, "--json"]
    assert main([*args, "--seeds", "2"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    one = json.loads(capsys.readouterr().out)
    assert two["seeds"] == 2 and one["seeds"] == 1
    c2, c1 = two["kinds"]["speech"]["consistency"], one["kinds"]["speech"]["consistency"]
    draws = c2["generated_by_seed"]
    assert [d["seed"] for d in draws] == [0, 1000]
    assert draws[0] == c1["generated_by_seed"][0]  # same seeds, same continuations
    assert c2["generated"] == pytest.approx(np.mean([d["top1"] for d in draws]))
    assert c2["generated_rank"] == pytest.approx(np.mean([d["rank"] for d in draws]))
    assert c2["real_rank"] == c1["real_rank"]  # real audio does not depend on the draws
    from audiolm.evaluation.continuation import format_table

    text = format_table(two)
    assert "2 draws per prompt" in text and "of each draw: generated continuation" in text
    assert main([*args, "--seeds", "0"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_eval_cli_errors(tiny_corpus, tiny_pipeline, tmp_path, capsys):
    from audiolm.training.data.shards import ShardWriter, Utterance

    bad = tmp_path / "bad_tokens"
    writer = ShardWriter(
        bad,
        {
            "codec": {
                "dir": None,
                "sample_rate": 24000,
                "frame_rate": 75.0,
                "codebook_size": 1024,
                "n_q": 4,
                "kbps": 3.0,
            },
            "semantic": {"dir": None, "sample_rate": 16000, "frame_rate": 50.0, "vocab_size": 8},
        },
    )
    writer.start()
    writer.write_shard(
        "valid", 0, [Utterance("u", np.zeros(10, np.int64), np.zeros((15, 4), np.int64), {"kind": "speech"})]
    )
    writer.finish({"valid": 1})
    base = ["eval", "continuation", "--pipeline", str(tiny_pipeline), *EVAL]
    cases = [
        (["--data", str(tiny_corpus), "--tokens", str(bad)], "semantic_vocab is 16 but the token shards have 8"),
        (["--data", str(tmp_path)], "not a corpus"),
        (["--data", str(tiny_corpus), "--prompt-seconds", "5"], "no valid clip is at least"),
        (["--data", str(tiny_corpus), "--n", "0"], "--n must be at least 1"),
    ]
    for extra, message in cases:
        code = main([*base, *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_format_table_marks_missing_kinds():
    report = {
        "pipeline": "p",
        "split": "valid",
        "prompt_seconds": 3,
        "seconds": 4,
        "seed": 0,
        "embedding": "codec",
        "tokens": None,
        "kinds": {
            "speech": None,
            "music": {
                "n": 2,
                "cross_entropy": {"semantic": 1.0, "coarse": None, "fine": 2.0},
                "consistency": {
                    "generated": 0.5,
                    "real": 1.0,
                    "real_codec": 1.0,
                    "chance": 0.5,
                    "generated_rank": 0.5,
                    "real_rank": 1.0,
                    "real_codec_rank": None,
                },
                "resynthesis_mel": 1.5,
                "codec_mel": 0.5,
            },
        },
    }
    text = format_table(report)
    assert "| clips (N) | - | 2 |" in text
    assert "| coarse stage cross entropy (nats/token, the clips) | - | - |" in text
    assert "| consistency rank score: generated continuation (chance 0.50) | - | 0.50 |" in text
    assert "| consistency rank score: real continuation through the codec (chance 0.50) | - | - |" in text


def test_trim_leading_silence():
    from audiolm.evaluation.continuation import trim_leading_silence

    sr = 1000
    audio = torch.cat([torch.zeros(1, 300), 0.5 * torch.ones(1, 200), torch.zeros(1, 100)], dim=1)
    assert trim_leading_silence(audio, sr).shape == (1, 300)  # starts at the first loud 10 ms frame
    assert trim_leading_silence(torch.zeros(1, 500), sr).shape == (1, 0)


def test_plot_of_a_very_short_clip(tmp_path):
    from audiolm.evaluation.plot import plot_continuation

    path = plot_continuation(tmp_path / "p.png", torch.randn(300) * 0.1, 24000, 100)
    assert path.read_bytes()[:4] == b"\x89PNG"
