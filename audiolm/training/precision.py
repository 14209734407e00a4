"""Mixed precision for the Trainer: which autocast dtype runs where, and fp16 loss scaling with
one GradScaler step per optimizer.

The Trainer does not hand precision to accelerate. On CPU accelerate silently ignores "fp16"
(no autocast, no scaler). With two optimizers (codec generator + discriminator) its recipe is
wrong: `Accelerator.clip_grad_norm_` unscales every prepared optimizer and each prepared
optimizer's `step()` calls `scaler.update()`, so the discriminator's gradients, unscaled
again after the generator's update, step divided by the scale twice. Here (torch's AMP recipe
for several optimizers) each optimizer is unscaled exactly once, clipped, stepped through the
scaler, and the scaler updates once per training step, after every optimizer has stepped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audiolm.core.cpu_features import bf16_fallback_reason, cpu_bf16_kernels


@dataclass(frozen=True)
class Precision:
    """What a run computes in: `name` "no" | "bf16" | "fp16"; `note` is the one line said at
    start-up when the user asked for mixed precision ("" otherwise)."""

    name: str
    device_type: str
    note: str = ""

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def scaler(self) -> torch.amp.GradScaler | None:
        """fp16 needs loss scaling (its exponent range underflows small gradients); bf16 does not."""
        return torch.amp.GradScaler(self.device_type) if self.name == "fp16" else None


def resolve_precision(requested: str, device_type: str) -> Precision:
    """ "auto": bf16 on a GPU that has it, else fp32. On CPU (where fp32 is faster for small
    models, so "auto" stays fp32) an explicit "bf16" runs bf16 autocast when the CPU has bf16
    kernels and fp32 otherwise; "fp16" runs fp16 autocast with a gradient scaler (correct on any
    CPU, slow without fp16 kernels: a check of the fp16 path, not a speed-up)."""
    if device_type == "cuda":
        if requested == "auto":
            return Precision("bf16" if torch.cuda.is_bf16_supported() else "no", device_type)
        if requested == "bf16" and not torch.cuda.is_bf16_supported():
            return Precision("no", device_type, "mixed precision: this GPU has no bf16; training in fp32")
        note = f"mixed precision: {requested} autocast on the GPU" if requested != "no" else ""
        return Precision(requested, device_type, note)
    if requested in ("auto", "no"):
        return Precision("no", device_type)
    if requested == "bf16":
        if cpu_bf16_kernels():
            return Precision("bf16", device_type, "mixed precision: bf16 autocast on the CPU (native bf16 kernels)")
        return Precision("no", device_type, f"mixed precision: {bf16_fallback_reason()}; training in fp32")
    return Precision(
        "fp16",
        device_type,
        "mixed precision: fp16 autocast on the CPU with a gradient scaler "
        "(slow without fp16 kernels: for checking, use bf16 for speed)",
    )
