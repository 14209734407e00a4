"""The one decoder-only transformer every LM stage uses (a stage is a token layout, not a class).

Pre-norm blocks: x + Attention(RMSNorm(x)), then x + MLP(RMSNorm(x)); rotary position
embeddings (RoPE, "rotate half" convention); `F.scaled_dot_product_attention`; SwiGLU or GELU
MLP; a final RMSNorm and an untied output projection.

Two ways to call `forward(tokens [B, T], input_pos=None, kv_len=None)`:
- training / a full pass: `input_pos=None` — plain causal attention over the T tokens, no cache;
- decoding (gpt-fast style): after `setup_caches(B, S)`, `input_pos [T]` says where the tokens
  sit; their keys and values are written into the static cache at those positions and the
  queries attend to the cache through a causal mask. `kv_len` (a Python int, equal to
  `input_pos[-1] + 1`) lets an eager caller attend to only the first `kv_len` cache slots,
  which saves reading the unused rest of the cache on CPU; graph-captured steps leave it
  None and keep every shape static.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.generate.kv_cache import KVCache
from audiolm.lm.config import TransformerConfig


def rope_tables(max_seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [max_seq_len, head_dim // 2], computed in float64 for accuracy at long positions."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, T, ..., D]; cos/sin broadcastable to x[..., :D/2] (e.g. [T, 1, 1, D/2])."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Attention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.wqkv = nn.Linear(config.dim, 3 * config.dim, bias=False)  # fused: one matmul
        self.wo = nn.Linear(config.dim, config.dim, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        input_pos: torch.Tensor | None,
        mask: torch.Tensor | None,
        kv_len: int | None,
    ) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.wqkv(x).view(B, T, 3, self.n_heads, self.head_dim)
        # RoPE on queries and keys at once: qk [B, T, 2, H, D], cos/sin [T, 1, 1, D/2]
        qk = apply_rope(qkv[:, :, :2], cos, sin)
        q, k = qk.unbind(2)
        v = qkv[:, :, 2]
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
        if input_pos is None:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
            )
        else:
            assert self.kv_cache is not None, "call setup_caches() before decoding with input_pos"
            k, v = self.kv_cache.update(input_pos, k, v)  # [B, H, S, D]
            if kv_len is not None:
                k, v = k[:, :, :kv_len], v[:, :, :kv_len]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).reshape(B, T, C)  # [B, T, H*D]
        return self.wo(y)


class MLP(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        hidden = config.mlp_hidden_dim
        self.swiglu = config.mlp == "swiglu"
        # SwiGLU: gate and up projections fused into one matmul
        self.w_in = nn.Linear(config.dim, (2 if self.swiglu else 1) * hidden, bias=False)
        self.w_out = nn.Linear(hidden, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.w_in(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h)
        return self.w_out(h)


class Block(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.attention = Attention(config)
        self.mlp_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.dropout) if config.dropout else nn.Identity()

    def forward(self, x, cos, sin, input_pos, mask, kv_len):
        x = x + self.dropout(self.attention(self.attention_norm(x), cos, sin, input_pos, mask, kv_len))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class Transformer(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if config.vocab_size < 1:
            raise ValueError("TransformerConfig.vocab_size must be set (the layout fills it in)")
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        cos, sin = rope_tables(config.max_seq_len, config.head_dim, config.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
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

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

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

    def forward(
        self,
        tokens: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        kv_len: int | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """tokens [B, T] -> logits [B, T, V] (or [B, 1, V] with last_only)."""
        T = tokens.shape[1]
        if input_pos is None:
            if T > self.config.max_seq_len:
                raise ValueError(f"sequence of {T} tokens exceeds max_seq_len {self.config.max_seq_len}")
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]
            mask = None
        else:
            cos, sin = self.rope_cos[input_pos], self.rope_sin[input_pos]
            assert self.causal_mask is not None, "call setup_caches() before decoding with input_pos"
            if kv_len is None:
                mask = self.causal_mask[input_pos]  # [T, S]: static shape for graph capture
            elif T == 1:
                mask = None  # one query at position kv_len - 1 sees every slot before kv_len
            else:
                mask = self.causal_mask[input_pos, :kv_len]
        cos, sin = cos[:, None, None], sin[:, None, None]  # [T, 1, 1, D/2]
        x = self.tok_embeddings(tokens)  # [B, T, C]
        for layer in self.layers:
            x = layer(x, cos, sin, input_pos, mask, kv_len)
        if last_only:
            x = x[:, -1:]
        return self.output(self.norm(x))  # [B, T, V]
