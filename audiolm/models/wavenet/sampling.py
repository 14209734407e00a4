"""What fast and naive generation share: seeded sampling noise and the checked inputs.

Sampling is Gumbel-max: sample = argmax(logits / temperature + g) with g ~ Gumbel(0, 1), i.e.
argmax(logits + temperature * g), which draws from softmax(logits / temperature). The noise is
drawn ahead of time from one CPU generator per batch row (seed + row) in fixed-size chunks, so
the fast and the naive path see exactly the same noise for every sample and produce the same
samples; and row i of a batch equals a batch-1 run with seed + i.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audiolm.core.errors import ConfigError

NOISE_CHUNK = 1024  # samples of noise drawn at a time (per row)


class GumbelNoise:
    """Per-step Gumbel noise [B, classes]; `chunk()` returns the next [NOISE_CHUNK, B, classes]."""

    def __init__(self, seed: int, batch_size: int, classes: int, device: torch.device) -> None:
        self.generators = [torch.Generator().manual_seed(int(seed) + row) for row in range(batch_size)]
        self.classes, self.device = classes, device

    def chunk(self) -> torch.Tensor:
        rows = []
        for g in self.generators:
            e = torch.empty(NOISE_CHUNK, self.classes).exponential_(generator=g)
            rows.append(-e.clamp_min(1e-30).log())  # -log(Exp(1)) ~ Gumbel(0, 1)
        return torch.stack(rows, dim=1).to(self.device)  # [NOISE_CHUNK, B, classes]


@dataclass
class GenerationInputs:
    prompt: torch.Tensor  # ids [B, P] on the model's device (P may be 0)
    bias: torch.Tensor | None  # per-layer gate biases [B, L*2D, F] at the frame rate, or None
    total: int  # P + new samples


def prepare_inputs(
    model,
    n_samples: int,
    batch_size: int,
    prompt: torch.Tensor | None,
    gc: torch.Tensor | int | None,
    codes: torch.Tensor | None,
    temperature: float,
) -> GenerationInputs:
    """Check every generation argument against the model's config; clear errors for misuse."""
    cfg = model.config
    device = model.device
    if n_samples < 0:
        raise ConfigError(f"number of samples must be >= 0, got {n_samples}")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if prompt is None:
        prompt = torch.zeros(batch_size, 0, dtype=torch.long)
    prompt = torch.as_tensor(prompt)
    if prompt.dim() == 1:
        prompt = prompt.unsqueeze(0)
    if prompt.dim() != 2 or prompt.shape[0] not in (1, batch_size):
        raise ConfigError(f"prompt ids must be [P] or [batch={batch_size}, P], got shape {list(prompt.shape)}")
    if prompt.dtype.is_floating_point:
        raise ConfigError("prompt must be μ-law ids (use model.encode_audio on float audio)")
    if prompt.numel() and (int(prompt.min()) < 0 or int(prompt.max()) >= cfg.quantization_channels):
        raise ConfigError(f"prompt ids must lie in 0..{cfg.quantization_channels - 1}")
    prompt = prompt.expand(batch_size, -1).long().to(device)
    total = prompt.shape[1] + n_samples
    gc = model.conditioning.check_gc(gc, batch_size)
    codes = model.conditioning.check_codes(codes, batch_size)
    if codes is not None:
        covered = codes.shape[-1] * cfg.lc_hop
        if total > covered:
            raise ConfigError(
                f"codec codes cover {codes.shape[-1]} frames = {covered} samples, but "
                f"{prompt.shape[1]} prompt + {n_samples} new samples were asked for"
            )
    bias = model.conditioning.layer_bias(
        None if gc is None else torch.as_tensor(gc).to(device), None if codes is None else codes.to(device)
    )
    return GenerationInputs(prompt=prompt, bias=bias, total=total)
