"""Training the LM stages: one Task class, parametrised by the stage's token layout.

The data comes only from token shards (`audiolm tokenize`): each item is a random window of
one utterance laid out by the stage's layout (`layouts.py`) as (inputs [L], targets [L]) with
ignored targets (-100) where the stage has nothing to predict. Loss: next-token cross entropy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from audiolm.core.errors import AudiolmError
from audiolm.models.lm.config import StageConfig
from audiolm.models.lm.layouts import IGNORE
from audiolm.models.lm.stage import Layout, complete_stage_config, make_layout, stage_kind
from audiolm.models.lm.transformer import Transformer
from audiolm.training.data.shards import TokenShards
from audiolm.training.task import ItemKey, StepOutput, Task


class StageDataset(Dataset):
    """Random windows of utterances; an utterance appears once per window it holds (>= once)."""

    def __init__(self, shards: TokenShards, layout: Layout) -> None:
        self.shards = shards
        self.layout = layout
        semantic_stage = layout.config.stage == "semantic"
        lengths = shards.semantic_lengths() if semantic_stage else shards.lengths()
        window = layout.sequence_length() if semantic_stage else layout.config.window_frames
        self.items: list[int] = []
        for i, n in enumerate(lengths):
            if n >= 2:
                self.items.extend([i] * max(1, math.ceil(n / window)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        utt = self.shards[self.items[key.index]]
        rng = np.random.default_rng(key.seed)
        inputs, targets = self.layout.training_example(utt.semantic, utt.acoustic, rng)
        return {"inputs": torch.from_numpy(inputs), "targets": torch.from_numpy(targets)}


class StageTask(Task):
    """Trains one stage (semantic, coarse or fine) from a token directory."""

    def __init__(self, config: StageConfig, tokens_dir: str | Path, kind: str | None = None) -> None:
        self.tokens_dir = Path(tokens_dir)
        self.data_kind = kind  # None: every utterance; "speech" / "music": only that kind
        self.train_shards = TokenShards(self.tokens_dir, "train", kind)
        self.config = complete_stage_config(config, self.train_shards.info)
        self.kind = stage_kind(self.config.stage)
        self.layout = make_layout(self.config)
        self.model = Transformer(self.config.model)
        if len(StageDataset(self.train_shards, self.layout)) == 0:
            raise AudiolmError(f"{self.tokens_dir}: the train split holds no utterance with tokens")

    def model_config(self) -> StageConfig:
        return self.config

    def parts(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def train_dataset(self) -> Dataset:
        return StageDataset(self.train_shards, self.layout)

    def valid_dataset(self) -> Dataset | None:
        if "valid" not in self.train_shards.info["splits"]:
            return None
        return StageDataset(TokenShards(self.tokens_dir, "valid", self.data_kind), self.layout)

    def training_step(self, parts: dict[str, nn.Module], batch, step: int) -> StepOutput:
        inputs, targets = batch["inputs"], batch["targets"]  # [B, L] each
        logits = parts["model"](inputs)  # [B, L, V]
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        with torch.no_grad():
            counted = targets != IGNORE
            correct = (logits.argmax(-1) == targets) & counted
            accuracy = float(correct.sum()) / max(int(counted.sum()), 1)
        return StepOutput(losses={"model": loss}, metrics={"accuracy": accuracy})
