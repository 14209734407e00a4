"""A weight matrix reordered once by oneDNN, for the CPU decoding step (`inference/packed_step.py`).

A decoding step at batch 1 is a chain of matrix-vector products bound by how fast the weights
are read. `F.linear` (MKL `sgemm`, which takes a generic path on some CPUs) reads them well
below the memory bandwidth; oneDNN's reordered copy (`mkldnn._reorder_linear_weight`, applied
with `mkldnn._linear_pointwise`) reads faster, in fp32 and more so in bfloat16, and stays
faster at a prefill's tens of rows (figures: BENCHMARKS.md, "LM decoding").

Precision "float32" is the same arithmetic as `F.linear` up to summation order (logits agree
to ~1e-6). "bfloat16" rounds weights and the matrix inputs/outputs to bfloat16 and
accumulates in fp32 inside oneDNN: a lossy choice, opt-in (`decode(..., decode_weights=...)`).
"""

from __future__ import annotations

import functools
import sys

import torch

from audiolm.core.cpu_features import bf16_fallback_reason, cpu_bf16_kernels

DECODE_WEIGHTS = ("float32", "bfloat16")


@functools.cache
def packing_available() -> bool:
    """Whether this torch build has the oneDNN linear ops (x86/ARM CPU builds with MKLDNN)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        w = torch.ones(4, 4)
        packed = torch.ops.mkldnn._reorder_linear_weight(w, 1)
        y = torch.ops.mkldnn._linear_pointwise(torch.ones(1, 4), packed, None, "none", [], "")
        return bool(torch.allclose(y, torch.full((1, 4), 4.0)))
    except (AttributeError, RuntimeError):
        return False


def packing_dtype(wanted: torch.dtype) -> torch.dtype:
    """The dtype to pack decoding weights in: `wanted`, unless it is bfloat16 on a CPU without
    bf16 kernels (oneDNN's bf16 reorder raises there): then float32, with one warning line on
    stderr, once per process (bf16 weights packed as float32 give the same products)."""
    if wanted != torch.bfloat16 or cpu_bf16_kernels():
        return wanted
    _warn_once(f"audiolm: warning: {bf16_fallback_reason()}; decoding weights stay float32")
    return torch.float32


@functools.cache
def _warn_once(line: str) -> None:
    print(line, file=sys.stderr)


class PackedLinear:
    """`F.linear(x, weight)` (no bias) through a oneDNN-reordered copy of `weight` [N, K] in
    `dtype`; x [..., K] of any float dtype -> [..., N] in x's dtype. Remembers which weight,
    at which version and storage, it was packed from: `fresh` is False once that changes
    (an optimizer step, `load_state_dict`, `.to()`), and callers then fall back or re-pack."""

    def __init__(self, weight: torch.Tensor, dtype: torch.dtype) -> None:
        with torch.no_grad():
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(dtype), 1)
        self.dtype = dtype
        self.weight = weight
        self.version = weight._version
        self.ptr = weight.data_ptr()

    def fresh(self, weight: torch.Tensor) -> bool:
        return weight is self.weight and weight._version == self.version and weight.data_ptr() == self.ptr

    def matches(self, weight: torch.Tensor, dtype: torch.dtype) -> bool:
        return self.fresh(weight) and dtype == self.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.mkldnn._linear_pointwise(x.to(self.dtype), self.packed, None, "none", [], "")
        return y if y.dtype == x.dtype else y.to(x.dtype)
