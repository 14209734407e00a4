"""Global and local conditioning of the WaveNet, turned into one bias per layer's gate.

Global (GC): an embedding of a speaker / instrument id, projected to every layer's gate
pre-activations (`V_l h` in the WaveNet paper), the same at every sample.

Local (LC): codec tokens `codes [B, Q, F]` at the codec frame rate (75 Hz for EnCodec 24 kHz).
Each level has its own embedding table; the Q embeddings are summed, a frame-rate convolution
mixes neighbouring frames, and a 1×1 projection gives every layer's gate bias per frame. The
bias is then repeated `lc_hop` times (nearest upsampling) to the sample rate: sample t uses
frame t // lc_hop. Projecting before upsampling is the same function as projecting after (both
are linear and per-position) but costs `lc_hop` times less.

All user-facing checks of gc ids and codes live here, so training and generation say the same
thing about a wrong id or codes from a different codec.
"""

from __future__ import annotations

import torch
from torch import nn

from audiolm.core.errors import ConfigError
from audiolm.models.wavenet.config import WaveNetConfig


class Conditioning(nn.Module):
    level_offsets: torch.Tensor  # buffer

    def __init__(self, config: WaveNetConfig) -> None:
        super().__init__()
        self.config = config
        out = config.layers * config.gate_channels  # one gate bias per layer, stacked
        if config.has_gc:
            self.gc_embedding = nn.Embedding(config.gc_cardinality, config.gc_channels)
            self.gc_projection = nn.Linear(config.gc_channels, out, bias=False)
        if config.has_lc:
            self.lc_embedding = nn.Embedding(config.lc_n_q * config.lc_codebook_size, config.lc_channels)
            self.lc_conv = nn.Conv1d(
                config.lc_channels, config.lc_channels, config.lc_kernel_size, padding=config.lc_kernel_size // 2
            )
            self.lc_projection = nn.Conv1d(config.lc_channels, out, 1, bias=False)
            # level q's codes index rows [q * codebook_size, (q + 1) * codebook_size)
            offsets = torch.arange(config.lc_n_q) * config.lc_codebook_size
            self.register_buffer("level_offsets", offsets.view(1, -1, 1), persistent=False)

    # -- checks -------------------------------------------------------------------------------

    def check_gc(self, gc: torch.Tensor | int | None, batch_size: int) -> torch.Tensor | None:
        """gc: an id or LongTensor [B] -> LongTensor [B] (or None for a model without GC)."""
        cfg = self.config
        if not cfg.has_gc:
            if gc is not None:
                raise ConfigError("this WaveNet has no global conditioning (gc_cardinality 0); do not pass a gc id")
            return None
        if gc is None:
            raise ConfigError(
                f"this WaveNet is globally conditioned on {cfg.gc_cardinality} ids{self._label_hint()}; pass a gc id"
            )
        gc = torch.as_tensor(gc, dtype=torch.long)
        if gc.dim() == 0:
            gc = gc.expand(batch_size)
        if gc.shape != (batch_size,):
            raise ConfigError(f"gc ids must be one id or [batch={batch_size}], got shape {list(gc.shape)}")
        bad = gc[(gc < 0) | (gc >= cfg.gc_cardinality)]
        if bad.numel():
            raise ConfigError(
                f"gc id {int(bad[0])} is out of range: this WaveNet knows ids 0..{cfg.gc_cardinality - 1}"
                f"{self._label_hint()}"
            )
        return gc

    def _label_hint(self) -> str:
        labels = self.config.gc_labels
        if not labels:
            return ""
        shown = ", ".join(f"{i}={name}" for i, name in enumerate(labels[:8]))
        return f" ({shown}{', ...' if len(labels) > 8 else ''})"

    def check_codes(self, codes: torch.Tensor | None, batch_size: int | None = None) -> torch.Tensor | None:
        """codes: LongTensor [Q, F] or [B, Q, F] -> [B, Q, F], checked against the config."""
        cfg = self.config
        if not cfg.has_lc:
            if codes is not None:
                raise ConfigError("this WaveNet has no local conditioning (lc_n_q 0); do not pass codec codes")
            return None
        if codes is None:
            raise ConfigError(
                f"this WaveNet is a vocoder conditioned on {cfg.lc_n_q} levels of codec codes; pass codes"
            )
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ConfigError(f"codec codes must be integers, got {codes.dtype}")
        if codes.dim() == 2:
            codes = codes.unsqueeze(0)
        if codes.dim() != 3:
            raise ConfigError(f"codec codes must be [Q, T] or [B, Q, T], got shape {list(codes.shape)}")
        if batch_size is not None and codes.shape[0] not in (1, batch_size):
            raise ConfigError(f"codec codes have batch {codes.shape[0]}, expected 1 or {batch_size}")
        if batch_size is not None and codes.shape[0] == 1:
            codes = codes.expand(batch_size, -1, -1)
        if codes.shape[1] != cfg.lc_n_q:
            raise ConfigError(
                f"codec codes have {codes.shape[1]} levels but this WaveNet was trained on {cfg.lc_n_q} "
                "(a different codec or bitrate)"
            )
        if codes.shape[2] == 0:
            raise ConfigError("codec codes are empty (0 frames)")
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= cfg.lc_codebook_size:
            raise ConfigError(
                f"codec codes range over {low}..{high} but this WaveNet's codebooks have "
                f"{cfg.lc_codebook_size} entries (codes from a different codec)"
            )
        return codes.long()

    # -- biases -------------------------------------------------------------------------------

    def layer_bias(self, gc: torch.Tensor | None, codes: torch.Tensor | None) -> torch.Tensor | None:
        """Per-layer gate biases: [B, layers * gate_channels, F] at the frame rate (F = 1 for
        GC alone), or None for an unconditioned model. Inputs must already be checked."""
        bias = None
        if self.config.has_lc:
            assert codes is not None
            # codes: [B, Q, F] -> embeddings [B, Q, F, C] summed over levels -> [B, C, F]
            emb = self.lc_embedding(codes + self.level_offsets).sum(dim=1).transpose(1, 2)
            bias = self.lc_projection(torch.tanh(self.lc_conv(emb)))
        if self.config.has_gc:
            assert gc is not None
            g = self.gc_projection(self.gc_embedding(gc)).unsqueeze(-1)  # [B, L*G, 1]
            bias = g if bias is None else bias + g
        return bias

    def at_samples(self, bias: torch.Tensor | None, start: int, length: int) -> torch.Tensor | None:
        """Frame-rate biases [B, L*G, F] -> the biases of samples start..start+length-1
        ([B, L*G, length], or [B, L*G, 1] to broadcast when F = 1 without LC)."""
        if bias is None or not self.config.has_lc:
            return bias
        frames = torch.arange(start, start + length, device=bias.device) // self.config.lc_hop
        frames = frames.clamp(max=bias.shape[-1] - 1)
        return bias.index_select(-1, frames)


def pad_codes_for_samples(codes: torch.Tensor, samples: int, hop: int) -> torch.Tensor:
    """Cut or extend `codes [..., F]` (repeating the last frame) to cover exactly `samples`
    samples; a file's length is rarely a whole number of codec frames."""
    need = -(-samples // hop)
    if codes.shape[-1] >= need:
        return codes[..., :need]
    tail = codes[..., -1:].expand(*codes.shape[:-1], need - codes.shape[-1])
    return torch.cat([codes, tail], dim=-1)


def init_lc_from_codebooks(conditioning: Conditioning, codebooks: list[torch.Tensor], seed: int = 0) -> None:
    """Start the LC embedding tables from the codec's own codebooks (a vocoder's warm start).

    Level q's row i becomes codebook_q[i] @ P, with one fixed random projection P [D, lc_channels]
    shared by all levels, so the summed embedding of a frame is P applied to the codec's quantized
    latent (sum_q codebook_q[i_q]): codes that decode alike start alike. From random rows, a
    small vocoder learned to ignore its codes (BENCHMARKS.md, "Token pipeline vs WaveNet").
    Rows are scaled so a
    frame's summed embedding has unit variance per channel, like the default N(0, 1) rows.

    codebooks: the first lc_n_q codebooks, each [lc_codebook_size, D].
    """
    cfg = conditioning.config
    if not cfg.has_lc:
        raise ConfigError("this WaveNet has no local conditioning to initialise")
    if len(codebooks) < cfg.lc_n_q or any(cb.shape[0] != cfg.lc_codebook_size for cb in codebooks[: cfg.lc_n_q]):
        raise ConfigError(
            f"need {cfg.lc_n_q} codebooks of {cfg.lc_codebook_size} entries, got "
            f"{[tuple(cb.shape) for cb in codebooks]}"
        )
    books = torch.stack([cb.float().cpu() for cb in codebooks[: cfg.lc_n_q]])  # [Q, K, D]
    gen = torch.Generator().manual_seed(seed)
    projection = torch.randn(books.shape[-1], cfg.lc_channels, generator=gen) / books.shape[-1] ** 0.5
    rows = books @ projection  # [Q, K, C]
    # variance of a sum of one independent row per level = sum of the per-level variances
    scale = rows.var(dim=1).sum(dim=0).mean().clamp_min(1e-12).rsqrt()
    with torch.no_grad():
        weight = conditioning.lc_embedding.weight
        weight.copy_((rows * scale).reshape(-1, cfg.lc_channels).to(weight))
