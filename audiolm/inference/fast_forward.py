"""The decoding forward pass of a plain `Transformer`, with its matrix products and attention
kernel supplied by the caller: what the packed (`packed_step.py`) and compiled
(`compiled_step.py`) decoding paths run instead of `Transformer.forward`.

It is the model's own forward with input_pos (in eval mode: no dropout), built from the same
pieces (`embed`, `cache_mask`, `Attention.attend`, `MLP.activation`, the norms), so the fast
paths differ from the model only in how `x @ W.T` and attention are computed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.models.lm.transformer import AttentionKernel, Transformer

# linear(x [..., K], layer) -> x @ layer.weight.T [..., N]
Linear = Callable[[torch.Tensor, nn.Linear], torch.Tensor]


def plain_linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    return F.linear(x, layer.weight)


def decoding_forward(
    model: Transformer,
    tokens: torch.Tensor,
    input_pos: torch.Tensor,
    kv_len: int | None = None,
    last_only: bool = False,
    *,
    linear: Linear = plain_linear,
    rope: torch.Tensor | None = None,
    attention: AttentionKernel = F.scaled_dot_product_attention,
    left_pad: torch.Tensor | None = None,
) -> torch.Tensor:
    """tokens [B, T] (or [B, T, L]) at cache slots input_pos [T] -> logits [B, T, V] ([B, 1, V]
    with last_only), through the model's KV cache (`setup_caches` first).

    rope: the rotation table indexed by position, `model.rope` [S, D/2] (complex, the default)
    or its `view_as_real` [S, D/2, 2] (see `apply_rope`). left_pad [B]: a left-padded batch,
    as in `Transformer.forward` (per-row positions and a key-padding mask)."""
    if not model.config.causal:
        raise ValueError("a non-causal model has no KV-cache decoding: call it without input_pos")
    # [T, 1, 1, D/2] (or [T, 1, 1, D/2, 2]); per row [B, T, 1, 1, ...] with left_pad
    rotation = model.rotation(input_pos, left_pad, rope)
    mask = model.cache_mask(input_pos, kv_len, left_pad)
    x = model.embed(tokens)  # [B, T, C]
    for block in model.layers:
        attn, mlp = block.attention, block.mlp
        qkv = linear(block.attention_norm.forward(x), attn.wqkv)  # [B, T, 3C]
        x = x + linear(attn.attend(qkv, rotation, input_pos, mask, kv_len, attention), attn.wo)
        x = x + linear(mlp.activation(linear(block.mlp_norm.forward(x), mlp.w_in)), mlp.w_out)
    if last_only:
        x = x[:, -1:]
    return linear(model.norm.forward(x), model.output)  # [B, T, V]
