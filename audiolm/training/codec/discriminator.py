"""The codec's discriminators: EnCodec's multi-scale STFT and HiFi-GAN's multi-period one.

Multi-scale STFT (EnCodec, Défossez et al. 2022, section 3.4): each scale takes the complex
STFT of the waveform (real and imaginary parts as two channels, laid out [B, 2, frames, freq]) through weight-normalised 2-D convolutions that dilate in time
and stride in frequency, and returns per-patch logits plus every intermediate feature map
(for the feature-matching loss).

Multi-period (HiFi-GAN, Kong et al. 2020): for each period p the waveform is folded into a
[B, 1, N / p, p] image, so every column holds the samples p apart, and 2-D convolutions with
(k, 1) kernels judge those columns: it sees the periodic fine structure (pitch harmonics,
phase) that a magnitude loss cannot.

Every discriminator returns (logits per sub-discriminator, feature maps per sub-discriminator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def _same_padding(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)


class STFTDiscriminator(nn.Module):
    """One scale: STFT(n_fft, hop n_fft/4) -> conv stack -> logits [B, 1, frames', freq']."""

    window: torch.Tensor  # buffer

    def __init__(
        self,
        n_fft: int,
        filters: int = 32,
        max_filters: int = 1024,
        filters_scale: int = 1,
        kernel: tuple[int, int] = (3, 9),
        dilations: tuple[int, ...] = (1, 2, 4),
        stride: tuple[int, int] = (1, 2),
    ):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [weight_norm(nn.Conv2d(2, filters, kernel, padding=_same_padding(kernel)))]
        channels = filters
        for i, dilation in enumerate(dilations):
            out = min(filters * filters_scale ** (i + 1), max_filters)  # EnCodec: scale 1, width constant
            convs.append(
                weight_norm(
                    nn.Conv2d(
                        channels,
                        out,
                        kernel,
                        stride=stride,
                        dilation=(dilation, 1),
                        padding=_same_padding(kernel, (dilation, 1)),
                    )
                )
            )
            channels = out
        square = (kernel[0], kernel[0])
        convs.append(weight_norm(nn.Conv2d(channels, channels, square, padding=_same_padding(square))))
        self.convs = nn.ModuleList(convs)
        self.conv_post = weight_norm(nn.Conv2d(channels, 1, square, padding=_same_padding(square)))
        self.activation = nn.LeakyReLU(0.2)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """wav [B, 1, N] -> (logits [B, 1, frames, freq'], feature maps)."""
        spec = torch.stft(
            wav[:, 0].float(),
            self.n_fft,
            self.hop_length,
            window=self.window,
            normalized=True,
            center=True,
            return_complex=True,
        )  # [B, F, frames]
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, frames, F]
        features = []
        for conv in self.convs:
            x = self.activation(conv(x))
            features.append(x)
        return self.conv_post(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """Several `STFTDiscriminator`s at different FFT sizes (EnCodec: 1024, 2048, 512)."""

    def __init__(self, n_ffts: tuple[int, ...] = (1024, 2048, 512), filters: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, filters) for n in n_ffts)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """wav [B, 1, N] -> (logits per scale, feature maps per scale)."""
        logits, features = [], []
        for disc in self.discriminators:
            logit, feature = disc(wav)
            logits.append(logit)
            features.append(feature)
        return logits, features


class PeriodDiscriminator(nn.Module):
    """One period p: wav [B, 1, N] -> [B, 1, ceil(N / p), p] -> (k, 1) convs -> logits [B, 1, n', p]."""

    def __init__(
        self, period: int, channels: tuple[int, ...] = (32, 128, 512, 1024, 1024), kernel_size: int = 5, stride: int = 3
    ):
        super().__init__()
        self.period = period
        convs, previous = [], 1
        for i, out in enumerate(channels):
            last = i == len(channels) - 1  # HiFi-GAN: the last conv has stride 1
            convs.append(
                weight_norm(
                    nn.Conv2d(
                        previous, out, (kernel_size, 1), (1 if last else stride, 1), padding=((kernel_size - 1) // 2, 0)
                    )
                )
            )
            previous = out
        self.convs = nn.ModuleList(convs)
        self.conv_post = weight_norm(nn.Conv2d(previous, 1, (3, 1), padding=(1, 0)))
        self.activation = nn.LeakyReLU(0.1)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, _, length = wav.shape
        if length % self.period:
            wav = F.pad(wav, (0, self.period - length % self.period), mode="reflect")
        x = wav.float().reshape(batch, 1, -1, self.period)
        features = []
        for conv in self.convs:
            x = self.activation(conv(x))
            features.append(x)
        return self.conv_post(x), features


class MultiPeriodDiscriminator(nn.Module):
    """`PeriodDiscriminator`s at periods 2, 3, 5, 7, 11 (HiFi-GAN), channels scaled by `filters`
    (HiFi-GAN's widths 32-128-512-1024-1024 are filters = 32)."""

    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), filters: int = 32):
        super().__init__()
        widths = tuple(min(filters * m, 32 * filters) for m in (1, 4, 16, 32, 32))
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, widths) for p in periods)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, features = [], []
        for disc in self.discriminators:
            logit, feature = disc(wav)
            logits.append(logit)
            features.append(feature)
        return logits, features
