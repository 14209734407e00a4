"""Mixed precision in the Trainer: fp16 loss scaling unscales each optimizer's gradients exactly
once (two optimizers: the codec's generator and discriminator), bf16 autocast really runs on CPU
for every task, gradient accumulation equals the larger batch."""

import dataclasses

import pytest
import torch
from toy_training import ToyConfig, ToyTask  # tests/training/ is on sys.path (pytest, rootdir import mode)

from audiolm.core import cpu_features
from audiolm.core.checkpoint import load_checkpoint
from audiolm.core.cpu_features import bf16_fallback_reason, cpu_bf16_kernels
from audiolm.models.codec.config import CodecConfig
from audiolm.training import precision as precision_module
from audiolm.training.codec.task import CodecTask
from audiolm.training.precision import resolve_precision
from audiolm.training.trainer import TrainConfig, Trainer


def _config(**kw):
    base = dict(
        steps=1,
        batch_size=8,
        lr=1e-3,
        warmup_steps=0,
        valid_every=100,
        save_every=100,
        log_every=1,
        device="cpu",
        grad_clip=1e9,
    )
    return TrainConfig(**(base | kw))


def grads_at_optimizer_step(make_task, config, out, init_scale=256.0):
    """Each part's gradients as its optimizer steps on them (step 1), and the trainer."""
    torch.manual_seed(0)
    trainer = Trainer(make_task(), config, out, progress=False)
    if trainer.scaler is not None:  # a small first scale: no overflow, no skipped first step
        trainer.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    seen = {}

    def record(name, optimizer):
        seen.setdefault(
            name, [p.grad.detach().clone() for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        )

    for name, opt in trainer.optimizers.items():
        opt.optimizer.register_step_pre_hook(lambda o, args, kwargs, name=name: record(name, o))
    trainer.fit()
    return seen, trainer


def relative_error(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    diff = torch.cat([(x - y).flatten() for x, y in zip(a, b)]).norm()
    return float(diff / torch.cat([y.flatten() for y in b]).norm())


def test_fp16_two_optimizers_step_on_gradients_unscaled_exactly_once(tmp_path):
    """accelerate's recipe divided the second optimizer's gradients by the scale twice (its
    clip_grad_norm_ unscales every optimizer, each optimizer step updates the scaler): the
    discriminator's gradients came out 1/scale of the fp32 ones."""
    task = lambda: ToyTask(ToyConfig(dropout=0.0), with_critic=True)  # noqa: E731
    fp32, _ = grads_at_optimizer_step(task, _config(), tmp_path / "fp32")
    fp16, trainer = grads_at_optimizer_step(task, _config(mixed_precision="fp16"), tmp_path / "fp16")
    assert trainer.precision.name == "fp16" and set(fp16) == set(fp32) == {"model", "discriminator"}
    for name in fp32:
        # fp16 rounding (measured 6e-4 and 2e-4), not a factor of 256 (unscaled twice: 0.996)
        assert relative_error(fp16[name], fp32[name]) < 1e-2, name


def test_fp16_scaler_updates_once_per_step_and_resumes(tmp_path):
    task = lambda: ToyTask(ToyConfig(dropout=0.0), with_critic=True)  # noqa: E731
    _, trainer = grads_at_optimizer_step(task, _config(steps=3, save_every=3, mixed_precision="fp16"), tmp_path / "r")
    assert int(trainer.scaler._growth_tracker) == 3  # one update per step, not one per optimizer
    resumed = Trainer(task(), _config(steps=4, mixed_precision="fp16"), tmp_path / "r", resume=True, progress=False)
    assert resumed.scaler.state_dict() == trainer.scaler.state_dict()


def test_fp16_codec_generator_and_discriminator_against_an_fp32_step(tiny_corpus, tmp_path):
    """The two-optimizer codec step with the adversarial losses on from step 0."""
    base = CodecConfig.tiny()
    config = dataclasses.replace(base, training=dataclasses.replace(base.training, adversarial_start_step=0))
    task = lambda: CodecTask.from_corpus(config, tiny_corpus)  # noqa: E731
    train = dict(batch_size=2, valid_every=100)
    fp32, _ = grads_at_optimizer_step(task, _config(**train), tmp_path / "fp32")
    fp16, _ = grads_at_optimizer_step(task, _config(mixed_precision="fp16", **train), tmp_path / "fp16")
    assert set(fp16) == set(fp32) == {"model", "discriminator"}
    for name in fp32:
        # fp16 convolutions and LSTM (measured 0.022 and 0.004); unscaled twice: 0.996
        assert relative_error(fp16[name], fp32[name]) < 0.1, name


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    for name, (batch, accum) in {"big": (8, 1), "accumulated": (4, 2)}.items():
        torch.manual_seed(0)
        config = _config(steps=6, batch_size=batch, grad_accum=accum, lr=1e-2, grad_clip=1.0)
        Trainer(ToyTask(ToyConfig(dropout=0.0)), config, tmp_path / name, progress=False).fit()
    big = load_checkpoint(tmp_path / "big" / "model", "toy").state_dict
    accumulated = load_checkpoint(tmp_path / "accumulated" / "model", "toy").state_dict
    for k in big:
        torch.testing.assert_close(accumulated[k], big[k], atol=1e-6, rtol=0)


def test_precision_decisions_say_what_happens_in_one_line(monkeypatch):
    assert resolve_precision("auto", "cpu").name == "no" and resolve_precision("no", "cpu").note == ""
    fp16 = resolve_precision("fp16", "cpu")
    assert fp16.name == "fp16" and fp16.scaler() is not None and "\n" not in fp16.note
    monkeypatch.setattr(cpu_features, "_onednn_bf16", lambda: True)
    assert resolve_precision("bf16", "cpu").name == "bf16"
    # an AVX2-only CPU: fp32, and the line says why
    monkeypatch.setattr(cpu_features.torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(cpu_features, "_onednn_bf16", lambda: False)
    monkeypatch.setattr(precision_module, "cpu_bf16_kernels", cpu_features.cpu_bf16_kernels)
    fallback = resolve_precision("bf16", "cpu")
    assert fallback.name == "no" and "AVX2" in fallback.note and "fp32" in fallback.note
    assert "\n" not in fallback.note


def test_bf16_request_is_reported_on_stderr(tmp_path, capsys):
    Trainer(ToyTask(ToyConfig()), _config(mixed_precision="bf16"), tmp_path / "r", progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mixed precision:")
    expected = "bf16 autocast on the CPU" if cpu_bf16_kernels() else "training in fp32"
    assert expected in err[0]


def test_bf16_autocast_runs_in_a_toy_step(tmp_path):
    if not cpu_bf16_kernels():
        pytest.skip(bf16_fallback_reason())
    dtypes = []
    task = ToyTask(ToyConfig())
    task.model[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    Trainer(task, _config(mixed_precision="bf16", steps=2), tmp_path / "r", progress=False).fit()
    assert dtypes and all(d == torch.bfloat16 for d in dtypes)
