"""CPU decoding through prepacked oneDNN weights: a wrapper around a plain `Transformer`.

At batch 1 a decoding step is a chain of matrix-vector products, bound by how fast the weights
are read; oneDNN's reordered weights (`models/lm/packed_linear.py`) are read faster than
`F.linear`'s, and still faster at a prefill's tens of rows, so the prefill and the steps share
them (figures: BENCHMARKS.md, "LM decoding").

`packed_model(model, precision)` packs every matrix of `model.linears()` and returns a
`PackedModel`, called like the model with input_pos: the same decoding forward
(`fast_forward.decoding_forward`), each product through its packed copy. It takes a
left-padded batch (`left_pad`) like the model: the padding changes only the positions and the
attention mask, never a matrix product, so packed weights apply unchanged. The copies are kept
per model (weakly: they go when the model goes) and re-packed by the next `packed_model` call
when a weight changed (an optimizer step, `load_state_dict`, `.to()`); a stale copy is never
used: that product falls back to `F.linear` on the current weight.

precision: None (the weights' dtype), "float32" (the same arithmetic as `F.linear` up to
summation order) or "bfloat16" (lossy: weights and the matrices' inputs and outputs rounded to
bfloat16, fp32 accumulation inside oneDNN; half the bytes read per step).
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.inference.fast_forward import decoding_forward
from audiolm.models.lm.packed_linear import DECODE_WEIGHTS, PackedLinear, packing_available, packing_dtype
from audiolm.models.lm.transformer import Transformer

# model -> {layer: its packed copy}; the values hold the layers and their weights, never the model
_COPIES: weakref.WeakKeyDictionary[Transformer, dict[nn.Linear, PackedLinear]] = weakref.WeakKeyDictionary()


class PackedModel:
    """`model(tokens, input_pos, kv_len, last_only)` for decoding, with the products through
    `copies` (layer -> PackedLinear); a full pass (input_pos None) is the model's own."""

    def __init__(self, model: Transformer, copies: dict[nn.Linear, PackedLinear], dtype: torch.dtype) -> None:
        self.model = model
        self.copies = copies
        self.dtype = dtype  # the dtype the packed products multiply in

    def linear(self, x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        packed = self.copies.get(layer)
        if packed is None or not packed.fresh(layer.weight):
            return F.linear(x, layer.weight)
        return packed(x)

    def __call__(
        self,
        tokens: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        kv_len: int | None = None,
        last_only: bool = False,
        left_pad: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if input_pos is None:
            return self.model(tokens, last_only=last_only, left_pad=left_pad)
        return decoding_forward(self.model, tokens, input_pos, kv_len, last_only, linear=self.linear, left_pad=left_pad)


def check_precision(precision: str | None) -> None:
    if precision is not None and precision not in DECODE_WEIGHTS:
        raise ValueError(f"decode weights must be one of {DECODE_WEIGHTS} or None, got {precision!r}")


def packed_model(model: Transformer, precision: str | None = None) -> PackedModel | None:
    """The model's packed decoding wrapper, packing (or re-packing stale or other-precision
    copies) as needed; None where packing does not apply: weights off the CPU, not float32 /
    bfloat16, or a torch without oneDNN's linear ops (the copies are dropped then)."""
    check_precision(precision)
    weight = model.output.weight
    if not (weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.bfloat16) and packing_available()):
        _COPIES.pop(model, None)
        return None
    dtype = packing_dtype(getattr(torch, precision) if precision else weight.dtype)  # float32 without bf16 kernels
    copies = _COPIES.setdefault(model, {})
    for layer in model.linears():
        current = copies.get(layer)
        if current is None or not current.matches(layer.weight, dtype):
            copies[layer] = PackedLinear(layer.weight, dtype)
    return PackedModel(model, copies, dtype)


def packed_copies(model: Transformer) -> dict[nn.Linear, PackedLinear]:
    """The model's current (fresh) packed copies, by layer; empty when it has none."""
    return {layer: p for layer, p in _COPIES.get(model, {}).items() if p.fresh(layer.weight)}
