"""What this CPU's bfloat16 kernels can do, checked once before any bf16 CPU path is taken.

oneDNN packs and multiplies bf16 matrices only on CPUs with AVX-512 BW/VL/DQ, AVX-NE-CONVERT
or AMX; elsewhere (an AVX2-only CPU, say) `mkldnn._reorder_linear_weight` in bf16 raises
and CPU autocast in bf16 falls back to slow reference kernels. Callers ask
`cpu_bf16_kernels()` and fall back to float32 with `bf16_fallback_reason()` as their one line.
"""

from __future__ import annotations

import functools

import torch

BF16_NEEDS = "AVX-512 BW/VL/DQ, AVX-NE-CONVERT or AMX"


def cpu_capability() -> str:
    """torch's name for the vector ISA it dispatches to: "AVX512", "AVX2", "DEFAULT", ..."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # torch builds without the query
        return "unknown"


@functools.cache
def _onednn_bf16() -> bool:
    """oneDNN's own check when this torch has it, else try packing a 4x4 bf16 matrix once."""
    if not torch.backends.mkldnn.is_available():
        return False
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if check is not None:
        try:
            return bool(check())
        except RuntimeError:
            pass
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.ones(4, 4, dtype=torch.bfloat16), 1)
        return True
    except (AttributeError, RuntimeError):
        return False


def cpu_bf16_kernels() -> bool:
    """Whether bf16 matrix products run on native kernels on this CPU."""
    return cpu_capability() != "DEFAULT" and _onednn_bf16()


def bf16_fallback_reason() -> str:
    return f"this CPU (torch capability {cpu_capability()}) has no bf16 matrix kernels (oneDNN needs {BF16_NEEDS})"
