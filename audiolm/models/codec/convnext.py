"""ConvNeXt over frames (Vocos' backbone, Siuzdak 2023): the frame-rate codec's encoder and decoder
and the pitch net all build on it.

    backbone = ConvNeXtBackbone(in_channels, dim, intermediate, layers, kernel_size, causal)
    y = backbone(x [B, in_channels, T])   # [B, dim, T]

causal=True pads every convolution on the left only (no lookahead); otherwise centred.
`lookahead` (causal only): the embedding convolution also sees that many frames ahead (its kernel
grows by as many taps; the blocks stay causal), so output frame t depends on inputs <= t + lookahead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (time) -> LayerNorm -> pointwise MLP -> layer scale, residual (Vocos)."""

    def __init__(self, dim: int, intermediate: int, kernel_size: int, causal: bool, layer_scale: float):
        super().__init__()
        self.left = kernel_size - 1 if causal else (kernel_size - 1) // 2
        self.right = kernel_size - 1 - self.left
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate)
        self.pwconv2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, T] -> [B, C, T]."""
        y = self.dwconv(F.pad(x, (self.left, self.right)))
        y = self.norm(y.transpose(1, 2))  # [B, T, C]
        y = self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + (self.gamma * y).transpose(1, 2)


class ConvNeXtBackbone(nn.Module):
    """in_channels -> embedding conv -> LayerNorm -> `layers` ConvNeXt blocks -> LayerNorm."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        intermediate: int,
        layers: int,
        kernel_size: int,
        causal: bool,
        lookahead: int = 0,
    ):
        super().__init__()
        if lookahead and not causal:
            raise ValueError("lookahead is for a causal backbone (a centred one already looks ahead)")
        self.left = kernel_size - 1 if causal else (kernel_size - 1) // 2
        self.right = kernel_size - 1 - self.left + lookahead  # the embedding's right padding
        self.embed = nn.Conv1d(in_channels, dim, kernel_size + lookahead)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate, kernel_size, causal, 1.0 / max(layers, 1)) for _ in range(layers)
        )
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)

    @property
    def lookahead_frames(self) -> int:
        """Input frames after frame t that output frame t depends on."""
        return self.right + sum(block.right for block in self.blocks if isinstance(block, ConvNeXtBlock))

    @property
    def context_frames(self) -> int:
        """Input frames before frame t that output frame t depends on (receptive field)."""
        return self.left * (1 + len(self.blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in_channels, T] -> [B, dim, T]."""
        x = self.embed(F.pad(x, (self.left, self.right)))
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x.transpose(1, 2)).transpose(1, 2)
