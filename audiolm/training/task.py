"""The one thing that differs between training runs: a Task (data, model parts, batch -> loss).

The shared `Trainer` (trainer.py) owns everything else — optimizers, schedules, mixed
precision, accumulation, distribution, validation, checkpoints, logs and resume — for the
codec, the SSL encoder, the three LM stages and the WaveNet alike.

Data order is deterministic so a resumed run sees exactly the batches it would have seen:
the trainer draws item keys from (seed, epoch) permutations and hands each dataset an
`ItemKey(index, seed)`. A dataset that crops or augments at random must draw only from
`numpy.random.default_rng(key.seed)`, never from global random state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import Dataset


class ItemKey(NamedTuple):
    """What the trainer passes to `dataset[key]`: which item, and a seed for its randomness."""

    index: int  # type: ignore[assignment]  # the field shadows tuple.index, as NamedTuple allows
    seed: int


@dataclass
class StepOutput:
    """One training step: a loss per part (keys of `Task.parts()`) and float metrics to log."""

    losses: dict[str, torch.Tensor]
    metrics: dict[str, float] = field(default_factory=dict)


class Task:
    """Subclass per model. Required: `kind`, `model_config`, `parts`, `train_dataset`,
    `training_step`. Everything else has a sensible default."""

    kind: str = ""  # checkpoint kind written into config.json of the exported model

    def model_config(self) -> Any:
        """The dataclass saved as config.json so the model rebuilds from the directory alone."""
        raise NotImplementedError

    def parts(self) -> dict[str, nn.Module]:
        """Trainable modules. "model" is required and is what gets exported; others (e.g.
        "discriminator") get their own optimizer and are saved only in trainer checkpoints."""
        raise NotImplementedError

    def train_dataset(self) -> Dataset:
        """`len()` items; `__getitem__(ItemKey)` returns one example."""
        raise NotImplementedError

    def valid_dataset(self) -> Dataset | None:
        return None

    def collate(self, items: list[Any]) -> Any:
        return torch.utils.data.default_collate(items)

    def training_step(self, parts: dict[str, nn.Module], batch: Any, step: int) -> StepOutput:
        """Compute losses; `parts` are the (possibly DDP-wrapped) modules to call.

        Each loss is back-propagated only into its own part's parameters (the trainer passes
        `inputs=` to backward), so a generator loss computed through the discriminator does
        not touch the discriminator's gradients. Losses are stepped in `parts()` order.
        """
        raise NotImplementedError

    @torch.no_grad()
    def validation_step(self, parts: dict[str, nn.Module], batch: Any) -> dict[str, float]:
        """Metrics on one validation batch (averaged over batches by the trainer)."""
        out = self.training_step(parts, batch, step=-1)
        return {f"{k}_loss": float(v) for k, v in out.losses.items()} | dict(out.metrics)

    def optimizer_settings(self, part: str) -> dict[str, Any]:
        """Per-part overrides of the TrainConfig optimizer fields (lr, betas, weight_decay)."""
        return {}

    def run_info(self) -> dict[str, Any]:
        """Extra keys for a new run's run.json (read back on --resume), e.g. the weights it started from."""
        return {}

    def export_extras(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
        """Extra files for the exported model directory: ({file: tensors}, {file: json})."""
        return {}, {}
