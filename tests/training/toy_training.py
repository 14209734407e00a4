"""A toy task for the trainer tests, runnable as a script so a test can kill it for real.

    python tests/training/toy_training.py OUT [--steps N] [--resume] [--sleep S]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from audiolm.training.task import ItemKey, StepOutput, Task
from audiolm.training.trainer import TrainConfig, Trainer


@dataclass
class ToyConfig:
    dim: int = 8
    hidden: int = 16


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
        return x, (x @ self.w).squeeze(0) + float(noise)


class ToyTask(Task):
    kind = "toy"

    def __init__(self, config: ToyConfig, sleep: float = 0.0, with_critic: bool = False):
        self.config, self.sleep = config, sleep
        self.model = nn.Sequential(nn.Linear(config.dim, config.hidden), nn.Dropout(0.1), nn.ReLU(), nn.Linear(config.hidden, 1))
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

    def valid_dataset(self):
        return ToyDataset(16, self.config.dim)

    def training_step(self, parts, batch, step):
        if self.sleep:
            time.sleep(self.sleep)
        x, y = batch
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
    args = p.parse_args(argv)
    torch.manual_seed(0)
    task = ToyTask(ToyConfig(), sleep=args.sleep, with_critic=args.critic)
    config = TrainConfig(
        steps=args.steps, batch_size=8, lr=1e-2, warmup_steps=5, save_every=5, valid_every=10, log_every=5, device="cpu"
    )
    Trainer(task, config, args.out, resume=args.resume, progress=False).fit()


if __name__ == "__main__":
    sys.exit(main())
