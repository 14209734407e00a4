import json

import pytest
import torch

from audiolm.core.checkpoint import load_checkpoint
from audiolm.models.semantic.config import SSLConfig
from audiolm.models.semantic.encoder import SSLEncoder
from audiolm.training.semantic.pretraining import KIND, W2vBertModel, draw_masks
from audiolm.training.semantic.task import SSLTask


@pytest.mark.parametrize("frontend", ["mel", "mfcc", "conv"])
@pytest.mark.parametrize("frame_rate", [50, 25])
def test_encoder_frames_and_layers(make_config, frontend, frame_rate):
    cfg = make_config(frontend=frontend, frame_rate=frame_rate)
    enc = SSLEncoder(cfg).eval()
    wav = torch.randn(2, 16000 + 100) * 0.1
    out = enc(wav)
    t = (16000 + 100) // cfg.hop_length
    assert out.features.shape == (2, t, cfg.feature_dim)
    assert len(out.hidden_states) == cfg.num_layers + 1
    assert all(h.shape == (2, t, cfg.hidden_size) for h in out.hidden_states)
    partial = enc(wav, num_layers=1).hidden_states
    assert len(partial) == 2 and torch.allclose(partial[1], out.hidden_states[1], atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError):
        SSLConfig(frame_rate=40)
    with pytest.raises(ValueError):
        W2vBertModel(SSLConfig(num_layers=2, contrastive_layers=2))


def test_both_losses_backpropagate(make_config):
    torch.manual_seed(0)  # weights and audio: the same draw whatever ran before in this process
    cfg = make_config()
    model = W2vBertModel(cfg)
    wav = torch.randn(2, 16000) * 0.1
    masks = draw_masks(cfg, torch.tensor([50, 40]), 50, seed=0)
    out = model(wav, masks)
    for value in (out.loss, out.contrastive, out.diversity, out.mlm):
        assert torch.isfinite(value)
    out.loss.backward()
    # the contrastive loss trains the quantizer, MLM trains the later layers and its head
    assert model.quantizer.codevectors.grad.abs().sum() > 0
    assert model.quantizer.logits.weight.grad.abs().sum() > 0
    assert model.mlm_head.weight.grad.abs().sum() > 0
    assert model.encoder.layers[-1].ffn2.output_dense.weight.grad.abs().sum() > 0
    assert model.encoder.mask_embedding.grad.abs().sum() > 0


def test_loss_falls_on_tiny_corpus(tiny_corpus, make_config):
    torch.manual_seed(0)
    cfg = make_config()
    task = SSLTask.from_corpus(cfg, tiny_corpus)
    data = task.train_dataset()
    batch = task.collate([data[i] for i in range(4)])
    opt = torch.optim.AdamW(task.model.parameters(), lr=3e-3)
    losses = []
    for _step in range(25):
        out = task.training_step({"model": task.model}, batch, step=0)  # same masks every step
        opt.zero_grad()
        out.losses["model"].backward()
        opt.step()
        losses.append(float(out.losses["model"].detach()))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_trainer_runs_validates_and_exports(tiny_corpus, make_config, tmp_path):
    from audiolm.training.trainer import TrainConfig, Trainer

    torch.manual_seed(0)
    cfg = make_config()
    task = SSLTask.from_corpus(cfg, tiny_corpus)
    train_cfg = TrainConfig(
        steps=6, batch_size=2, lr=1e-3, warmup_steps=1, valid_every=3, valid_batches=2, save_every=3, log_every=3
    )
    out = Trainer(task, train_cfg, tmp_path / "run", progress=False).fit()
    ckpt = load_checkpoint(out, KIND, SSLConfig)
    assert ckpt.config == cfg
    assert json.loads((out / "ssl_data.json").read_text())["data"] == str(tiny_corpus.resolve())
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    valid = [r["valid"] for r in records if "valid" in r]
    assert valid and all("mlm" in v and "contrastive" in v for v in valid)


def test_cli_train_ssl_and_resume(tiny_corpus, make_config, tmp_path):
    """2 steps + --resume to 4 == 4 steps in one go, weight for weight (dropout on, so the
    restored RNG state matters; constant LR, so the schedule's length does not)."""
    from audiolm.cli.app import main
    from audiolm.core.checkpoint import load_tensors
    from audiolm.core.config import config_to_dict

    config = tmp_path / "ssl.json"
    config.write_text(json.dumps(config_to_dict(make_config(dropout=0.2))))
    train_config = tmp_path / "train.json"
    train_config.write_text(json.dumps({"min_lr_ratio": 1.0, "warmup_steps": 0}))

    def args(run):
        return [
            "train",
            "ssl",
            "--data",
            str(tiny_corpus),
            "--out",
            str(run),
            "--config",
            str(config),
            "--train-config",
            str(train_config),
            "--batch-size",
            "2",
            "--valid-every",
            "2",
            "--save-every",
            "2",
        ]

    whole, run = tmp_path / "whole", tmp_path / "run"
    torch.manual_seed(0)
    assert main(args(whole) + ["--steps", "4"]) == 0
    torch.manual_seed(0)
    assert main(args(run) + ["--steps", "2"]) == 0
    assert main(args(run) + ["--steps", "4", "--resume"]) == 0
    assert load_checkpoint(run / "model", KIND).meta["step"] == 4
    resumed, uninterrupted = (
        load_tensors(run / "model" / "model.safetensors"),
        load_tensors(whole / "model" / "model.safetensors"),
    )
    for name in uninterrupted:
        assert torch.equal(resumed[name], uninterrupted[name]), name


# -- HuBERT-style cluster targets for the MLM module --------------------------------------------


@pytest.fixture(scope="module")
def mfcc_targets(tiny_corpus, tmp_path_factory):
    """An MFCC + k-means tokenizer (K=8, 50 Hz) fitted on the tiny corpus, saved like the CLI does."""
    from audiolm.models.semantic.tokenizer import SemanticTokenizer

    tok = SemanticTokenizer.mfcc(50).fit_kmeans(tiny_corpus, 8, steps=20, device="cpu", progress=False)
    return tok.save(tmp_path_factory.mktemp("targets") / "mfcc8")


def test_cluster_targets_replace_quantizer_ids(make_config):
    cfg = make_config(target_clusters=8, contrastive_weight=0.0)
    model = W2vBertModel(cfg)
    assert model.mlm_head.out_features == 8
    wav = torch.randn(2, 16000) * 0.1
    masks = draw_masks(cfg, torch.tensor([50, 50]), 50, seed=0)
    ids = torch.randint(0, 8, (2, 50))
    out = model(wav, masks, ids)
    # with contrastive_weight 0 the loss is the MLM loss alone, scored against the given ids
    assert torch.allclose(out.loss, cfg.mlm_weight * out.mlm)
    other = model(wav, masks, (ids + 1) % 8)
    assert not torch.allclose(out.mlm, other.mlm)
    out.loss.backward()
    assert model.encoder.layers[0].ffn1.output_dense.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="cluster_ids"):
        model(wav, masks)


def test_cluster_targets_loss_falls(tiny_corpus, make_config, mfcc_targets):
    from audiolm.models.semantic.tokenizer import SemanticTokenizer

    torch.manual_seed(0)
    cfg = make_config(target_clusters=8)
    task = SSLTask.from_corpus(cfg, tiny_corpus, mfcc_targets)
    data = task.train_dataset()
    batch = task.collate([data[i] for i in range(4)])
    # the targets are exactly the tokenizer's ids of the crops
    expected = SemanticTokenizer.from_pretrained(mfcc_targets).encode(batch["wav"], 16000)
    assert torch.equal(task.targets.encode(batch["wav"], 16000), expected)
    opt = torch.optim.AdamW(task.model.parameters(), lr=3e-3)
    mlm = []
    for _ in range(25):
        out = task.training_step({"model": task.model}, batch, step=0)
        opt.zero_grad()
        out.losses["model"].backward()
        opt.step()
        mlm.append(out.metrics["mlm"])
    assert sum(mlm[-5:]) / 5 < 0.8 * sum(mlm[:5]) / 5


def test_cluster_targets_checked(tiny_corpus, make_config, mfcc_targets):
    from audiolm.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--targets"):
        SSLTask.from_corpus(make_config(target_clusters=8), tiny_corpus)
    with pytest.raises(ConfigError, match="K=8"):
        SSLTask.from_corpus(make_config(target_clusters=16), tiny_corpus, mfcc_targets)
    with pytest.raises(ConfigError, match="Hz"):
        SSLTask.from_corpus(make_config(target_clusters=8, frame_rate=25), tiny_corpus, mfcc_targets)
    with pytest.raises(ConfigError, match="target_clusters=0"):
        SSLTask.from_corpus(make_config(), tiny_corpus, mfcc_targets)


def test_cli_train_ssl_with_targets_and_resume(tiny_corpus, make_config, mfcc_targets, tmp_path):
    from audiolm.cli.app import main
    from audiolm.core.config import config_to_dict

    config = tmp_path / "ssl.json"
    config.write_text(json.dumps(config_to_dict(make_config(target_clusters=8))))
    run = tmp_path / "run"
    args = [
        "train",
        "ssl",
        "--data",
        str(tiny_corpus),
        "--out",
        str(run),
        "--config",
        str(config),
        "--targets",
        str(mfcc_targets),
        "--batch-size",
        "2",
        "--valid-every",
        "2",
        "--save-every",
        "2",
    ]
    assert main(args + ["--steps", "2"]) == 0
    assert main(args + ["--steps", "3", "--resume"]) == 0
    assert load_checkpoint(run / "model", KIND).meta["step"] == 3
    assert json.loads((run / "model" / "ssl_data.json").read_text())["targets"] == str(mfcc_targets.resolve())
    # resuming without the targets is refused with a one-line error (exit 2)
    assert main(["train", "ssl", "--data", str(tiny_corpus), "--out", str(run), "--steps", "4", "--resume"]) == 2


def test_mlm_on_unmasked_frames_adds_to_the_loss(make_config):
    ids = torch.randint(0, 8, (2, 50))
    wav = torch.randn(2, 16000) * 0.1
    losses = []
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        cfg = make_config(target_clusters=8, contrastive_weight=0.0, mlm_unmasked_weight=weight, frontend="mfcc")
        model = W2vBertModel(cfg)
        with torch.no_grad():
            losses.append(float(model(wav, draw_masks(cfg, torch.tensor([50, 50]), 50, seed=0), ids).mlm))
    # same weights and masks: the unmasked term is added on top of the masked one
    assert losses[1] > losses[0] + 0.5
