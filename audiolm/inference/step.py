"""The pure one-token decoding step that `decode.py` loops over and that `cuda_graph.py` and
`compiled_step.py` capture or compile: forward at one cache slot + on-device sampling."""

from __future__ import annotations

from collections.abc import Callable

import torch

from audiolm.inference.sampling import SamplingConfig, sample
from audiolm.models.lm.transformer import Transformer


def decode_one_token(
    model: Transformer,
    token: torch.Tensor,
    input_pos: torch.Tensor,
    seeds: torch.Tensor,
    step: torch.Tensor,
    sampling: SamplingConfig,
    allowed: torch.Tensor | None = None,
    kv_len: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pure step: token [B, 1] at cache slot input_pos [1] -> (next token [B], logits [B, V]).

    With kv_len None every shape is static (this is what gets graph-captured / compiled)."""
    logits = model(token, input_pos, kv_len=kv_len)[:, -1]
    return sample(logits, sampling, seeds, step, allowed), logits


StepFn = Callable[..., "tuple[torch.Tensor, torch.Tensor]"]
