"""`audiolm bench fine`: per-level held-out cross entropy (checked against a brute-force
computation and a uniform model) and the JSON it prints, on tiny AR and Bark-style stages."""

import json
import math

import numpy as np
import pytest
import torch

from audiolm.evaluation.lm import bench_fine
from audiolm.models.lm.config import StageConfig, TransformerConfig
from audiolm.training.data.shards import ShardWriter, TokenShards, Utterance
from audiolm.training.lm.task import StageTask
from audiolm.training.trainer import TrainConfig, Trainer
from tests.helpers import run_command

C, Q = 8, 4


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    out = tmp_path_factory.mktemp("tokens")
    writer = ShardWriter(
        out,
        {
            "codec": {"dir": None, "sample_rate": 24000, "frame_rate": 75.0, "codebook_size": C, "n_q": Q, "kbps": 3.0},
            "semantic": {"dir": None, "sample_rate": 16000, "frame_rate": 25.0, "vocab_size": 6},
        },
    )
    writer.start()
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("valid", 2)):
        utts = [Utterance(f"{split}{i}", rng.integers(0, 6, 12), rng.integers(0, C, (36, Q))) for i in range(n)]
        writer.write_shard(split, 0, utts)
    writer.finish({"train": 1, "valid": 1})
    return out


def stage_dir(tokens, out, style, window=8):
    config = StageConfig(
        stage="fine",
        fine_style=style,
        window_frames=window,
        model=TransformerConfig(dim=32, n_layers=1, n_heads=2, max_seq_len=32),
    )
    task = StageTask(config, tokens)
    cfg = TrainConfig(steps=1, batch_size=2, valid_every=10, save_every=10, log_every=10, device="cpu")
    return Trainer(task, cfg, out, progress=False).fit(), task


def test_cross_entropy_matches_brute_force_and_uniform(tokens, tmp_path):
    windows = bench_fine.held_out_windows(TokenShards(tokens, "valid"), 8)
    assert len(windows) == 2 * (36 // 8) and windows[0].shape == (8, Q)
    for style in ("ar", "bark"):
        _, task = stage_dir(tokens, tmp_path / style, style)
        model, config = task.model.eval(), task.config
        ce = bench_fine.fine_level_cross_entropy(model, config, windows, batch_size=3)
        assert set(ce) == {2, 3}
        # brute force: one window at a time, level q's softmax over its own C entries
        expected = {2: 0.0, 3: 0.0}
        with torch.no_grad():
            for w in windows:
                for q in (2, 3):
                    if style == "ar":
                        seq = np.concatenate([task.layout.coarse_part(w), task.layout.fine_tokens(w)])
                        logits = model(torch.from_numpy(seq[:-1])[None])[0]
                        rows = [task.layout.fine_start - 1 + t * 2 + (q - 2) for t in range(8)]
                        logits = logits[rows]
                    else:
                        logits = model(torch.from_numpy(task.layout.level_inputs(w, q)[0])[None])[0]
                    logp = torch.log_softmax(logits[:, q * C : (q + 1) * C], -1)
                    expected[q] -= float(logp[torch.arange(8), torch.from_numpy(w[:, q])].sum())
        for q in (2, 3):
            assert ce[q] == pytest.approx(expected[q] / (len(windows) * 8), rel=1e-5)
        # a model with a zero output head is uniform over each level: ln C (not ln V)
        torch.nn.init.zeros_(model.output.weight)
        uniform = bench_fine.fine_level_cross_entropy(model, config, windows)
        assert uniform[2] == pytest.approx(math.log(C), abs=1e-5) and uniform[3] == pytest.approx(math.log(C), abs=1e-5)


def test_bench_fine_json_and_errors(tokens, tmp_path, capsys):
    ar, _ = stage_dir(tokens, tmp_path / "ar", "ar")
    bark, _ = stage_dir(tokens, tmp_path / "bark", "bark")
    code = run_command(
        [
            "bench",
            "fine",
            str(ar),
            str(bark),
            "--tokens",
            str(tokens),
            "--json",
            "--seconds",
            "0.2",
            "--prompt-seconds",
            "0.1",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--clock",
            "cpu",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["fine_style"] for r in out["results"]] == ["ar", "bark"]
    for r in out["results"]:
        assert r["windows"] == 8 and r["frames"] == 64 and r["generated_frames"] == 15
        assert set(r["ce_nats"]) == {"2", "3"} and r["generate_s"] > 0
        assert r["ce_mean"] == pytest.approx(sum(r["ce_nats"].values()) / 2)
    other, _ = stage_dir(tokens, tmp_path / "other", "bark", window=6)
    from audiolm.core.errors import AudiolmError

    with pytest.raises(AudiolmError, match="window_frames"):
        run_command(["bench", "fine", str(ar), str(other), "--tokens", str(tokens)])
    with pytest.raises(AudiolmError, match="speed test"):
        run_command(["bench", "fine", str(ar), "--tokens", str(tokens), "--seconds", "10"])
    from audiolm.cli.args import UsageError

    with pytest.raises(UsageError, match="seconds"):
        run_command(["bench", "fine", str(ar), "--tokens", str(tokens), "--seconds", "0"])
