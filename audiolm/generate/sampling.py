"""Sampling on the device: temperature, top-k, top-p, an allowed-vocabulary mask, per-sample seeds.

Randomness comes from a counter-based hash, not from generator state: the Gumbel noise for
sample b, draw number `step` and vocabulary entry v is a pure function of (seed_b, step, v).
So
- a batch of B samples draws exactly what B separate runs with the same seeds draw
  (batched generation == per-sample generation);
- nothing is read back to the host and no RNG state advances, so the step can be
  graph-captured or compiled and replayed;
- `argmax(logits / temperature + gumbel)` over the kept entries is an exact sample from
  `softmax(logits / temperature)` restricted to them (the Gumbel-max trick).
The hash is "lowbias32" (Chris Wellons) on 32-bit values held in int64 tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_MASK32 = 0xFFFFFFFF


@dataclass
class SamplingConfig:
    """temperature 0 means greedy; top_k 0 and top_p 1.0 switch those filters off."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int64 tensors holding values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def seeds_tensor(seeds: list[int] | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Per-sample seeds [B] as int64 in [0, 2^32) on `device` (any Python int is accepted)."""
    if isinstance(seeds, torch.Tensor):
        return (seeds.to(device=device, dtype=torch.int64)) & _MASK32
    mixed = [(int(s) ^ (int(s) >> 32)) & _MASK32 for s in seeds]
    return torch.tensor(mixed, dtype=torch.int64, device=device)


def gumbel_noise(seeds: torch.Tensor, step: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Gumbel(0, 1) noise [B, V] for seeds [B] (int64) and draw number step [1] (int64)."""
    vocab = torch.arange(vocab_size, device=seeds.device, dtype=torch.int64)
    state = hash32(hash32(seeds[:, None]) ^ (step.view(1, 1) & _MASK32))  # [B, 1]
    bits = hash32(state ^ hash32((vocab * 0x9E3779B9 + 0x632BE5AB) & _MASK32)[None])  # [B, V]
    # 24 random bits -> uniform in (0, 1), never exactly 0 or 1
    uniform = ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))
    return -torch.log(-torch.log(uniform))


def filter_logits(logits: torch.Tensor, config: SamplingConfig, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """logits [B, V] (float32) with disallowed / top-k / top-p-excluded entries set to -inf."""
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    if config.top_k and config.top_k < logits.shape[-1]:
        kth = torch.topk(logits, config.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits / max(config.temperature, 1e-6), dim=-1)
        # drop an entry when the entries above it already hold top_p of the mass
        drop_sorted = (probs.cumsum(dim=-1) - probs) > config.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample(
    logits: torch.Tensor,
    config: SamplingConfig,
    seeds: torch.Tensor,
    step: torch.Tensor,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Next tokens [B] from logits [B, V]; `allowed` is a bool mask [V] or [B, V]."""
    logits = filter_logits(logits.float(), config, allowed)
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    noise = gumbel_noise(seeds, step, logits.shape[-1])
    return (logits / config.temperature + noise).argmax(dim=-1)
