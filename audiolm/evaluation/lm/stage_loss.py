"""`audiolm eval stage`: a trained LM stage's cross entropy on the token shards of one kind.

It answers "one mixed speech + music model, or a model per kind?": train a stage on speech
only, on music only and on both (`audiolm train STAGE --kind ...`), then score every run on the
speech-only and on the music-only valid shards with this command. The windows are the
training windows (`StageDataset` over `TokenShards(..., kind=...)`), drawn `repeats` times per
utterance with fixed seeds, so every run is scored on exactly the same tokens; the figure is
nats per predicted token, summed over all windows then divided by the predicted tokens (the
trainer's validation instead averages at most `valid_batches` batch means).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from audiolm.core.checkpoint import resolve_checkpoint_dir
from audiolm.core.errors import AudiolmError
from audiolm.models.lm.layouts import IGNORE
from audiolm.models.lm.stage import complete_stage_config, load_stage, make_layout
from audiolm.training.data.shards import TokenShards
from audiolm.training.lm.task import StageDataset
from audiolm.training.task import ItemKey


@torch.inference_mode()
def stage_loss(
    checkpoint: str | Path,
    tokens_dir: str | Path,
    *,
    split: str = "valid",
    kind: str | None = None,
    repeats: int = 4,
    batch_size: int = 16,
) -> dict[str, Any]:
    """{"stage", "checkpoint", "kind", "split", "utterances", "windows", "tokens", "cross_entropy"}."""
    if repeats < 1:
        raise AudiolmError(f"repeats must be at least 1, got {repeats}")
    directory = resolve_checkpoint_dir(checkpoint)
    stage = load_stage(directory)
    model, config = stage.model, stage.config
    shards = TokenShards(tokens_dir, split, kind)
    try:
        complete_stage_config(config, shards.info)  # raises on a vocabulary / rate mismatch
    except AudiolmError as e:
        where = f"the {config.stage} stage of {directory}"
        raise AudiolmError(f"{tokens_dir}: these tokens do not fit {where} ({e})") from None
    data = StageDataset(shards, make_layout(config))
    if len(data) == 0:
        raise AudiolmError(f"{tokens_dir}: no {split} utterance long enough for the {config.stage} stage")
    keys = [ItemKey(i, r * len(data) + i) for r in range(repeats) for i in range(len(data))]
    total, count = 0.0, 0
    for start in range(0, len(keys), batch_size):
        items = [data[k] for k in keys[start : start + batch_size]]
        inputs = torch.stack([x["inputs"] for x in items])  # [B, L]
        targets = torch.stack([x["targets"] for x in items])  # [B, L]
        logits = model(inputs)  # [B, L, V]
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum")
        total += float(loss)
        count += int((targets != IGNORE).sum())
    return {
        "stage": config.stage,
        "checkpoint": str(directory),
        "kind": kind,
        "split": split,
        "utterances": len(shards),
        "windows": len(keys),
        "tokens": count,
        "cross_entropy": total / count if count else None,
    }
