"""Training the codec through the shared Trainer on the tiny corpus."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from audiolm.core.config import config_to_dict
from audiolm.core.errors import ConfigError
from audiolm.models.codec.codec import Codec
from audiolm.models.codec.config import CodecConfig
from audiolm.training.codec.task import AudioCropDataset, CodecTask
from audiolm.training.task import ItemKey
from audiolm.training.trainer import TrainConfig, Trainer
from tests.helpers import run_cli, tiny_frame_rate_config, tiny_pitched_codec


def _train_config(steps: int) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=4,
        lr=3e-3,
        warmup_steps=0,
        weight_decay=0.0,
        valid_every=10,
        valid_batches=1,
        save_every=100,
        log_every=1,
        seed=0,
    )


def _task(corpus) -> CodecTask:
    torch.manual_seed(0)
    return CodecTask.from_corpus(CodecConfig.tiny(), corpus)


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_crop_dataset_is_deterministic_per_key(tiny_corpus):
    task = _task(tiny_corpus)
    data = task.train_dataset()
    a, b = data[ItemKey(3, 17)], data[ItemKey(3, 17)]
    assert a.shape == (1, task.crop_samples) and torch.equal(a, b)
    assert not torch.equal(a, data[ItemKey(3, 18)])
    valid = task.valid_dataset()
    assert torch.equal(valid[ItemKey(0, 1)], valid[ItemKey(0, 2)])  # validation ignores the seed


def test_short_files_are_zero_padded(tmp_path):
    from audiolm.core.audio import save_audio

    save_audio(tmp_path / "short.wav", 0.1 * torch.ones(1, 100), 24000)
    data = AudioCropDataset([tmp_path / "short.wav"], 24000, 480)
    crop = data[ItemKey(0, 0)]
    assert crop.shape == (1, 480) and crop[0, 200:].abs().max() == 0


def test_training_step_losses_and_metrics(tiny_corpus):
    task = _task(tiny_corpus)
    parts = task.parts()
    batch = task.collate([task.train_dataset()[ItemKey(i, i)] for i in range(2)])
    early = task.training_step(parts, batch, step=0)
    assert not early.losses["discriminator"].requires_grad  # no adversarial loss before its start step
    late = task.training_step(parts, batch, step=task.config.training.adversarial_start_step)
    assert late.losses["discriminator"].requires_grad
    for key in ("l1", "mel", "adversarial", "feature_matching", "commitment", "perplexity", "dead_codes", "n_q"):
        assert key in late.metrics, key
    weights = parts["discriminator"].balancer.weights
    expected = sum(weights[k] * late.metrics[k] for k in ("l1", "mel", "adversarial", "feature_matching"))
    expected += task.config.training.weight_commitment * late.metrics["commitment"]
    assert float(late.losses["model"].detach()) == pytest.approx(expected, rel=1e-4)  # value = weighted sum
    assert {task.levels_for_step(s) for s in range(40)} == {2, 4, 8, 16}  # quantizer dropout


def test_phase_and_stft_losses_join_the_balanced_losses_when_weighted(tiny_corpus):
    """weight_phase / weight_stft > 0 add the phase-derivative and linear STFT terms (balanced
    like the others) and an integrated-phase iSTFT decoder trains through them; weight 0 keeps
    the balancer of older runs."""
    import dataclasses

    config = tiny_frame_rate_config(
        istft_phase="harmonic",
        istft_harmonic_comb=True,
        istft_max_log_magnitude=7.6,
        training=dataclasses.replace(
            CodecConfig.tiny().training,
            weight_phase=1.0,
            weight_stft=1.0,
            weight_head_magnitude=1.0,
            weight_head_phase=1.0,
            weight_head_f0=1.0,
            teacher_forced_f0=True,
        ),
    )
    torch.manual_seed(0)
    task = CodecTask.from_corpus(config, tiny_corpus)
    parts = task.parts()
    assert {"phase", "stft"} <= set(parts["discriminator"].balancer.weights)
    assert not {"phase", "stft"} & set(_task(tiny_corpus).parts()["discriminator"].balancer.weights)
    batch = task.collate([task.train_dataset()[ItemKey(i, i)] for i in range(2)])
    out = task.training_step(parts, batch, step=0)
    for key in ("phase", "stft", "head_magnitude", "head_phase", "head_f0"):
        assert out.metrics[key] > 0, key
    # teacher forcing: the head follows the pitch target where it is voiced
    target = task._f0_target(batch)
    extras = {"f0_given": target}
    parts["model"].decoder.forward_supervised(
        parts["model"].quantizer(parts["model"].encoder(batch), 4).quantized, extras
    )
    assert target.gt(0).any() and extras["f0_bins"].shape == target.shape
    out.losses["model"].backward()
    head = parts["model"].decoder.head.out.weight
    assert head.grad is not None and torch.isfinite(head.grad).all() and head.grad.abs().sum() > 0


def test_twenty_steps_lower_the_loss_and_export_a_codec(tiny_corpus, tmp_path):
    out = Trainer(_task(tiny_corpus), _train_config(20), tmp_path / "run", progress=False).fit()
    records = [r for r in _log(tmp_path / "run") if "loss/model" in r]
    mel, l1 = [r["mel"] for r in records], [r["l1"] for r in records]
    assert len(mel) == 20
    assert np.mean(mel[-5:]) < 0.92 * np.mean(mel[:5])
    assert np.mean(l1[-5:]) < 0.8 * np.mean(l1[:5])
    assert any("discriminator" in r for r in records)  # adversarial training switched on
    valid = [r["valid"] for r in _log(tmp_path / "run") if "valid" in r]
    assert len(valid) == 2 and {"mel", "si_sdr", "perplexity"} <= set(valid[0])
    codec = Codec.from_pretrained(tmp_path / "run")  # a run directory loads (its exported model)
    assert codec.source == str(out)
    assert codec.encode(torch.zeros(2400), 24000).shape == (1, 8, 8)


def test_resume_after_stop_is_bit_identical(tiny_corpus, tmp_path):
    # steps 4..7 after the resume include the start of adversarial training (tiny: step 5)
    Trainer(_task(tiny_corpus), _train_config(7), tmp_path / "straight", progress=False).fit()
    Trainer(_task(tiny_corpus), _train_config(7), tmp_path / "resumed", progress=False).fit(stop_after=4)
    resumed = Trainer(_task(tiny_corpus), _train_config(7), tmp_path / "resumed", resume=True, progress=False)
    assert resumed.step == 4
    resumed.fit()
    a = Codec.from_pretrained(tmp_path / "straight").model.state_dict()
    b = Codec.from_pretrained(tmp_path / "resumed").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("loss", ["hinge", "lsgan"])
def test_a_few_adversarial_steps_lower_the_discriminator_loss(tiny_corpus, loss):
    """Both discriminators (multi-scale STFT + multi-period) learn to tell the corpus from a
    fixed untrained codec's output within a few steps."""
    torch.manual_seed(0)
    config = CodecConfig.tiny().with_training(adversarial_start_step=0, adversarial_loss=loss)
    task = CodecTask.from_corpus(config, tiny_corpus)
    parts = task.parts()
    dataset = task.train_dataset()
    batch = task.collate([dataset[ItemKey(i, i)] for i in range(4)])
    logits, _ = parts["discriminator"](batch)
    assert len(logits) == len(config.training.discriminator_n_ffts) + len(config.training.discriminator_periods)
    params = list(parts["discriminator"].parameters())
    optimizer = torch.optim.Adam(params, lr=2e-3, betas=(0.5, 0.9))
    losses = []
    for step in range(12):
        out = task.training_step(parts, batch, step)
        optimizer.zero_grad()
        out.losses["discriminator"].backward(inputs=params)
        optimizer.step()
        losses.append(float(out.losses["discriminator"].detach()))
        assert {"adversarial", "feature_matching", "discriminator"} <= set(out.metrics)
    assert np.mean(losses[-3:]) < losses[0] - 0.1


def _decoder_only_config(codec_config: CodecConfig, **changes) -> CodecConfig:
    training = dataclasses.replace(
        codec_config.training, frozen=("encoder", "quantizer"), adversarial_start_step=1000, weight_l1=0.0
    )
    return dataclasses.replace(codec_config, training=training, **changes)


def test_a_new_decoder_trains_for_a_codecs_tokens_as_they_are(tiny_corpus, tmp_path):
    """--init + frozen encoder and quantizer: the decoder (here re-shaped to a banded noise
    envelope) trains, the encoder and codebooks stay bit-identical, so the codes do too."""
    original = tiny_pitched_codec(seed=3)
    source = original.save(tmp_path / "codec")
    config = _decoder_only_config(original.config, istft_noise_bands=16)
    task = CodecTask.from_corpus(config, tiny_corpus, init=source)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    Trainer(task, _train_config(4), tmp_path / "run", progress=False).fit()
    tuned = Codec.from_pretrained(tmp_path / "run")
    after = tuned.model.state_dict()
    for name, value in before.items():
        if name.startswith(("encoder.", "quantizer.")):
            assert torch.equal(value, after[name]), name
    assert not torch.equal(before["decoder.head.out.weight"], after["decoder.head.out.weight"])
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal(4800).astype(np.float32)) * 0.1
    assert torch.equal(original.encode(audio, 24000), tuned.encode(audio, 24000))
    assert tuned.config.istft_noise_bands == 16 and tuned.decode(tuned.encode(audio, 24000)).isfinite().all()


def test_a_new_decoder_trains_for_a_new_voicing_rule_with_the_rvq_levels_as_they_are(tiny_corpus, tmp_path):
    """The pitch tracker's thresholds may differ from the init codec's (they are decisions, not
    weights): level 0 follows the new rule, the RVQ levels stay bit-identical."""
    original = tiny_pitched_codec(seed=3)
    source = original.save(tmp_path / "codec")
    config = _decoder_only_config(original.config, pitch_threshold=0.15, pitch_voicing_threshold=0.5)
    task = CodecTask.from_corpus(config, tiny_corpus, init=source)
    Trainer(task, _train_config(2), tmp_path / "run", progress=False).fit()
    tuned = Codec.from_pretrained(tmp_path / "run")
    assert tuned.config.pitch_voicing_threshold == 0.5
    t = torch.arange(24000) / 24000
    voice = sum(0.3 * torch.sin(2 * torch.pi * 150 * h * t) / h for h in range(1, 10))
    breathy = voice + 0.2 * torch.randn(24000, generator=torch.Generator().manual_seed(0))  # d' ~0.33
    before, after = original.encode(breathy, 24000), tuned.encode(breathy, 24000)  # [1, n_q, T]
    assert torch.equal(before[:, 1:], after[:, 1:])
    assert (before[0, 0, 5:-5] == 0).all() and (after[0, 0, 5:-5] > 0).float().mean() > 0.9


def test_init_refuses_a_codec_of_another_network(tiny_corpus, tmp_path, capsys):
    source = tiny_pitched_codec().save(tmp_path / "codec")
    other = _decoder_only_config(tiny_pitched_codec().config, frame_dim=24)
    with pytest.raises(ConfigError, match="frame_dim"):
        CodecTask.from_corpus(other, tiny_corpus, init=source)
    code, _, err = run_cli(
        capsys,
        "train",
        "codec",
        "--data",
        str(tiny_corpus),
        "--out",
        str(tmp_path / "r"),
        "--init",
        str(source),
        "--resume",
    )
    assert code == 2 and "--init starts a new run" in err


def test_a_run_resumes_after_its_config_class_grew_a_field(tiny_corpus, tmp_path):
    """A checkpoint written before a config field existed resumes: the field takes its default."""
    Trainer(_task(tiny_corpus), _train_config(4), tmp_path / "run", progress=False).fit(stop_after=2)
    for path in [*(tmp_path / "run" / "checkpoints").glob("step-*/config.json")]:
        saved = json.loads(path.read_text())
        del saved["config"]["istft_noise_bands"]  # as written before session 9
        path.write_text(json.dumps(saved))
    resumed = Trainer(_task(tiny_corpus), _train_config(4), tmp_path / "run", resume=True, progress=False)
    assert resumed.step == 2


def test_an_init_run_killed_before_its_first_checkpoint_resumes_from_the_init_weights(tiny_corpus, tmp_path, capsys):
    source = tiny_pitched_codec(seed=5).save(tmp_path / "codec")
    config = tmp_path / "decoder.json"
    config.write_text(json.dumps(config_to_dict(_decoder_only_config(tiny_pitched_codec().config))))
    run = tmp_path / "run"
    argv = ["train", "codec", "--data", str(tiny_corpus), "--out", str(run), "--steps", "2", "--batch-size", "2"]
    code, _, err = run_cli(capsys, *argv, "--config", str(config), "--init", str(source))
    assert code == 0, err
    assert json.loads((run / "run.json").read_text())["init"] == str(source.resolve())
    shutil.rmtree(run / "checkpoints")  # as if killed before its first checkpoint
    shutil.rmtree(run / "model")
    code, _, err = run_cli(capsys, *argv, "--resume")
    assert code == 0, err
    started, tuned = Codec.from_pretrained(source).model.state_dict(), Codec.from_pretrained(run).model.state_dict()
    assert all(torch.equal(started[k], tuned[k]) for k in started if k.startswith("encoder."))
