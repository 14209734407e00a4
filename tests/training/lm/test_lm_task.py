"""Stage training through the shared Trainer: every stage overfits a repeated pattern and then
generates it; `audiolm train STAGE --resume` continues from the saved step."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from audiolm.cli.app import main
from audiolm.core.checkpoint import load_tensors
from audiolm.inference.sampling import SamplingConfig
from audiolm.inference.stages import generate_coarse, generate_fine, generate_semantic
from audiolm.models.lm.config import StageConfig, TransformerConfig
from audiolm.models.lm.stage import load_stage
from audiolm.training.data.shards import ShardWriter, Utterance
from audiolm.training.lm.task import StageTask
from audiolm.training.trainer import TrainConfig, Trainer

C = 8  # codebook size
Q = 4  # RVQ levels


def semantic_pattern(n, phase=0):
    return (np.arange(phase, phase + n) % 6).astype(np.int64)  # 0 1 2 3 4 5 0 1 ...


def acoustic_pattern(semantic):
    """[T = 3 * Ts, Q]: coarse levels follow the semantic token (25 Hz -> 75 Hz), fine levels
    follow the coarse ones, so each stage's targets are determined by its context."""
    s = np.repeat(semantic, 3)
    sub = np.tile(np.arange(3), len(semantic))
    a0 = (s + sub) % C
    a1 = (2 * s + 1) % C
    return np.stack([a0, a1, (a0 + a1) % C, (a0 * 3 + 1) % C], axis=1)


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
    for split, n in (("train", 6), ("valid", 2)):
        utts = []
        for i in range(n):
            s = semantic_pattern(20 + 3 * i, phase=i)
            utts.append(Utterance(f"{split}{i}", s, acoustic_pattern(s)))
        writer.write_shard(split, 0, utts)
    writer.finish({"train": 1, "valid": 1})
    return out


def small(stage, max_seq_len=32):
    if stage == "fine_bark":  # the Bark-style fine stage: a window of 16 frames, one token each
        return StageConfig(
            stage="fine",
            fine_style="bark",
            window_frames=16,
            model=TransformerConfig(dim=48, n_layers=2, n_heads=4, max_seq_len=max_seq_len),
        )
    return StageConfig(stage=stage, model=TransformerConfig(dim=48, n_layers=2, n_heads=4, max_seq_len=max_seq_len))


def train(stage, tokens, out, steps):
    task = StageTask(small(stage), tokens)
    cfg = TrainConfig(
        steps=steps,
        batch_size=8,
        lr=3e-3,
        warmup_steps=10,
        valid_every=steps,
        valid_batches=1,
        save_every=steps,
        log_every=steps,
        device="cpu",
    )
    torch.manual_seed(0)
    model_dir = Trainer(task, cfg, out, progress=False).fit()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return model_dir, log


@pytest.fixture(scope="module")
def trained(tokens, tmp_path_factory):
    stages = ("semantic", "coarse", "fine", "fine_bark")
    return {stage: train(stage, tokens, tmp_path_factory.mktemp(stage), 150) for stage in stages}


GREEDY = SamplingConfig(temperature=0.0)


def test_semantic_stage_learns_and_generates_the_pattern(trained):
    model_dir, log = trained["semantic"]
    valid = [r["valid"] for r in log if "valid" in r]
    assert valid and valid[-1]["model_loss"] < 0.2
    loaded = load_stage(model_dir, "semantic")
    model, cfg = loaded.model, loaded.config
    prompt = torch.from_numpy(semantic_pattern(5, phase=2))[None]
    # 60 new tokens: beyond the 32-token context, so the window slides
    out = generate_semantic(model, cfg, prompt, 60, sampling=GREEDY)
    assert torch.equal(out[0], torch.from_numpy(semantic_pattern(65, phase=2)))
    # sampled at a low temperature with top-k, batched with different seeds: still the pattern
    sampled = generate_semantic(
        model, cfg, prompt.repeat(2, 1), 20, sampling=SamplingConfig(0.3, top_k=2), seeds=[1, 2]
    )
    assert (sampled == torch.from_numpy(semantic_pattern(25, phase=2))).float().mean() > 0.95


def test_coarse_stage_generates_codes_for_semantic_tokens(trained):
    model_dir, _ = trained["coarse"]
    loaded = load_stage(model_dir, "coarse")
    model, cfg = loaded.model, loaded.config
    assert cfg.window_frames == 13 and cfg.model.vocab_size == 6 + 2 + 2 * C
    semantic = semantic_pattern(14, phase=1)  # 42 frames: several windows
    truth = torch.from_numpy(acoustic_pattern(semantic)).T[None]  # [1, Q, T]
    prompt = truth[:, :2, :4]
    codes = generate_coarse(model, cfg, torch.from_numpy(semantic)[None], prompt, sampling=GREEDY)
    assert codes.shape == (1, 2, 42)
    assert (codes == truth[:, :2]).float().mean() > 0.95


def test_fine_stage_generates_fine_levels(trained):
    model_dir, _ = trained["fine"]
    loaded = load_stage(model_dir, "fine")
    model, cfg = loaded.model, loaded.config
    assert cfg.window_frames == 8
    truth = torch.from_numpy(acoustic_pattern(semantic_pattern(10, phase=3))).T[None]  # [1, 4, 30]
    codes = generate_fine(model, cfg, truth[:, :2], sampling=GREEDY)
    assert codes.shape == (1, 4, 30)
    assert torch.equal(codes[:, :2], truth[:, :2])
    assert (codes[:, 2:] == truth[:, 2:]).float().mean() > 0.95


def test_bark_style_fine_stage_learns_and_generates_fine_levels(trained, tokens):
    model_dir, log = trained["fine_bark"]
    valid = [r["valid"] for r in log if "valid" in r]
    loaded = load_stage(model_dir, "fine")
    model, cfg = loaded.model, loaded.config
    # the validation loss falls from an untrained model's (about ln V) to near zero
    task = StageTask(small("fine_bark"), tokens)
    from audiolm.training.task import ItemKey

    data = task.valid_dataset()
    batch = torch.utils.data.default_collate([data[ItemKey(i, i)] for i in range(len(data))])
    assert batch["inputs"].shape[1:] == (16, Q) and batch["targets"].shape[1:] == (16,)
    with torch.no_grad():
        before = float(task.training_step({"model": task.model.eval()}, batch, 0).losses["model"])
        after = float(task.training_step({"model": model}, batch, 0).losses["model"])
    assert before > 2.0 and after < 0.2 and valid[-1]["model_loss"] < 0.2
    assert cfg.fine_style == "bark" and not cfg.model.causal
    assert cfg.window_frames == 16 and cfg.model.vocab_size == Q * C + (Q - 2) + 1
    truth = torch.from_numpy(acoustic_pattern(semantic_pattern(14, phase=3))).T[None]  # [1, 4, 42]: 3+ windows
    codes = generate_fine(model, cfg, truth[:, :2], sampling=GREEDY)
    assert codes.shape == (1, 4, 42)
    assert torch.equal(codes[:, :2], truth[:, :2])
    assert (codes[:, 2:] == truth[:, 2:]).float().mean() > 0.95
    # with a fine prompt: the prompt frames are kept as given
    prompted = generate_fine(model, cfg, truth[:, :2], truth[:, 2:, :10], sampling=GREEDY)
    assert torch.equal(prompted[:, :, :10], truth[:, :, :10])
    assert (prompted[:, 2:, 10:] == truth[:, 2:, 10:]).float().mean() > 0.95


def test_bark_style_generation_is_deterministic_and_batch_independent(trained):
    loaded = load_stage(trained["fine_bark"][0], "fine")
    model, cfg = loaded.model, loaded.config
    coarse = torch.from_numpy(acoustic_pattern(semantic_pattern(12))).T[None, :2].repeat(2, 1, 1)  # [2, 2, 36]
    sampling = SamplingConfig(temperature=1.5, top_k=5)
    both = generate_fine(model, cfg, coarse, sampling=sampling, seeds=[5, 6])
    assert both.shape == (2, 4, 36) and both.min() >= 0 and both.max() < C
    assert torch.equal(both, generate_fine(model, cfg, coarse, sampling=sampling, seeds=[5, 6]))
    one = generate_fine(model, cfg, coarse[1:], sampling=sampling, seeds=[6])
    assert torch.equal(one[0], both[1])
    assert not torch.equal(both[0, 2:], generate_fine(model, cfg, coarse[:1], sampling=sampling, seeds=[7])[0, 2:])
    with pytest.raises(ValueError, match="context_frames"):
        generate_fine(model, cfg, coarse, context_frames=cfg.window_frames // 2)


def test_stage_generation_batched_equals_per_sample(trained):
    loaded = load_stage(trained["coarse"][0], "coarse")
    model, cfg = loaded.model, loaded.config
    semantic = torch.from_numpy(semantic_pattern(9))[None].repeat(2, 1)
    sampling = SamplingConfig(temperature=1.5)
    both = generate_coarse(model, cfg, semantic, None, sampling=sampling, seeds=[5, 6])
    for b, seed in enumerate([5, 6]):
        one = generate_coarse(model, cfg, semantic[b : b + 1], None, sampling=sampling, seeds=[seed])
        assert torch.equal(one[0], both[b])
    loaded = load_stage(trained["fine"][0], "fine")
    fine_model, fine_cfg = loaded.model, loaded.config
    fine_both = generate_fine(fine_model, fine_cfg, both, sampling=sampling, seeds=[5, 6])
    one = generate_fine(fine_model, fine_cfg, both[1:], sampling=sampling, seeds=[6])
    assert torch.equal(one[0], fine_both[1])


def test_train_command_resume_equals_the_uninterrupted_run(tokens, tmp_path):
    """3 steps + --resume to 6 == 6 steps in one go, weight for weight (dropout on, so the
    restored RNG state matters; constant LR, so the schedule's length does not)."""
    config = tmp_path / "stage.json"
    config.write_text(
        json.dumps({"model": {"dim": 32, "n_layers": 1, "n_heads": 2, "max_seq_len": 24, "dropout": 0.2}})
    )
    train_config = tmp_path / "train.json"
    train_config.write_text(json.dumps({"min_lr_ratio": 1.0, "warmup_steps": 0}))

    def base(run):
        return [
            "train",
            "fine",
            "--tokens",
            str(tokens),
            "--out",
            str(run),
            "--config",
            str(config),
            "--train-config",
            str(train_config),
            "--batch-size",
            "4",
            "--save-every",
            "3",
            "--valid-every",
            "100",
            "--device",
            "cpu",
        ]

    whole, run = tmp_path / "whole", tmp_path / "run"
    torch.manual_seed(0)  # the same initial weights for both runs (the stage is built before the trainer seeds)
    assert main(base(whole) + ["--steps", "6"]) == 0
    # a first run that "dies" after step 3: train to 3 steps only
    torch.manual_seed(0)
    assert main(base(run) + ["--steps", "3"]) == 0
    first = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines() if "valid" not in line]
    # resume to 6 steps: continues from the step-3 checkpoint
    assert main(["train", "fine", "--tokens", str(tokens), "--out", str(run), "--resume", "--steps", "6"]) == 0
    resumed, uninterrupted = (
        load_tensors(run / "model" / "model.safetensors"),
        load_tensors(whole / "model" / "model.safetensors"),
    )
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        assert torch.equal(resumed[name], uninterrupted[name]), name
    meta = json.loads((run / "model" / "config.json").read_text())
    assert meta["step"] == 6 and meta["kind"] == "lm_fine"
    assert meta["config"]["window_frames"] == 6 and meta["config"]["model"]["vocab_size"] == Q * C + 2
    assert (run / "checkpoints" / "step-00000006").is_dir()
    assert max(first) <= 3
    loaded = load_stage(run, "fine")
    cfg = loaded.config
    assert cfg.model.dim == 32
    # without --resume the run directory is not overwritten: one line, exit 2
    before = (run / "model" / "model.safetensors").read_bytes()
    assert main(base(run) + ["--steps", "3"]) == 2
    assert (run / "model" / "model.safetensors").read_bytes() == before


def test_join_voice_windows_run_across_the_utterances_of_one_voice(tmp_path):
    """join_voice: a training sequence is a run of one voice's utterances end to end (each
    trimmed to whole semantic frames, so the streams stay aligned), never two voices; an
    utterance without a speaker label stays alone; runs are cut at JOINED_WINDOWS windows."""
    from audiolm.models.lm.stage import complete_stage_config, make_layout
    from audiolm.training.data.shards import TokenShards
    from audiolm.training.lm.task import JOINED_WINDOWS, StageDataset
    from audiolm.training.task import ItemKey

    writer = ShardWriter(
        tmp_path,
        {
            "codec": {"dir": None, "sample_rate": 24000, "frame_rate": 75.0, "codebook_size": C, "n_q": Q, "kbps": 3.0},
            "semantic": {"dir": None, "sample_rate": 16000, "frame_rate": 25.0, "vocab_size": 6},
        },
    )
    writer.start()
    utts = []
    for i, speaker in enumerate(["a", "b", "a", None, "b", "a"]):
        s = semantic_pattern(10 + i, phase=i)
        a = acoustic_pattern(s)[: 3 * len(s) - (i % 2)]  # odd ones one frame short, as real clips can be
        meta = {"kind": "speech"} | ({} if speaker is None else {"speaker": speaker})
        utts.append(Utterance(f"u{i}", s, a, meta))
    writer.write_shard("train", 0, utts)
    writer.finish({"train": 1})
    shards = TokenShards(tmp_path, "train")

    def dataset(join, window_frames=12):
        config = StageConfig(stage="coarse", model=TransformerConfig(dim=16, n_layers=1, n_heads=2, max_seq_len=256))
        config = dataclasses.replace(config, join_voice=join, window_frames=window_frames)
        return StageDataset(shards, make_layout(complete_stage_config(config, shards.info)))

    assert dataset(False).sequences == [[i] for i in range(6)]
    joined = dataset(True, window_frames=20)  # runs of at most 4 * 20 = 80 frames (clips: 30-44)
    assert JOINED_WINDOWS == 4 and sorted(map(sorted, joined.sequences)) == [[0, 2], [1, 4], [3], [5]]
    for group in joined.sequences:
        semantic, acoustic = joined.tokens(joined.sequences.index(group))
        if len(group) > 1:  # (a lone utterance is read as it is)
            assert len(acoustic) == 3 * len(semantic)  # aligned
            parts = [shards[i] for i in group]
            n = [min(len(u.semantic), len(u.acoustic) // 3) for u in parts]
            np.testing.assert_array_equal(semantic, np.concatenate([u.semantic[:k] for u, k in zip(parts, n)]))
            np.testing.assert_array_equal(acoustic, np.concatenate([u.acoustic[: 3 * k] for u, k in zip(parts, n)]))
    bigger = dataset(True, window_frames=100)  # 400 frames: every voice in one run
    assert sorted(map(sorted, bigger.sequences)) == [[0, 2, 5], [1, 4], [3]]
    item = bigger[ItemKey(0, 0)]
    assert item["inputs"].shape == item["targets"].shape


def test_a_stage_run_starts_from_a_trained_stages_weights_with_init(trained, tokens, tmp_path, capsys):
    """`train coarse --init STAGE`: the run starts from those weights (its own config), records them
    in run.json for a resume before the first checkpoint; another stage or network is refused in one
    line, and --init with --resume is a usage error."""
    from audiolm.core.errors import ConfigError
    from tests.helpers import run_cli

    source, _ = trained["coarse"]
    task = StageTask(small("coarse"), tokens, init=source)
    started = load_stage(source, "coarse").model.state_dict()
    assert all(torch.equal(v, started[k]) for k, v in task.model.state_dict().items())
    run = tmp_path / "run"

    def argv(out):
        return [
            "train",
            "coarse",
            "--tokens",
            tokens,
            "--out",
            out,
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--device",
            "cpu",
        ]

    code, _, err = run_cli(capsys, *argv(run), "--init", source, "--lr", "1e-12", "--warmup-steps", "0")
    assert code == 0, err
    assert json.loads((run / "run.json").read_text())["init"] == str(source.resolve())
    tuned = load_stage(run, "coarse").model.state_dict()
    assert all(torch.allclose(v, started[k], atol=1e-6) for k, v in tuned.items())  # one step at lr 1e-12
    # another stage's weights, another network: one line, exit 2
    code, _, err = run_cli(capsys, *argv(tmp_path / "r2"), "--init", trained["semantic"][0])
    assert code == 2 and "lm_semantic" in err and len(err.strip().splitlines()) == 1
    wider = tmp_path / "wider.json"
    wider.write_text(json.dumps({"model": {"dim": 64, "n_layers": 2, "n_heads": 4, "max_seq_len": 32}}))
    with pytest.raises(ConfigError, match="model.dim 48 vs 64"):
        wide = TransformerConfig(dim=64, n_layers=2, n_heads=4, max_seq_len=32)
        StageTask(dataclasses.replace(small("coarse"), model=wide), tokens, init=source)
    code, _, err = run_cli(capsys, *argv(tmp_path / "r3"), "--init", source, "--config", wider)
    assert code == 2 and "--init needs the same model" in err
    code, _, err = run_cli(capsys, *argv(run), "--init", source, "--resume")
    assert code == 2 and "--init starts a new run" in err


def test_init_may_lengthen_a_stages_context(trained, tokens):
    """Positions are rotary, so `--init` carries a stage to a longer context (max_seq_len and the
    window it sizes): the same weights load, and on a window that fits both contexts the longer
    model gives the same logits as its source."""
    source, _ = trained["coarse"]
    short = load_stage(source, "coarse")
    longer_model = dataclasses.replace(short.config.model, max_seq_len=2 * short.config.model.max_seq_len)
    longer = dataclasses.replace(short.config, model=longer_model, window_frames=0)
    task = StageTask(longer, tokens, init=source)
    assert task.model_config().window_frames > short.config.window_frames
    assert task.model_config().model.max_seq_len == 2 * short.config.model.max_seq_len
    ids = torch.randint(0, short.config.model.vocab_size, (1, short.config.model.max_seq_len))
    task.model.eval()
    short.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(task.model(ids), short.model(ids), rtol=1e-5, atol=1e-5)
