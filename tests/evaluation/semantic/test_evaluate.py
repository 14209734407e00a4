import json

import numpy as np
import pytest
import torch

from audiolm.evaluation.semantic.evaluate import cross_validated_scores, format_table, frame_labels, score_tokens


def test_frame_labels_use_frame_centres():
    phones = [(0.0, 0.05, "a"), (0.05, 0.1, "b"), (0.2, 0.3, "c")]
    # 50 Hz: centres 0.01, 0.03, 0.05, 0.07, 0.09, 0.11, ...
    assert frame_labels(phones, 8, 50) == ["a", "a", "b", "b", "b", None, None, None]
    assert frame_labels(phones, 8, 25)[:4] == ["a", "b", None, None]


def _phones(n, num_phones, rng):
    return rng.integers(0, num_phones, n)


def test_perfectly_informative_tokens():
    rng = np.random.default_rng(0)
    train, valid = _phones(5000, 10, rng), _phones(3000, 10, rng)
    # tokens = phone id (two tokens per phone still counts as fully informative)
    s = cross_validated_scores(train * 2 + train % 2, train, valid * 2 + valid % 2, valid, 20, 10)
    assert s.purity == 1.0
    assert s.pnmi > 0.99


def test_random_tokens_carry_no_information_on_held_out_frames():
    rng = np.random.default_rng(1)
    train, valid = _phones(20000, 10, rng), _phones(20000, 10, rng)
    s = cross_validated_scores(rng.integers(0, 50, 20000), train, rng.integers(0, 50, 20000), valid, 50, 10)
    assert abs(s.pnmi) < 0.02
    assert s.purity < 0.15


def test_unseen_token_falls_back_to_the_prior():
    train_tokens = np.array([0, 0, 0, 0])
    train_phones = np.array([1, 1, 1, 0])
    # token 1 never seen on train: predicted phone is the prior's majority, and its
    # conditional is the prior itself (cross-entropy equals H(phone) there)
    s = cross_validated_scores(train_tokens, train_phones, np.array([1]), np.array([1]), 2, 2, smoothing=1.0)
    assert s.purity == 1.0
    assert s.h_phone_given_token == pytest.approx(s.h_phone)
    assert s.pnmi == pytest.approx(0.0)


def test_inventories_scored_separately_and_averaged():
    good = (np.array([0, 1, 0, 1]), "flite", ["a", "b", "a", "b"])
    bad = (np.array([0, 0, 0, 0]), "espeak", ["x", "y", "x", "y"])
    scores = score_tokens([good, bad], [good, bad], vocab_size=2)
    assert scores["flite"]["purity"] == 1.0 and scores["espeak"]["purity"] == 0.5
    assert scores["mean"]["purity"] == pytest.approx(0.75)


def test_cli_eval_semantic_on_tiny_corpus(tiny_corpus, tmp_path, make_config, capsys):
    from audiolm.cli.app import main
    from audiolm.core.checkpoint import save_checkpoint
    from audiolm.training.semantic.pretraining import KIND, W2vBertModel

    torch.manual_seed(0)
    cfg = make_config()
    run = save_checkpoint(tmp_path / "ssl", KIND, cfg, W2vBertModel(cfg).state_dict())
    table = tmp_path / "table.md"
    code = main(
        [
            "eval",
            "semantic",
            "--data",
            str(tiny_corpus),
            "--ssl",
            str(run),
            "--k",
            "4",
            "--layers",
            "1",
            "2",
            "--json",
            "--out",
            str(table),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    names = [r["source"] for r in result["rows"]]
    assert names == ["mfcc", "layer 1", "layer 2"]
    assert result["k"] == 4 and result["frame_rate"] == 50 and "machine" in result
    for row in result["rows"]:
        assert 0 <= row["purity"] <= 1 and row["pnmi"] <= 1
        assert set(row["inventories"]) == {"flite", "espeak"}
    assert "MFCC + k-means" in table.read_text() and "| SSL layer 2 |" in table.read_text()
    assert "SSL layer 1" in format_table(result)
    # never overwrite an existing table without --overwrite
    assert main(["eval", "semantic", "--data", str(tiny_corpus), "--ssl", str(run), "--out", str(table)]) == 2
