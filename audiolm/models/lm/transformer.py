"""The one decoder-only transformer every LM stage uses (a stage is a token layout, not a class).

Pre-norm blocks: x + Attention(RMSNorm(x)), then x + MLP(RMSNorm(x)); rotary position
embeddings (RoPE on interleaved pairs, one complex multiply); `F.scaled_dot_product_attention`;
SwiGLU or GELU MLP; a final RMSNorm and an untied output projection. The architecture matches
Hugging Face's Llama (the benchmark's peer) up to the RoPE pair convention.

Two ways to call `forward(tokens [B, T], input_pos=None, kv_len=None)`:
- training / a full pass: `input_pos=None` — plain causal attention over the T tokens, no cache;
- decoding (gpt-fast style): after `setup_caches(B, S)`, `input_pos [T]` says where the tokens
  sit; their keys and values are written into the static cache at those positions and the
  queries attend to the cache through a causal mask. `kv_len` (a Python int, equal to
  `input_pos[-1] + 1`) lets an eager caller attend to only the first `kv_len` cache slots,
  which saves reading the unused rest of the cache on CPU; graph-captured steps leave it
  None and keep every shape static.

Decoding calls (input_pos given) on CPU run their matrix products through prepacked oneDNN
copies of the weights (`prepare_decoding`, `audiolm/models/lm/packed_linear.py`), float32 by
default (same results up to summation order) or bfloat16 when asked (`set_decode_weights`);
training and full passes always use the parameters themselves through `F.linear`. Under
`torch.compile` (the opt-in compiled CPU step, `audiolm/inference/compiled_step.py`) a decoding
call traces plain ops instead: `F.linear` (inductor freezes and packs the weights itself), RoPE
on real (cos, sin) pairs and one-query attention as products and sums, which inductor fuses.

A model built with `causal=False` (the Bark-style fine stage, `fine_bark.py`) attends in both
directions and is only called without a cache. Its inputs may carry several tokens per
position, tokens [B, T, L]: the L embeddings are summed, and a negative id is an empty slot
(adds nothing). A position then stands for one acoustic frame and its known RVQ levels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.kv_cache import KVCache
from audiolm.models.lm.packed_linear import DECODE_WEIGHTS, PackedLinear, packing_available, packing_dtype


def rope_table(max_seq_len: int, head_dim: int, base: float) -> torch.Tensor:
    """Rotations e^(i * pos * freq) [max_seq_len, head_dim // 2] (complex64), computed in
    float64 so long positions stay accurate."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """x [..., D] read as D/2 complex pairs (x[2i], x[2i+1]), each rotated by its angle:
    one complex multiply, a single kernel. rotation broadcastable to [..., D/2] (complex), or
    its `view_as_real` [..., D/2, 2]: the same product written on (re, im) pairs, for the
    compiled step (inductor generates no code for complex ops and would call ATen 3x a layer)."""
    if not rotation.is_complex():
        re, im = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # [..., D/2] each
        cos, sin = rotation.unbind(-1)
        return torch.stack((re * cos - im * sin, re * sin + im * cos), dim=-1).flatten(-2).type_as(x)
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotation).flatten(-2).type_as(x)


def one_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v for one query, q [B, H, 1, D], k, v [B, H, L, D] -> [B, H, 1, D],
    written as products and sums: the compiled step's form, which inductor fuses into its
    own loops (SDPA's CPU kernel costs ~30 us a call at this size, mostly fixed overhead)."""
    scores = (q.float() * k.float()).sum(-1, keepdim=True) * (q.shape[-1] ** -0.5)  # [B, H, L, 1]
    probs = torch.softmax(scores, dim=-2)
    return (probs * v.float()).sum(-2, keepdim=True).type_as(q)


def linear(x: torch.Tensor, layer: nn.Linear, decoding: bool) -> torch.Tensor:
    """x @ layer.weight.T; a decoding call uses the layer's packed copy when it has a current one.
    Under `torch.compile` (the compiled CPU step, `audiolm/inference/compiled_step.py`) the plain
    op is traced instead, in the packed copy's dtype: inductor freezes and packs the weights."""
    packed = layer.__dict__.get("packed") if decoding else None
    if torch.compiler.is_compiling():
        if packed is not None and packed.dtype != x.dtype:  # e.g. bfloat16 decode weights
            return F.linear(x.to(packed.dtype), layer.weight.to(packed.dtype)).to(x.dtype)
        return F.linear(x, layer.weight)
    if packed is None or not packed.fresh(layer.weight):
        return F.linear(x, layer.weight)
    return packed(x)


class RMSNorm(nn.Module):
    """x / rms(x) * weight, with rms = sqrt(mean(x^2) + eps).

    Written as vector_norm + one addcmul (eps kept as a 0-dim buffer, so no Python scalar
    gets wrapped per call): on CPU at batch 1 this is ~40% cheaper than `F.rms_norm`, and a
    decoding step calls it 2 * n_layers + 1 times."""

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
        B, T, C = x.shape
        # modules' weights are used through F.linear: at batch 1 on CPU a decoding step is
        # short enough that nn.Module call overhead shows
        decoding = input_pos is not None
        qkv = linear(x, self.wqkv, decoding).view(B, T, 3, self.n_heads, self.head_dim)
        # RoPE on queries and keys at once: qk [B, T, 2, H, D], rotation [T, 1, 1, D/2]
        qk = apply_rope(qkv[:, :, :2], rotation)
        q, k = qk.unbind(2)
        v = qkv[:, :, 2]
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
        if input_pos is None:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0
            )
        else:
            assert self.kv_cache is not None, "call setup_caches() before decoding with input_pos"
            k, v = self.kv_cache.update(input_pos, k, v)  # [B, H, S, D]
            if kv_len is not None:
                k, v = k[:, :, :kv_len], v[:, :, :kv_len]
            if T == 1 and mask is None and torch.compiler.is_compiling():
                y = one_query_attention(q, k, v)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).reshape(B, T, C)  # [B, T, H*D]
        return linear(y, self.wo, decoding)


class MLP(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        hidden = config.mlp_hidden_dim
        self.swiglu = config.mlp == "swiglu"
        # SwiGLU: gate and up projections fused into one matmul
        self.w_in = nn.Linear(config.dim, (2 if self.swiglu else 1) * hidden, bias=False)
        self.w_out = nn.Linear(hidden, config.dim, bias=False)

    def forward(self, x: torch.Tensor, decoding: bool = False) -> torch.Tensor:
        h = linear(x, self.w_in, decoding)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h)
        return linear(h, self.w_out, decoding)


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
        h = self.mlp.forward(self.mlp_norm.forward(x), input_pos is not None)
        if self.dropout and self.training:
            h = F.dropout(h, self.dropout, training=True)
        return x + h



class Transformer(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if config.vocab_size < 1:
            raise ValueError("TransformerConfig.vocab_size must be set (the layout fills it in)")
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, eps=config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.register_buffer(
            "rope", rope_table(config.max_seq_len, config.head_dim, config.rope_base), persistent=False
        )
        self.causal_mask: torch.Tensor | None = None
        self.decode_weights: str | None = None  # None: the parameters' own dtype
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
        self.drop_decoding_weights()  # packed copies follow the parameters' next prepare_decoding
        rope = self._buffers.pop("rope")
        try:
            module = super()._apply(fn, recurse)
        finally:
            self._buffers["rope"] = rope.to(self.output.weight.device)
        return module

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- packed weights for decoding ----------------------------------------------------------

    def linears(self) -> list[nn.Linear]:
        """Every matrix a decoding step multiplies by (not the embedding table)."""
        out = [self.output]
        for layer in self.layers:
            out += [layer.attention.wqkv, layer.attention.wo, layer.mlp.w_in, layer.mlp.w_out]
        return out

    def set_decode_weights(self, precision: str | None) -> None:
        """Precision of the packed decoding weights: None (the parameters' dtype), "float32"
        or "bfloat16" (lossy: 2x fewer bytes per step). Takes effect at `prepare_decoding`."""
        if precision is not None and precision not in DECODE_WEIGHTS:
            raise ValueError(f"decode weights must be one of {DECODE_WEIGHTS} or None, got {precision!r}")
        self.decode_weights = precision

    def prepare_decoding(self) -> bool:
        """Pack (or re-pack, when a weight changed since) the decoding weights on CPU; drop
        them elsewhere or when this torch has no oneDNN linear. True when packed."""
        weight = self.output.weight
        use = weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.bfloat16) and packing_available()
        dtype = getattr(torch, self.decode_weights) if self.decode_weights else weight.dtype
        if use:
            dtype = packing_dtype(dtype)  # float32 where the CPU has no bf16 kernels
        for layer in self.linears():
            current = layer.__dict__.get("packed")
            if not use:
                layer.__dict__.pop("packed", None)
            elif current is None or not current.matches(layer.weight, dtype):
                layer.__dict__["packed"] = PackedLinear(layer.weight, dtype)
        return use

    def drop_decoding_weights(self) -> None:
        for layer in self.linears():
            layer.__dict__.pop("packed", None)
        self.__dict__.pop("compiled_steps", None)  # compiled CPU steps hold frozen copies too

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
        """tokens [B, T] (or [B, T, L], summed per position) -> logits [B, T, V] (or [B, 1, V]
        with last_only)."""
        T = tokens.shape[1]
        if input_pos is not None and not self.config.causal:
            raise ValueError("a non-causal model has no KV-cache decoding: call it without input_pos")
        if input_pos is None:
            if T > self.config.max_seq_len:
                raise ValueError(f"sequence of {T} tokens exceeds max_seq_len {self.config.max_seq_len}")
            rotation = self.rope[:T]
            mask = None
        else:
            # the compiled step: real (cos, sin) pairs [T, D/2, 2] (see apply_rope)
            rope = torch.view_as_real(self.rope) if torch.compiler.is_compiling() else self.rope
            rotation = rope[input_pos]
            assert self.causal_mask is not None, "call setup_caches() before decoding with input_pos"
            if kv_len is None:
                mask = self.causal_mask[input_pos]  # [T, S]: static shape for graph capture
            elif T == 1:
                mask = None  # one query at position kv_len - 1 sees every slot before kv_len
            else:
                mask = self.causal_mask[input_pos, :kv_len]
        rotation = rotation[:, None, None]  # [T, 1, 1, D/2] (or [T, 1, 1, D/2, 2])
        if tokens.dim() == 3:  # several tokens per position: sum their embeddings, skip ids < 0
            present = tokens >= 0  # [B, T, L]
            x = F.embedding(tokens.clamp_min(0), self.tok_embeddings.weight)  # [B, T, L, C]
            x = (x * present.unsqueeze(-1).to(x.dtype)).sum(2)  # [B, T, C]
        else:
            x = F.embedding(tokens, self.tok_embeddings.weight)  # [B, T, C]
        for layer in self.layers:
            x = layer.forward(x, rotation, input_pos, mask, kv_len)
        if last_only:
            x = x[:, -1:]
        return linear(self.norm.forward(x), self.output, input_pos is not None)  # [B, T, V]
