"""The pure one-token decoding step that `decode.py` loops over and that `cuda_graph.py` and
`compiled_step.py` capture or compile: forward at one cache slot + on-device sampling.

`model` here is a plain `Transformer` or a wrapper called like one (`packed_step.PackedModel`,
whose `.model` is the plain one)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from audiolm.inference.sampling import SamplingConfig, sample
from audiolm.models.lm.transformer import Transformer

# forward(tokens [B, T], input_pos [T], kv_len, last_only) -> logits [B, T, V]
Forward = Callable[..., torch.Tensor]


def plain_model(forward: Forward) -> Transformer:
    """The plain model behind a decoding forward (the forward itself when it is one)."""
    return forward if isinstance(forward, Transformer) else forward.model  # type: ignore[attr-defined]


def decode_one_token(
    model: Forward,
    token: torch.Tensor,
    input_pos: torch.Tensor,
    seeds: torch.Tensor,
    step: torch.Tensor,
    sampling: SamplingConfig,
    allowed: torch.Tensor | None = None,
    kv_len: int | None = None,
    left_pad: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pure step: token [B, 1] at cache slot input_pos [1] -> (next token [B], logits [B, V]).

    With kv_len None every shape is static (this is what gets graph-captured / compiled).
    left_pad [B]: a left-padded batch (`Transformer.forward`); step [1] or per row [B]."""
    if left_pad is None:
        logits = model(token, input_pos, kv_len=kv_len)[:, -1]
    else:
        logits = model(token, input_pos, kv_len=kv_len, left_pad=left_pad)[:, -1]
    return sample(logits, sampling, seeds, step, allowed), logits


StepFn = Callable[..., "tuple[torch.Tensor, torch.Tensor]"]
