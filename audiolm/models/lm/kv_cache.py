"""A static key/value cache: buffers preallocated once, written in place at `input_pos`.

Preallocation (instead of `torch.cat` per token) keeps memory bounded and every tensor shape
fixed, which is what lets the one-token step be graph-captured or compiled. The buffers are
non-persistent so they never enter a state dict or a checkpoint.

Rows of different lengths (a left-padded batch) share the slots: every row writes the same
slot per step, so the writes stay one `index_copy_`. What differs per row lives in the
transformer (`left_pad`): the position its token at a slot has, and which slots it may see.
"""

from __future__ import annotations

import torch
from torch import nn


class KVCache(nn.Module):
    k_cache: torch.Tensor  # buffer
    v_cache: torch.Tensor  # buffer

    def __init__(
        self,
        batch_size: int,
        n_heads: int,
        max_seq_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        shape = (batch_size, n_heads, max_seq_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    @property
    def max_seq_len(self) -> int:
        return self.k_cache.shape[2]

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v [B, H, T, D] at positions input_pos [T]; return the whole cache [B, H, S, D]."""
        self.k_cache.index_copy_(2, input_pos, k)
        self.v_cache.index_copy_(2, input_pos, v)
        return self.k_cache, self.v_cache
