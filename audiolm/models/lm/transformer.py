"""The one decoder-only transformer every LM stage uses (a stage is a token layout, not a class).

Pre-norm blocks: x + Attention(RMSNorm(x)), then x + MLP(RMSNorm(x)); rotary position
embeddings (RoPE on interleaved pairs, one complex multiply); `F.scaled_dot_product_attention`;
SwiGLU or GELU MLP; a final RMSNorm and an untied output projection. The architecture matches
Hugging Face's Llama (the benchmark's peer) up to the RoPE pair convention.

Two ways to call `forward(tokens [B, T], input_pos=None, kv_len=None, left_pad=None)`:
- training / a full pass: `input_pos=None` — plain causal attention over the T tokens, no cache;
- decoding (gpt-fast style): after `setup_caches(B, S)`, `input_pos [T]` says where the tokens
  sit; their keys and values are written into the static cache at those positions and the
  queries attend to the cache through a causal mask. `kv_len` (a Python int, equal to
  `input_pos[-1] + 1`) lets an eager caller attend to only the first `kv_len` cache slots,
  which saves reading the unused rest of the cache on CPU; graph-captured steps leave it
  None and keep every shape static.

Rows of different lengths batch together left-padded: `left_pad [B]` says how many leading
positions (cache slots, when decoding) of each row are padding. Row b's tokens then sit at
positions `slot - left_pad[b]` (its RoPE rotations are those of the row alone) and its queries
see no padding slot (a key-padding mask on top of the causal one), so each row's logits are
those of the row run alone, up to float summation order. The cache itself needs nothing per
row: every row writes the same slot per step, only its positions and its mask differ. A
padding query sees only its own slot, so no softmax row is empty (an empty one would give
NaNs that the next layer's keys and values would carry into every row's attention).

The model is plain: it always multiplies by its own parameters (`F.linear`), rotates with the
complex RoPE table and attends with `F.scaled_dot_product_attention`. The fast decoding paths
wrap it from outside (`audiolm/inference/`): `packed_step.py` runs the same step through
prepacked oneDNN weights, `compiled_step.py` through `torch.compile`, `cuda_graph.py` replays a
captured one. They reuse the pieces the forward pass is built from (`embed`, `cache_mask`,
`Attention.attend`, `MLP.activation`), so only the matrix products and the attention kernel
differ.

A model built with `causal=False` (the Bark-style fine stage, `fine_bark.py`) attends in both
directions and is only called without a cache. Its inputs may carry several tokens per
position, tokens [B, T, L]: the L embeddings are summed, and a negative id is an empty slot
(adds nothing). A position then stands for one acoustic frame and its known RVQ levels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.kv_cache import KVCache

# attention(q, k, v, attn_mask=None) -> y, all [B, H, T, D] (q) / [B, H, L, D] (k, v)
AttentionKernel = Callable[..., torch.Tensor]


def rope_table(max_seq_len: int, head_dim: int, base: float) -> torch.Tensor:
    """Rotations e^(i * pos * freq) [max_seq_len, head_dim // 2] (complex64), computed in
    float64 so long positions stay accurate."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """x [..., D] read as D/2 complex pairs (x[2i], x[2i+1]), each rotated by its angle:
    one complex multiply, a single kernel. rotation broadcastable to [..., D/2] (complex), or
    its `view_as_real` [..., D/2, 2]: the same product written on (re, im) pairs, which
    `torch.compile` can fuse (inductor generates no code for complex ops)."""
    if not rotation.is_complex():
        re, im = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # [..., D/2] each
        cos, sin = rotation.unbind(-1)
        return torch.stack((re * cos - im * sin, re * sin + im * cos), dim=-1).flatten(-2).type_as(x)
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotation).flatten(-2).type_as(x)


def padding_mask(allowed: torch.Tensor, positions: torch.Tensor, left_pad: torch.Tensor) -> torch.Tensor:
    """allowed [T, L] (the causal mask of queries at slots positions [T]) and left_pad [B] ->
    [B, 1, T, L]: row b's queries may not see its first left_pad[b] slots, except that a query
    always sees its own slot (a padding query sees only that: no empty softmax row)."""
    slots = torch.arange(allowed.shape[-1], device=allowed.device)
    real = slots[None] >= left_pad[:, None]  # [B, L]
    own = slots[None] == positions[:, None]  # [T, L]
    return (allowed[None] & (real[:, None] | own[None]))[:, None]


class RMSNorm(nn.Module):
    """x / rms(x) * weight, with rms = sqrt(mean(x^2) + eps).

    Written as vector_norm + one addcmul (eps kept as a 0-dim buffer, so no Python scalar
    gets wrapped per call): on CPU at batch 1 this is cheaper than `F.rms_norm`, and a
    decoding step calls it 2 * n_layers + 1 times. x [..., dim] -> [..., dim]."""

    eps: torch.Tensor  # buffer

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.ones(dim))
        self.register_buffer("eps", torch.tensor(eps), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)  # [..., 1]
        return x * torch.rsqrt(torch.addcmul(self.eps, norm, norm, value=1.0 / self.dim)) * self.weight


class Attention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.causal = config.causal
        self.wqkv = nn.Linear(config.dim, 3 * config.dim, bias=False)  # fused: one matmul
        self.wo = nn.Linear(config.dim, config.dim, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(
        self,
        x: torch.Tensor,
        rotation: torch.Tensor,
        input_pos: torch.Tensor | None,
        mask: torch.Tensor | None,
        kv_len: int | None,
    ) -> torch.Tensor:
        # weights used through F.linear, not the modules' __call__: at batch 1 on CPU a
        # decoding step is short enough that nn.Module call overhead shows
        qkv = F.linear(x, self.wqkv.weight)  # [B, T, 3C]
        return F.linear(self.attend(qkv, rotation, input_pos, mask, kv_len), self.wo.weight)

    def attend(
        self,
        qkv: torch.Tensor,
        rotation: torch.Tensor,
        input_pos: torch.Tensor | None,
        mask: torch.Tensor | None,
        kv_len: int | None,
        attention: AttentionKernel = F.scaled_dot_product_attention,
    ) -> torch.Tensor:
        """Projected qkv [B, T, 3C] -> attention output [B, T, C], before the output projection:
        RoPE on q and k, then (decoding, input_pos [T]) the cache write and read of the first
        kv_len slots, and `attention` over the heads. rotation [T, 1, 1, D/2] (one position per
        token) or [B, T, 1, 1, D/2] (per row: a left-padded batch); mask None, bool [T, L] or
        [B, 1, T, L] (True = may attend)."""
        B, T, _ = qkv.shape
        qkv = qkv.view(B, T, 3, self.n_heads, self.head_dim)
        # RoPE on queries and keys at once: qk [B, T, 2, H, D], rotation [T, 1, 1, D/2]
        qk = apply_rope(qkv[:, :, :2], rotation)
        q, k = qk.unbind(2)
        v = qkv[:, :, 2]
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
        if input_pos is None:
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                is_causal=self.causal and mask is None,
                dropout_p=self.dropout if self.training else 0.0,
            )
        else:
            assert self.kv_cache is not None, "call setup_caches() before decoding with input_pos"
            k, v = self.kv_cache.update(input_pos, k, v)  # [B, H, S, D]
            if kv_len is not None:
                k, v = k[:, :, :kv_len], v[:, :, :kv_len]
            y = attention(q, k, v, attn_mask=mask)
        return y.transpose(1, 2).reshape(B, T, -1)  # [B, T, H*D]


class MLP(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        hidden = config.mlp_hidden_dim
        self.swiglu = config.mlp == "swiglu"
        # SwiGLU: gate and up projections fused into one matmul
        self.w_in = nn.Linear(config.dim, (2 if self.swiglu else 1) * hidden, bias=False)
        self.w_out = nn.Linear(hidden, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.activation(F.linear(x, self.w_in.weight)), self.w_out.weight)

    def activation(self, h: torch.Tensor) -> torch.Tensor:
        """w_in's output [..., 2 * hidden] (SwiGLU: gate, up) or [..., hidden] -> [..., hidden]."""
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            return F.silu(gate) * up
        return F.gelu(h)


class Block(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, eps=config.norm_eps)
        self.attention = Attention(config)
        self.mlp_norm = RMSNorm(config.dim, eps=config.norm_eps)
        self.mlp = MLP(config)
        self.dropout = config.dropout

    def forward(self, x, rotation, input_pos, mask, kv_len):
        h = self.attention.forward(self.attention_norm.forward(x), rotation, input_pos, mask, kv_len)
        if self.dropout and self.training:
            h = F.dropout(h, self.dropout, training=True)
        x = x + h
        h = self.mlp.forward(self.mlp_norm.forward(x))
        if self.dropout and self.training:
            h = F.dropout(h, self.dropout, training=True)
        return x + h


class Transformer(nn.Module):
    rope: torch.Tensor  # buffer

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if config.vocab_size < 1:
            raise ValueError("TransformerConfig.vocab_size must be set (the layout fills it in)")
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        # a ModuleList, typed as the blocks it holds (its items are plain Modules to mypy)
        self.layers = cast("list[Block]", nn.ModuleList(Block(config) for _ in range(config.n_layers)))
        self.norm = RMSNorm(config.dim, eps=config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.register_buffer(
            "rope", rope_table(config.max_seq_len, config.head_dim, config.rope_base), persistent=False
        )
        self.causal_mask: torch.Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue  # norm weights keep their ones
            # residual projections scaled down with depth (GPT-2) so the stream does not grow
            scale = 1 / math.sqrt(2 * self.config.n_layers) if name.endswith(("wo.weight", "w_out.weight")) else 1
            nn.init.normal_(p, mean=0.0, std=std * scale)

    def _apply(self, fn, recurse=True):
        # `.to(dtype)` must not turn the complex RoPE table real: let it follow the device only
        rope = self._buffers.pop("rope")
        try:
            module = super()._apply(fn, recurse)
        finally:
            self._buffers["rope"] = rope.to(self.output.weight.device)
        return module

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def linears(self) -> list[nn.Linear]:
        """Every matrix a decoding step multiplies by (not the embedding table)."""
        out = [self.output]
        for layer in self.layers:
            out += [layer.attention.wqkv, layer.attention.wo, layer.mlp.w_in, layer.mlp.w_out]
        return out

    # -- caches ---------------------------------------------------------------------------------

    def setup_caches(
        self,
        batch_size: int,
        max_seq_len: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Preallocate a KV cache of `max_seq_len` (default: the trained context) per layer."""
        max_seq_len = max_seq_len or self.config.max_seq_len
        if max_seq_len > self.config.max_seq_len:
            raise ValueError(f"cache length {max_seq_len} exceeds max_seq_len {self.config.max_seq_len}")
        weight = self.output.weight
        dtype = dtype or weight.dtype
        device = device or weight.device
        for layer in self.layers:
            layer.attention.kv_cache = KVCache(
                batch_size, self.config.n_heads, max_seq_len, self.config.head_dim, dtype=dtype, device=device
            )
        self.causal_mask = torch.ones(max_seq_len, max_seq_len, dtype=torch.bool, device=device).tril()

    def remove_caches(self) -> None:
        for layer in self.layers:
            layer.attention.kv_cache = None
        self.causal_mask = None

    @property
    def cache_shape(self) -> tuple[int, int] | None:
        """(batch_size, max_seq_len) of the current cache, or None."""
        cache = self.layers[0].attention.kv_cache if len(self.layers) else None
        return None if cache is None else (cache.k_cache.shape[0], cache.max_seq_len)

    # -- forward --------------------------------------------------------------------------------

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] -> x [B, T, C]; tokens [B, T, L]: the L embeddings summed, ids < 0 skipped."""
        if tokens.dim() == 3:
            present = tokens >= 0  # [B, T, L]
            x = F.embedding(tokens.clamp_min(0), self.tok_embeddings.weight)  # [B, T, L, C]
            return (x * present.unsqueeze(-1).to(x.dtype)).sum(2)  # [B, T, C]
        return F.embedding(tokens, self.tok_embeddings.weight)

    def cache_mask(
        self, input_pos: torch.Tensor, kv_len: int | None, left_pad: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Which cache slots the queries at input_pos [T] may see: bool [T, S] (kv_len None: a
        static shape for graph capture), [T, kv_len], or None for one query that sees every
        slot before kv_len. With left_pad [B]: [B, 1, T, L], row b's first left_pad[b] slots
        hidden from its real queries (`padding_mask`)."""
        assert self.causal_mask is not None, "call setup_caches() before decoding with input_pos"
        if left_pad is not None:
            causal = self.causal_mask[input_pos] if kv_len is None else self.causal_mask[input_pos, :kv_len]
            return padding_mask(causal, input_pos, left_pad)
        if kv_len is None:
            return self.causal_mask[input_pos]
        if input_pos.shape[0] == 1:
            return None
        return self.causal_mask[input_pos, :kv_len]

    def rotation(
        self, positions: torch.Tensor, left_pad: torch.Tensor | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """RoPE rotations for the tokens at slots positions [T]: [T, 1, 1, D/2], or per row
        [B, T, 1, 1, D/2] with left_pad [B] (row b's slot p is its position p - left_pad[b];
        padding slots take position 0). table: `self.rope` (default) or its `view_as_real`."""
        table = self.rope if table is None else table
        if left_pad is None:
            return table[positions][:, None, None]
        per_row = (positions[None] - left_pad[:, None]).clamp_min(0)  # [B, T]
        return table[per_row][:, :, None, None]

    def forward(
        self,
        tokens: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        kv_len: int | None = None,
        last_only: bool = False,
        left_pad: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens [B, T] (or [B, T, L], summed per position) -> logits [B, T, V] (or [B, 1, V]
        with last_only). left_pad [B] (int64): leading padding positions per row (see the
        module docstring); the logits at padding positions mean nothing."""
        T = tokens.shape[1]
        if input_pos is not None and not self.config.causal:
            raise ValueError("a non-causal model has no KV-cache decoding: call it without input_pos")
        if input_pos is None:
            if T > self.config.max_seq_len:
                raise ValueError(f"sequence of {T} tokens exceeds max_seq_len {self.config.max_seq_len}")
            mask = None
            if left_pad is None:
                rotation = self.rope[:T, None, None]  # [T, 1, 1, D/2]
            else:
                positions = torch.arange(T, device=tokens.device)
                rotation = self.rotation(positions, left_pad)  # [B, T, 1, 1, D/2]
                causal = torch.ones(T, T, dtype=torch.bool, device=tokens.device)
                mask = padding_mask(causal.tril() if self.config.causal else causal, positions, left_pad)
        else:
            rotation = self.rope[input_pos, None, None] if left_pad is None else self.rotation(input_pos, left_pad)
            mask = self.cache_mask(input_pos, kv_len, left_pad)
        x = self.embed(tokens)  # [B, T, C]
        for layer in self.layers:
            x = layer.forward(x, rotation, input_pos, mask, kv_len)
        if last_only:
            x = x[:, -1:]
        return F.linear(self.norm.forward(x), self.output.weight)  # [B, T, V]
