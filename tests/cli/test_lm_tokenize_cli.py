"""`audiolm tokenize` end to end with a tiny random codec and an MFCC semantic tokenizer saved
to disk, then a few steps of `audiolm train coarse` on the result (50 Hz / 75 Hz alignment)."""

import json

import pytest
import torch

from audiolm.training.data.shards import TokenShards
from tests.helpers import run_command, save_tiny_codec


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory, tiny_corpus):
    from audiolm.models.semantic.tokenizer import SemanticTokenizer

    root = tmp_path_factory.mktemp("tokenizers")
    save_tiny_codec(root / "codec")
    semantic = SemanticTokenizer.mfcc(frame_rate=50)
    wav = torch.randn(2, 16000)
    feats = semantic.features(wav, 16000)
    semantic.fit_kmeans_on(feats.reshape(-1, feats.shape[-1]), k=8, steps=10, progress=False)
    semantic.save(root / "semantic")
    return root / "codec", root / "semantic"


def test_tokenize_then_train_coarse(tiny_corpus, tokenizer_dirs, tmp_path):
    codec_dir, semantic_dir = tokenizer_dirs
    out = tmp_path / "tokens"
    argv = [
        "tokenize",
        str(tiny_corpus),
        str(out),
        "--codec",
        str(codec_dir),
        "--semantic",
        str(semantic_dir),
        "--kbps",
        "3",
        "--shard-size",
        "3",
    ]
    assert run_command(argv) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["codec"]["n_q"] == 4 and index["semantic"]["frame_rate"] == 50
    train = TokenShards(out, "train")
    utt = train[0]
    assert utt.acoustic.shape[1] == 4
    # 50 Hz tokens and 75 Hz frames cover the same audio: 2 tokens per 3 frames
    assert abs(utt.semantic.shape[0] * 1.5 - utt.acoustic.shape[0]) <= 3
    # a second run finds every shard complete and leaves the files as they were
    before = {p.name: p.stat().st_mtime_ns for p in (out / "train").iterdir()}
    assert run_command(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "train").iterdir()} == before

    config = tmp_path / "coarse.json"
    config.write_text(json.dumps({"model": {"dim": 32, "n_layers": 1, "n_heads": 2, "max_seq_len": 48}}))
    run = tmp_path / "run"
    assert (
        run_command(
            [
                "train",
                "coarse",
                "--tokens",
                str(out),
                "--out",
                str(run),
                "--config",
                str(config),
                "--steps",
                "2",
                "--batch-size",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    saved = json.loads((run / "model" / "config.json").read_text())["config"]
    assert saved["semantic_frame_rate"] == 50 and saved["model"]["vocab_size"] == 8 + 2 + 2 * 1024
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert any("valid" in r and "model_loss" in r["valid"] for r in log)
