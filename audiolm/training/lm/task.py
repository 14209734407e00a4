"""Training the LM stages: one Task class, parametrised by the stage's token layout.

The data comes only from token shards (`audiolm tokenize`): each item is a random window of
one utterance laid out by the stage's layout (`layouts.py`) as (inputs [L], targets [L]) with
ignored targets (-100) where the stage has nothing to predict. Loss: next-token cross entropy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from audiolm.core.checkpoint import (
    load_checkpoint,
    load_state_dict_checked,
    read_checkpoint_header,
    resolve_checkpoint_dir,
)
from audiolm.core.config import config_from_dict, config_to_dict
from audiolm.core.errors import AudiolmError, CheckpointError, ConfigError
from audiolm.models.lm.config import StageConfig
from audiolm.models.lm.layouts import IGNORE
from audiolm.models.lm.stage import Layout, complete_stage_config, make_layout, stage_kind
from audiolm.models.lm.transformer import Transformer
from audiolm.training.data.shards import TokenShards
from audiolm.training.task import ItemKey, StepOutput, Task

# a joined voice holds at most this many windows of audio (longer runs of one voice are split)
JOINED_WINDOWS = 4


class StageDataset(Dataset):
    """Random windows of sequences; a sequence appears once per window it holds (>= once).

    A sequence is one utterance, or with the config's `join_voice` a run of utterances of one
    voice (same kind and speaker label, in token-shard order) joined end to end, each trimmed
    to whole semantic frames so the two token streams stay aligned."""

    def __init__(self, shards: TokenShards, layout: Layout) -> None:
        self.shards = shards
        self.layout = layout
        semantic_stage = layout.config.stage == "semantic"
        lengths = shards.semantic_lengths() if semantic_stage else shards.lengths()
        window = layout.sequence_length() if semantic_stage else layout.config.window_frames
        groups = [[i] for i in range(len(lengths))]
        if layout.config.join_voice:
            groups = _voice_runs(shards, lengths, JOINED_WINDOWS * window)
        self.sequences: list[list[int]] = []
        self.items: list[int] = []
        for group in groups:
            n = sum(lengths[i] for i in group)
            if n >= 2:
                self.items.extend([len(self.sequences)] * max(1, math.ceil(n / window)))
                self.sequences.append(group)
        self.frames_per_semantic = _frames_per_semantic(shards.info) if layout.config.join_voice else 0

    def __len__(self) -> int:
        return len(self.items)

    def tokens(self, sequence: int) -> tuple[np.ndarray, np.ndarray]:
        """(semantic [Ts], acoustic [Ta, Q]) of one sequence."""
        group = self.sequences[sequence]
        if len(group) == 1:
            utt = self.shards[group[0]]
            return utt.semantic, utt.acoustic
        semantic, acoustic = [], []
        for i in group:
            utt = self.shards[i]
            n = min(len(utt.semantic), len(utt.acoustic) // self.frames_per_semantic)
            semantic.append(utt.semantic[:n])
            acoustic.append(utt.acoustic[: n * self.frames_per_semantic])
        return np.concatenate(semantic), np.concatenate(acoustic)

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        semantic, acoustic = self.tokens(self.items[key.index])
        rng = np.random.default_rng(key.seed)
        inputs, targets = self.layout.training_example(semantic, acoustic, rng)
        return {"inputs": torch.from_numpy(inputs), "targets": torch.from_numpy(targets)}


def _frames_per_semantic(info: dict) -> int:
    """Acoustic frames per semantic token (75 Hz / 25 Hz = 3); joining needs a whole number."""
    ratio = float(info["codec"]["frame_rate"]) / float(info["semantic"]["frame_rate"])
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise AudiolmError(
            f"join_voice needs a whole number of acoustic frames per semantic token, got {ratio:g} "
            f"({info['codec']['frame_rate']} Hz / {info['semantic']['frame_rate']} Hz)"
        )
    return round(ratio)


def _voice_runs(shards: TokenShards, lengths: list[int], max_length: int) -> list[list[int]]:
    """Utterance indices grouped by voice (kind, speaker), in shard order, each group cut into
    runs of at most `max_length` (an utterance longer than that is a run of its own).
    Utterances without a speaker label stay alone."""
    voices: dict[tuple[str, str], list[int]] = {}
    runs: list[list[int]] = []
    for i, (_, entry) in enumerate(shards.entries):
        speaker = entry.get("speaker")
        if speaker is None:
            runs.append([i])
        else:
            voices.setdefault((str(entry.get("kind")), str(speaker)), []).append(i)
    for members in voices.values():
        run: list[int] = []
        total = 0
        for i in members:
            if run and total + lengths[i] > max_length:
                runs.append(run)
                run, total = [], 0
            run.append(i)
            total += lengths[i]
        runs.append(run)
    return sorted(runs)


# fields an --init stage may differ in from the run's config: how it trains, not what it is. The
# context too: positions are rotary (RoPE, computed, not learned), so the same weights read a
# longer window, and a fine-tune teaches them to use it.
INIT_MAY_DIFFER = ("model.dropout", "join_voice", "model.max_seq_len", "window_frames")


def read_init_stage_config(directory: str | Path, stage: str) -> StageConfig:
    """The config of the stage checkpoint (or run) a new run starts from (`--init`), from its
    header only: the weights load once, in `init_stage_weights`."""
    path = resolve_checkpoint_dir(directory)
    header = read_checkpoint_header(path)
    if header["kind"] != stage_kind(stage):
        raise CheckpointError(f"{path}: checkpoint kind is {header['kind']!r}, expected {stage_kind(stage)!r}")
    return config_from_dict(StageConfig, header["config"], where=f"{path}: config")


def init_stage_weights(model: Transformer, config: StageConfig, directory: str | Path) -> None:
    """Load a stage's weights (a checkpoint directory or run) into `model`, whose completed config
    must equal the stage's but for INIT_MAY_DIFFER: fine-tuning a trained stage, e.g. on tokens of
    a codec whose decoder or pitch code changed, or on a user's own audio. Stored fp16 weights
    load into fp32 parameters."""
    path = resolve_checkpoint_dir(directory)
    ckpt = load_checkpoint(path, stage_kind(config.stage), StageConfig)
    mine, theirs = _flat(config_to_dict(config)), _flat(config_to_dict(ckpt.config))
    differ = sorted(k for k in mine.keys() | theirs.keys() if k not in INIT_MAY_DIFFER and mine.get(k) != theirs.get(k))
    if differ:
        shown = ", ".join(f"{k} {theirs.get(k)!r} vs {mine.get(k)!r}" for k in differ[:4])
        raise ConfigError(
            f"{path}: this stage does not fit the run's config and tokens ({shown}); --init needs the same model"
        )
    load_state_dict_checked(model, ckpt.state_dict, str(path))


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class StageTask(Task):
    """Trains one stage (semantic, coarse or fine) from a token directory."""

    def __init__(
        self, config: StageConfig, tokens_dir: str | Path, kind: str | None = None, init: str | Path | None = None
    ) -> None:
        """init: a stage checkpoint directory (or run) whose weights the model starts from."""
        self.tokens_dir = Path(tokens_dir)
        self.data_kind = kind  # None: every utterance; "speech" / "music": only that kind
        self.train_shards = TokenShards(self.tokens_dir, "train", kind)
        self.config = complete_stage_config(config, self.train_shards.info)
        self.kind = stage_kind(self.config.stage)
        self.layout = make_layout(self.config)
        self.model = Transformer(self.config.model)
        self.init = None if init is None else str(resolve_checkpoint_dir(init).resolve())
        if self.init is not None:
            init_stage_weights(self.model, self.config, self.init)
        if len(StageDataset(self.train_shards, self.layout)) == 0:
            raise AudiolmError(f"{self.tokens_dir}: the train split holds no utterance with tokens")

    def run_info(self) -> dict[str, Any]:
        # a run killed before its first checkpoint resumes from step 0: from these weights again
        return {} if self.init is None else {"init": self.init}

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
