"""Training on a CUDA GPU: bf16 and fp16 steps against an fp32 step, DDP over NCCL on two GPUs.
Skipped without a GPU; `audiolm bench gpu` runs these with the other CUDA-only tests (-m cuda)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy_training import ToyConfig, ToyTask  # tests/training/ is on sys.path (pytest, rootdir import mode)

from audiolm.core.checkpoint import load_checkpoint
from audiolm.training.trainer import TrainConfig, Trainer

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SCRIPT = Path(__file__).parent / "toy_training.py"


@pytest.fixture(autouse=True)
def _exact_fp32():
    """fp32 references in true fp32 (no TF32 matmuls)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def grads_at_step(precision: str, out: Path) -> dict[str, list[torch.Tensor]]:
    torch.manual_seed(0)
    config = TrainConfig(
        steps=1,
        batch_size=8,
        lr=1e-3,
        warmup_steps=0,
        valid_every=100,
        save_every=100,
        device="cuda",
        mixed_precision=precision,
        grad_clip=1e9,
    )
    trainer = Trainer(ToyTask(ToyConfig(dropout=0.0), with_critic=True), config, out, progress=False)
    if trainer.scaler is not None:
        trainer.scaler = torch.amp.GradScaler("cuda", init_scale=256.0)
    seen: dict[str, list[torch.Tensor]] = {}

    def record(name, optimizer):
        seen.setdefault(name, [p.grad.float().cpu() for g in optimizer.param_groups for p in g["params"]])

    for name, opt in trainer.optimizers.items():
        opt.optimizer.register_step_pre_hook(lambda o, a, k, name=name: record(name, o))
    trainer.fit()
    return seen


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_step_on_cuda_matches_fp32(precision, tmp_path):
    reference = grads_at_step("no", tmp_path / "fp32")
    mixed = grads_at_step(precision, tmp_path / precision)
    assert set(mixed) == set(reference) == {"model", "discriminator"}
    for name in reference:
        diff = torch.cat([(a - b).flatten() for a, b in zip(mixed[name], reference[name])]).norm()
        norm = torch.cat([b.flatten() for b in reference[name]]).norm()
        assert float(diff / norm) < 5e-2, (precision, name)  # bf16 rounding; unscaled twice would be ~1


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP over NCCL needs 2 GPUs")
def test_ddp_over_nccl_matches_one_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]), OMP_NUM_THREADS="1")
    common = ["--steps", "10", "--dropout", "0", "--device", "cuda"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(SCRIPT),
            str(tmp_path / "two"),
            "--batch-size",
            "4",
            *common,
        ],
        env=env,
        check=True,
    )
    subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "one"), "--batch-size", "8", *common], env=env, check=True
    )
    two = load_checkpoint(tmp_path / "two" / "model", "toy").state_dict
    one = load_checkpoint(tmp_path / "one" / "model", "toy").state_dict
    for k in one:
        assert float((two[k] - one[k]).abs().max()) < 1e-4, k
