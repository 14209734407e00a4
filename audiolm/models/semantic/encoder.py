"""The SSL encoder: a front-end to frames at 25/50 Hz, then conformer layers.

    wav [B, N] @ 16 kHz
      -> front-end                         features [B, T, feature_dim]   (quantizer input)
      -> LayerNorm + Linear                layer 0  [B, T, hidden]        (masked frames replaced)
      -> conformer layer 1 .. num_layers   layer i  [B, T, hidden]

The conformer blocks are transformers' `Wav2Vec2ConformerEncoderLayer` (macaron FFNs, rotary
self-attention, depthwise convolution module); the "conv" front-end is its wav2vec 2.0
`Wav2Vec2ConformerFeatureEncoder`. Inputs are never padded inside a batch here (training uses
fixed crops, tokenizing encodes equal-length rows), so no attention mask is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import Wav2Vec2ConformerConfig
from transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer import (
    Wav2Vec2ConformerEncoderLayer,
    Wav2Vec2ConformerFeatureEncoder,
    Wav2Vec2ConformerRotaryPositionalEmbedding,
)

from audiolm.models.semantic.config import SSLConfig
from audiolm.models.semantic.spectral import ANALYSIS_HOP, log_mel, mfcc_frames

MFCC_DIM = 39  # 13 MFCCs + deltas + delta-deltas


def conformer_config(config: SSLConfig) -> Wav2Vec2ConformerConfig:
    """The transformers config its building blocks read."""
    n_conv = 7 if config.frame_rate == 50 else 8  # total stride 320 or 640
    hf = Wav2Vec2ConformerConfig(
        hidden_size=config.hidden_size,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        conv_depthwise_kernel_size=config.depthwise_kernel,
        position_embeddings_type="rotary",
        hidden_act="swish",
        hidden_dropout=config.dropout,
        attention_dropout=config.dropout,
        activation_dropout=config.dropout,
        conformer_conv_dropout=config.dropout,
        feat_extract_norm="group",
        feat_extract_activation="gelu",
        conv_dim=(config.conv_channels,) * (n_conv - 1) + (config.feature_dim,),
        conv_stride=(5,) + (2,) * (n_conv - 1),
        conv_kernel=(10, 3, 3, 3, 3) + (2,) * (n_conv - 5),
        conv_bias=False,
    )
    hf._attn_implementation = "sdpa"
    return hf


class MelFrontend(nn.Module):
    """Log-mel (80 bins, 25 ms / 10 ms) frames stacked to the frame rate, then an MLP.
    With `cepstral`, 13 MFCCs + Δ + ΔΔ (40 mel bands) instead of the log-mel bins.

    wav [B, N] -> features [B, N // hop, feature_dim]
    """

    def __init__(self, config: SSLConfig, cepstral: bool = False) -> None:
        super().__init__()
        self.hop = config.hop_length
        self.n_mels = config.n_mels
        self.cepstral = cepstral
        self.stack = config.hop_length // ANALYSIS_HOP
        in_dim = self.stack * (MFCC_DIM if cepstral else config.n_mels)
        self.norm = nn.LayerNorm(in_dim)
        self.proj = nn.Sequential(
            nn.Linear(in_dim, config.feature_dim), nn.GELU(), nn.Linear(config.feature_dim, config.feature_dim)
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if self.cepstral:
            frames = mfcc_frames(wav, self.hop)  # [B, T * stack, 39]
        else:
            frames = log_mel(wav, self.hop, self.n_mels)  # [B, T * stack, n_mels]
        b, f, m = frames.shape
        frames = frames.reshape(b, f // self.stack, self.stack * m)  # [B, T, stack * m]
        return self.proj(self.norm(frames))


class ConvFrontend(nn.Module):
    """wav2vec 2.0's strided CNN on the (per-row standardized) waveform.

    wav [B, N] -> features [B, N // hop, feature_dim]; frame t is centred on (t + ½)·hop.
    """

    def __init__(self, config: SSLConfig) -> None:
        super().__init__()
        self.hop = config.hop_length
        self.cnn = Wav2Vec2ConformerFeatureEncoder(conformer_config(config))
        receptive = 400 if config.frame_rate == 50 else 720
        self.pad = (receptive - self.hop) // 2  # = 40 either way

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        wav = torch.nn.functional.layer_norm(wav, wav.shape[-1:])
        x = torch.nn.functional.pad(wav, (self.pad, self.pad))
        x = self.cnn(x)  # [B, C, T]
        return x[:, :, : wav.shape[-1] // self.hop].transpose(1, 2)


@dataclass
class EncoderOutput:
    features: torch.Tensor  # [B, T, feature_dim] layer-normed front-end features (quantizer input)
    hidden_states: list[torch.Tensor]  # layer 0 .. L, each [B, T, hidden]


class SSLEncoder(nn.Module):
    """Front-end + conformer stack; `forward(..., num_layers=L)` stops after layer L."""

    def __init__(self, config: SSLConfig) -> None:
        super().__init__()
        self.config = config
        hf = conformer_config(config)
        if config.frontend == "conv":
            self.frontend: nn.Module = ConvFrontend(config)
        else:
            self.frontend = MelFrontend(config, cepstral=config.frontend == "mfcc")
        self.feature_norm = nn.LayerNorm(config.feature_dim)
        self.projection = nn.Linear(config.feature_dim, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.mask_embedding = nn.Parameter(torch.empty(config.hidden_size).uniform_())
        self.rotary = Wav2Vec2ConformerRotaryPositionalEmbedding(hf)
        self.layers = nn.ModuleList(Wav2Vec2ConformerEncoderLayer(hf) for _ in range(config.num_layers))

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def rotary_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        # transformers' rotary module caches its last table on the module; a table made under
        # inference_mode cannot be reused in a grad-tracking pass, so always rebuild (cheap)
        self.rotary.cached_rotary_positional_embedding = None
        self.rotary.cached_sequence_length = None
        return self.rotary(x)

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.config.hop_length

    def forward(
        self,
        wav: torch.Tensor,
        mask: torch.Tensor | None = None,
        num_layers: int | None = None,
    ) -> EncoderOutput:
        """wav: [B, N] at 16 kHz; mask: [B, T] bool, True = replace that frame by the mask vector."""
        num_layers = self.num_layers if num_layers is None else num_layers
        if not 0 <= num_layers <= self.num_layers:
            raise ValueError(f"layer {num_layers} out of range 0..{self.num_layers}")
        features = self.feature_norm(self.frontend(wav))  # [B, T, feature_dim]
        x = self.dropout(self.projection(features))  # [B, T, hidden]
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_embedding.to(x.dtype), x)
        hidden_states = [x]
        if num_layers:
            rotary = self.rotary_embeddings(x)
            for layer in self.layers[:num_layers]:
                x = layer(x, relative_position_embeddings=rotary)
                hidden_states.append(x)
        return EncoderOutput(features=features, hidden_states=hidden_states)
