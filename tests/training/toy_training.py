"""A toy task for the trainer tests, runnable as a script so a test can kill it for real and
run it on several processes (`torchrun --nproc_per_node 2 tests/training/toy_training.py ...`).

    python tests/training/toy_training.py OUT [--steps N] [--resume] [--sleep S] [--batch-size B]
        [--grad-accum K] [--dropout P] [--critic] [--record-keys] [--device cuda] [--mixed-precision bf16]

--record-keys writes the item indices each process trained on to OUT/keys-rank{R}.json;
--audit-writes DIR records every file a process writes, renames, creates or removes under OUT
(Python audit events) in DIR/writes-rank{R}.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audiolm.training.task import ItemKey, StepOutput, Task
from audiolm.training.trainer import TrainConfig, Trainer, end_process_group


@dataclass
class ToyConfig:
    dim: int = 8
    hidden: int = 16
    dropout: float = 0.1


class ToyDataset(torch.utils.data.Dataset):
    """y = x @ w_true + noise, with per-item noise drawn from the item's own seed."""

    def __init__(self, n: int, dim: int):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, dim, generator=g)
        self.w = torch.randn(dim, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, key: ItemKey):
        noise = np.random.default_rng(key.seed).normal(scale=0.01)
        x = self.x[key.index]
        return x, (x @ self.w).squeeze(0) + float(noise), key.index


class ToyTask(Task):
    kind = "toy"

    def __init__(self, config: ToyConfig, sleep: float = 0.0, with_critic: bool = False):
        self.config, self.sleep = config, sleep
        self.seen: list[int] = []  # item indices this process trained on, in order
        self.model = nn.Sequential(
            nn.Linear(config.dim, config.hidden), nn.Dropout(config.dropout), nn.ReLU(), nn.Linear(config.hidden, 1)
        )
        self.critic = nn.Linear(1, 1) if with_critic else None

    def model_config(self):
        return self.config

    def parts(self):
        parts = {"model": self.model}
        if self.critic is not None:
            parts["discriminator"] = self.critic
        return parts

    def train_dataset(self):
        return ToyDataset(64, self.config.dim)

    def collate(self, items):
        x, y = torch.utils.data.default_collate([(x, y) for x, y, _ in items])
        return x, y, torch.tensor([i for _, _, i in items])

    def valid_dataset(self):
        return ToyDataset(16, self.config.dim)

    def training_step(self, parts, batch, step):
        if self.sleep:
            time.sleep(self.sleep)
        x, y, index = batch
        if step >= 0:
            self.seen.extend(index.tolist())
        pred = parts["model"](x).squeeze(-1)
        losses = {"model": ((pred - y) ** 2).mean()}
        if "discriminator" in parts:
            # the generator loss goes through the critic; the critic loss sees a detached input
            losses["model"] = losses["model"] + 0.01 * parts["discriminator"](pred[:, None]).mean()
            losses["discriminator"] = (parts["discriminator"](pred.detach()[:, None]) ** 2).mean()
        return StepOutput(losses=losses, metrics={"batch_mean": float(y.mean())})


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--critic", action="store_true")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--record-keys", action="store_true")
    p.add_argument("--audit-writes", metavar="DIR")
    p.add_argument("--device", default="cpu")
    p.add_argument("--mixed-precision", default="no")
    p.add_argument("--save-every", type=int, default=5)
    args = p.parse_args(argv)
    writes = _audit_writes() if args.audit_writes else None
    torch.manual_seed(0)
    task = ToyTask(ToyConfig(dropout=args.dropout), sleep=args.sleep, with_critic=args.critic)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=1e-2,
        warmup_steps=5,
        save_every=args.save_every,
        valid_every=10,
        log_every=5,
        device=args.device,
        mixed_precision=args.mixed_precision,
    )
    trainer = Trainer(task, config, args.out, resume=args.resume, progress=False)
    trainer.fit()
    rank = trainer.accelerator.process_index
    if writes is not None:
        root = str(Path(args.out).resolve())
        mine = sorted({w for w in writes if str(Path(w).resolve()).startswith(root)})
        Path(args.audit_writes, f"writes-rank{rank}.json").write_text(json.dumps(mine))
    if args.record_keys:
        (trainer.out_dir / f"keys-rank{rank}.json").write_text(json.dumps(task.seen))
    end_process_group()


def _audit_writes() -> list[str]:
    """Collects the paths this process writes (open for writing), renames, creates or removes."""
    seen: list[str] = []

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, Path)):
            mode, flags = args[1] or "", args[2] or 0
            if any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR):
                seen.append(str(args[0]))
        elif event in ("os.rename", "os.mkdir", "os.remove", "shutil.rmtree", "os.rmdir"):
            seen.append(str(args[0]))

    sys.addaudithook(hook)
    return seen


if __name__ == "__main__":
    sys.exit(main())
