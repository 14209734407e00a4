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

import math
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
        for name in ("temperature", "top_p"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
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
    """Per-sample seed states [B] (int64 in [0, 2^32), already hashed) on `device`.

    Seeds are integers in [0, 2^32): `hash32` is a bijection there, so distinct seeds give
    distinct streams. Others are refused (ValueError) rather than folded onto that range,
    where -1 and 0, or 2^32 and 1, would draw the same samples."""
    if isinstance(seeds, torch.Tensor):
        if seeds.is_floating_point() or seeds.dtype == torch.bool:
            raise ValueError(f"seeds must be integers, got {seeds.dtype}")
        values = seeds.to(device=device, dtype=torch.int64)
        if values.numel() and (int(values.min()) < 0 or int(values.max()) > _MASK32):
            raise ValueError(
                f"seeds must be in [0, {_MASK32}], got values from {int(values.min())} to {int(values.max())}"
            )
    else:
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= _MASK32:
                raise ValueError(f"seeds must be integers in [0, {_MASK32}], got {s!r}")
        values = torch.tensor([int(s) for s in seeds], dtype=torch.int64, device=device)
    return hash32(values)


def position_seeds(seeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Seed states [B] (`seeds_tensor`) and absolute positions [n] -> one state per (sample,
    position) [B, n]. For samplers that draw many positions in one call (the Bark-style fine
    stage): flatten to [B*n] and pass to `sample` with draws of [B*n, V]; each draw then
    depends only on (seed, position, step), whatever the batch or window."""
    keys = hash32((positions.to(torch.int64) * 0x2545F491 + 0x1B873593) & _MASK32)  # [n]
    return hash32(seeds[:, None] ^ keys[None])


_VOCAB_KEYS: dict[tuple[int, str], torch.Tensor] = {}


def vocab_keys(vocab_size: int, device: torch.device) -> torch.Tensor:
    """A fixed random 32-bit key per vocabulary id [V], cached per (size, device). Never cached
    while a CUDA graph is being captured (a tensor made then holds values only on replay);
    the graph step runs eagerly first, which fills the cache."""
    device = torch.device(device)
    capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
    key = (vocab_size, str(device))
    if capturing or key not in _VOCAB_KEYS:
        ids = torch.arange(vocab_size, device=device, dtype=torch.int64)
        keys = hash32((ids * 0x9E3779B9 + 0x632BE5AB) & _MASK32)
        if capturing:
            return keys
        _VOCAB_KEYS[key] = keys
    return _VOCAB_KEYS[key]


def gumbel_noise(
    seeds: torch.Tensor, step: torch.Tensor, vocab_size: int, ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Gumbel(0, 1) noise for seed states [B] (`seeds_tensor`), draw number step [1] or per row
    [B] (int64),
    for every id of the vocabulary ([B, V] out) or only for `ids` [B, n] ([B, n] out). An id's
    noise is the same either way, so a draw among the top-k candidates equals the draw over
    the whole vocabulary with the other ids masked out."""
    keys = vocab_keys(vocab_size, seeds.device)
    keys = keys[None] if ids is None else keys[ids]  # [1, V] or [B, n]
    state = hash32(seeds[:, None] ^ step.view(-1, 1))  # [B, 1]
    return gumbel_from_bits(hash32(state ^ keys))


# the largest float32 below 1: (2^24 - 0.5) / 2^24 would round up to 1.0 in float32
_BELOW_ONE = 1.0 - 2.0**-24


def gumbel_from_bits(bits: torch.Tensor) -> torch.Tensor:
    """32-bit hashes (int64) -> Gumbel(0, 1) noise (float32), always finite. The top 24 bits
    give a uniform in (0, 1); its largest value is clamped below 1, where float32 rounding
    would give 1.0 and the noise +inf: added to a masked (-inf) logit that is NaN, which argmax
    picks, and a token outside the allowed vocabulary came out (once in 2^24 draws per id)."""
    uniform = (((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))).clamp(max=_BELOW_ONE)
    return -torch.log(-torch.log(uniform))


def sample(
    logits: torch.Tensor,
    config: SamplingConfig,
    seeds: torch.Tensor,
    step: torch.Tensor,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Next tokens [B] from logits [B, V]; `allowed` is a bool mask [V] or [B, V].

    Order: allowed-vocabulary mask, then top-k, then top-p over the renormalised top-k
    distribution (temperature applied), then a Gumbel-max draw. With top-k only the k
    candidates get noise, which keeps a step cheap on CPU.
    """
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    V = logits.shape[-1]
    ids: torch.Tensor | None = None
    if config.top_k and config.top_k < V:
        logits, ids = torch.topk(logits, config.top_k, dim=-1)  # sorted, descending
    elif config.top_p < 1.0:
        logits, ids = torch.sort(logits, dim=-1, descending=True)
    scaled = logits if config.temperature == 1.0 else logits / config.temperature
    if config.top_p < 1.0:
        probs = torch.softmax(scaled, dim=-1)
        # drop an entry when the entries above it already hold top_p of the mass
        scaled = scaled.masked_fill((probs.cumsum(dim=-1) - probs) > config.top_p, float("-inf"))
    noise = gumbel_noise(seeds, step, V, ids)
    choice = (scaled + noise).argmax(dim=-1)  # [B]
    return choice if ids is None else ids.gather(-1, choice[:, None])[:, 0]
