"""The codec network: transformers' SEANet encoder/decoder around our residual VQ.

    wav [B, 1, N] at 24 kHz --encoder--> z [B, D, T] at 75 Hz --RVQ(n_q)--> codes [B, Q, T]
    codes --RVQ.decode--> z_q [B, D, T] --decoder--> wav_hat [B, 1, N]

`config.encoder` / `config.decoder` name the architecture of each side:

    "seanet": `EncodecEncoder` / `EncodecDecoder` from transformers, built from an
              `EncodecConfig` made out of our `CodecConfig`; their parameter names are
              transformers' (`encoder.layers.0.conv.parametrizations.weight.original0` ...) so
              official weights load as is. The default for both sides.
    "stft" / "istft": ConvNeXt networks at the frame rate with an STFT front / iSTFT head
              (frame_rate.py), many times cheaper on a CPU.

`config.pitch_codebook` makes a source-filter codec: the encoder also tracks F0, level 0 of the
codes is the pitch (quantizer.PitchedResidualVQ), and the decoder's harmonic-plus-noise head
builds the harmonics on it (z and z_q then carry the F0 as channel 0: [B, 1 + D, T]).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from audiolm.models.codec.config import CodecConfig
from audiolm.models.codec.frame_rate import ISTFTDecoder, PitchedSTFTEncoder, STFTEncoder
from audiolm.models.codec.pitch_net import PitchNet
from audiolm.models.codec.quantizer import PitchedResidualVQ, ResidualVQ

# latent_map(latent [B, D, t], codes [B, Q, t], offset of the first frame) -> latent [B, D, t]:
# applied to the quantized latents before the decoder (`inference.voice_anchor.VoiceAnchor`)
LatentMap = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def to_hf_config(config: CodecConfig):
    """The transformers `EncodecConfig` describing the same encoder/decoder."""
    from transformers import EncodecConfig  # lazy: transformers takes seconds to import

    return EncodecConfig(
        target_bandwidths=list(config.bandwidths),
        sampling_rate=config.sample_rate,
        audio_channels=1,
        normalize=False,
        hidden_size=config.hidden_size,
        num_filters=config.num_filters,
        num_residual_layers=config.num_residual_layers,
        upsampling_ratios=list(config.upsampling_ratios),
        norm_type=config.norm_type,
        kernel_size=config.kernel_size,
        last_kernel_size=config.last_kernel_size,
        residual_kernel_size=config.residual_kernel_size,
        dilation_growth_rate=config.dilation_growth_rate,
        use_causal_conv=config.use_causal_conv,
        pad_mode=config.pad_mode,
        compress=config.compress,
        num_lstm_layers=config.num_lstm_layers,
        trim_right_ratio=config.trim_right_ratio,
        codebook_size=config.codebook_size,
        codebook_dim=config.hidden_size,
        use_conv_shortcut=config.use_conv_shortcut,
    )


@dataclass
class CodecOutput:
    audio: torch.Tensor  # [B, 1, N] reconstruction, same length as the input
    codes: torch.Tensor  # [B, Q, T]
    commitment_loss: torch.Tensor  # scalar
    metrics: dict[str, float] = field(default_factory=dict)
    # iSTFT decoder: its head's log-magnitude and phase parameter [B, F, T] (None for SEANet)
    head: tuple[torch.Tensor, torch.Tensor] | None = None
    # a harmonic iSTFT head's F0 per frame, in bins [B, T] (None otherwise)
    f0_bins: torch.Tensor | None = None


class CodecModel(nn.Module):
    """Encoder + residual VQ + decoder. `forward` is the training pass (codebooks update)."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        from transformers.models.encodec.modeling_encodec import (  # lazy: transformers takes seconds to import
            EncodecDecoder,
            EncodecEncoder,
        )

        self.config = config
        frame_args: dict[str, Any] = dict(
            dim=config.frame_dim,
            intermediate=config.frame_intermediate,
            kernel_size=config.frame_kernel_size,
            causal=config.frame_causal,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
        )
        hf_config = to_hf_config(config)
        self.encoder: nn.Module
        self.decoder: nn.Module
        if config.encoder == "seanet":
            self.encoder = EncodecEncoder(hf_config)
        elif config.pitch_codebook:
            self.encoder = PitchedSTFTEncoder(
                config.hidden_size,
                sample_rate=config.sample_rate,
                fmin=config.pitch_fmin,
                fmax=config.pitch_fmax,
                threshold=config.pitch_threshold,
                voicing_threshold=config.pitch_voicing_threshold or config.pitch_threshold,  # 0 = the same
                input_gain=config.input_gain,
                pitch_net=None if config.pitch_net is None else PitchNet(config.pitch_net),
                layers=config.encoder_layers,
                **frame_args,
            )
        else:
            self.encoder = STFTEncoder(config.hidden_size, layers=config.encoder_layers, **frame_args)
        if config.decoder == "seanet":
            self.decoder = EncodecDecoder(hf_config)
        else:
            decoder_args = dict(frame_args, intermediate=config.decoder_width)
            self.decoder = ISTFTDecoder(
                config.hidden_size,
                layers=config.decoder_layers,
                phase=config.istft_phase,
                max_log_magnitude=config.istft_max_log_magnitude,
                comb=config.istft_harmonic_comb,
                noise_bands=config.istft_noise_bands,
                tonal_max_hz=config.istft_tonal_max_hz,
                sample_rate=config.sample_rate,
                lookahead=config.decoder_lookahead,
                **decoder_args,
            )
        rvq_args: dict[str, Any] = dict(
            codebook_size=config.codebook_size,
            dim=config.hidden_size,
            decay=config.ema_decay,
            kmeans_iters=config.kmeans_iters,
            dead_code_threshold=config.dead_code_threshold,
        )
        self.quantizer: ResidualVQ
        if config.pitch_codebook:
            self.quantizer = PitchedResidualVQ(
                config.n_q,
                fmin=config.pitch_fmin,
                fmax=config.pitch_fmax,
                hz_to_bins=config.n_fft / config.sample_rate,
                code_step=config.pitch_code_step,
                **rvq_args,
            )
        else:
            self.quantizer = ResidualVQ(n_q=config.n_q, **rvq_args)
        self.frozen: tuple[str, ...] = ()

    def freeze(self, parts: tuple[str, ...] | list[str]) -> None:
        """Stop training these parts ("encoder", "quantizer", "decoder"): no gradients, and they
        stay in eval mode through `train()` (a frozen quantizer's codebooks do not update)."""
        for part in parts:
            getattr(self, part).requires_grad_(False)
        self.frozen = tuple(parts)
        self.train(self.training)

    def train(self, mode: bool = True) -> CodecModel:
        super().train(mode)
        for part in getattr(self, "frozen", ()):  # train() runs inside nn.Module.__init__ too
            getattr(self, part).train(False)
        return self

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def forward(self, wav: torch.Tensor, n_q: int | None = None, f0_given: torch.Tensor | None = None) -> CodecOutput:
        """wav [B, 1, N] -> reconstruction [B, 1, N] through `n_q` levels. f0_given [B, T] (bins,
        0 = unknown): the F0 a harmonic iSTFT head follows in training (teacher forcing)."""
        length = wav.shape[-1]
        gain = self.config.input_gain
        z = self.encoder(wav * gain)  # [B, D, T], T = ceil(N / hop)
        q = self.quantizer(z, n_q)
        head = None
        extras: dict[str, torch.Tensor] = {} if f0_given is None else {"f0_given": f0_given}
        if isinstance(self.decoder, ISTFTDecoder):
            audio, log_magnitude, param = self.decoder.forward_supervised(q.quantized, extras)
            head = (log_magnitude, param)
        else:
            audio = self.decoder(q.quantized)
        audio = audio[..., :length] / gain  # [B, 1, T*hop] -> [B, 1, N]
        return CodecOutput(audio, q.codes, q.commitment_loss, q.metrics, head, extras.get("f0_bins"))

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, n_q: int) -> torch.Tensor:
        """wav [B, 1, N] -> codes [B, Q, T] with T = ceil(N / hop)."""
        return self.quantizer.encode(self.encoder(wav * self.config.input_gain), n_q)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, latent_map: LatentMap | None = None) -> torch.Tensor:
        """codes [B, Q, T] -> wav [B, 1, T * hop]. latent_map(latent [B, D, T], codes, 0) may
        change the quantized latents before the decoder (`inference.voice_anchor`)."""
        latent = self.quantizer.decode(codes)
        if latent_map is not None:
            latent = latent_map(latent, codes, 0)
        return self.decoder(latent) / self.config.input_gain
