"""Residual vector quantizer with EMA codebooks (SoundStream / EnCodec style).

Each level quantizes what the previous levels left over. Codebooks are not trained by the
optimizer: they follow an exponential moving average of the vectors assigned to each entry
(`decay` ~0.99), start from k-means on the first training batch, and entries whose EMA usage
falls below `dead_code_threshold` vectors per step are moved onto random vectors of the
batch just quantized (EnCodec's scheme), so unused entries keep tracking the encoder as it
drifts. With N vectors a step at most N / threshold entries can be alive: batch 8 x 1 s
gives 600 vectors, hence the default threshold 1.0 (EnCodec: 2.0 with larger batches).

Re-seeding happens AFTER the batch is quantized: entries copied from the very batch they
then quantize make training quantization exact (each vector finds a copy of itself, the
commitment loss reads ~0) while held-out audio collapses onto a few codes. The other collapse — every frame onto one
entry because a fresh encoder barely varies its output — is avoided by the codec's input
gain (`CodecConfig.input_gain`).

Buffer names per level (`layers.{i}.`): `embed [K, D]`, `embed_avg [K, D]`, `cluster_size [K]`,
`inited []` — the same names as transformers' EnCodec codebooks, so official weights copy in.

`PitchedResidualVQ` puts a pitch code before the RVQ levels (a source-filter codec: level 0 is
the F0, quantised on a log scale by pitch.py, levels 1.. the RVQ of the latent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.models.codec.pitch import codes_to_pitch, pitch_to_codes


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over data-parallel ranks (EMA statistics must agree on every rank)."""
    if _distributed():
        torch.distributed.all_reduce(tensor)
    return tensor


def _sample_vectors(vectors: torch.Tensor, count: int) -> torch.Tensor:
    """`count` rows of `vectors` [N, D], without replacement when there are enough."""
    n = vectors.shape[0]
    if n >= count:
        index = torch.randperm(n, device=vectors.device)[:count]
    else:
        index = torch.randint(0, n, (count,), device=vectors.device)
    return vectors[index]


def kmeans(vectors: torch.Tensor, num_clusters: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain k-means: centroids [K, D] and cluster sizes [K] of `vectors` [N, D]."""
    centroids = _sample_vectors(vectors, num_clusters)
    bins = torch.zeros(num_clusters, device=vectors.device)
    for _ in range(max(1, iters)):
        assign = torch.cdist(vectors, centroids).argmin(dim=-1)  # [N]
        bins = torch.bincount(assign, minlength=num_clusters).to(vectors.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, vectors)
        empty = bins == 0
        centroids = torch.where(empty[:, None], centroids, sums / bins.clamp(min=1)[:, None])
    return centroids, bins


class EMACodebook(nn.Module):
    """One codebook [K, D] updated by exponential moving averages of its assigned vectors."""

    inited: torch.Tensor  # buffer
    cluster_size: torch.Tensor  # buffer
    embed: torch.Tensor  # buffer
    embed_avg: torch.Tensor  # buffer

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        decay: float = 0.99,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 1.0,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.codebook_size = codebook_size
        self.dim = dim
        self.decay = decay
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.eps = eps
        self.register_buffer("inited", torch.tensor(False))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", torch.randn(codebook_size, dim) * 0.01)
        self.register_buffer("embed_avg", self.embed.clone())

    # -- inference ----------------------------------------------------------------------------
    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest entry for each row of x [N, D] -> indices [N]."""
        # ||x - e||^2 without the row constant ||x||^2 (argmin ignores it): one fused
        # ||e||^2 - 2 x.e^T, [N, K], in a single addmm instead of three passes over [N, K].
        # min(dim).indices, not argmin: the same first minimum, 2-3x faster on a CPU (torch 2.13)
        embed = self.embed
        return torch.addmm(embed.pow(2).sum(1)[None], x, embed.t(), alpha=-2.0).min(dim=-1).indices

    def decode(self, index: torch.Tensor) -> torch.Tensor:
        return F.embedding(index, self.embed)

    # -- training -----------------------------------------------------------------------------
    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """k-means over the first batch's vectors x [N, D] (rank 0's result on every rank)."""
        centroids, bins = kmeans(x, self.codebook_size, self.kmeans_iters)
        self.embed.copy_(centroids)
        self.embed_avg.copy_(centroids)
        self.cluster_size.copy_(bins)
        if _distributed():
            for buffer in (self.embed, self.embed_avg, self.cluster_size):
                torch.distributed.broadcast(buffer, src=0)
        self.inited.fill_(True)

    def dead_mask(self) -> torch.Tensor:
        """[K] True where the EMA usage is below `dead_code_threshold` vectors per step."""
        return self.cluster_size < self.dead_code_threshold

    @torch.no_grad()
    def replace_dead_codes(self, x: torch.Tensor) -> int:
        """Rarely used entries (see `dead_mask`) move to random vectors of the batch x [N, D]."""
        dead = self.dead_mask()  # [K]
        count = int(dead.sum())
        if count == 0:
            return 0
        fresh = _sample_vectors(x, self.codebook_size)
        if _distributed():
            torch.distributed.broadcast(fresh, src=0)
        self.embed.copy_(torch.where(dead[:, None], fresh, self.embed))
        # keep embed == embed_avg / cluster_size, or the EMA step would pull the entry back
        self.embed_avg.copy_(torch.where(dead[:, None], fresh * self.cluster_size[:, None], self.embed_avg))
        return count

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, index: torch.Tensor) -> None:
        """Move each entry towards the mean of the vectors x [N, D] assigned to it (index [N])."""
        counts = torch.bincount(index, minlength=self.codebook_size).to(x.dtype)  # [K]
        sums = torch.zeros_like(self.embed).index_add_(0, index, x)  # [K, D]
        _all_reduce_sum(counts)
        _all_reduce_sum(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing keeps never-used entries from dividing by zero
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # [B, D, T], straight-through in training
    codes: torch.Tensor  # [B, Q, T]
    commitment_loss: torch.Tensor  # scalar, mean over levels
    metrics: dict[str, float] = field(default_factory=dict)


class ResidualVQ(nn.Module):
    """`n_q` EMA codebooks applied to successive residuals; any prefix of levels decodes."""

    def __init__(
        self,
        n_q: int,
        codebook_size: int,
        dim: int,
        decay: float = 0.99,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 1.0,
    ):
        super().__init__()
        self.n_q = n_q
        self.codebook_size = codebook_size
        self.dim = dim
        # a ModuleList, typed as the codebooks it holds (its items are plain Modules to mypy)
        self.layers = cast(
            "list[EMACodebook]",
            nn.ModuleList(
                EMACodebook(codebook_size, dim, decay, kmeans_iters, dead_code_threshold) for _ in range(n_q)
            ),
        )

    def forward(self, z: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        """Quantize z [B, D, T] with the first `n_q` levels; in training, update the codebooks."""
        n_q = self.n_q if n_q is None else n_q
        batch, dim, frames = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            x = z.float().permute(0, 2, 1).reshape(-1, dim)  # [N, D], N = B*T
            residual = x
            quantized = torch.zeros_like(x)
            codes, commit, perplexities, dead = [], [], [], 0
            for layer in self.layers[:n_q]:
                if self.training and not bool(layer.inited):
                    layer.init_from(residual.detach())
                index = layer.quantize(residual.detach())  # [N]
                chosen = layer.decode(index)  # [N, D]
                if self.training:
                    layer.ema_update(residual.detach(), index)
                    # Re-seed unused entries AFTER this batch is quantized: entries copied from
                    # the batch it then quantizes would make training quantization exact (each
                    # vector finds a copy of itself) while held-out audio collapses onto a few
                    # codes. Re-seeded from the latest latents, unused entries keep tracking the
                    # encoder as it drifts.
                    dead += layer.replace_dead_codes(residual.detach())
                commit.append(F.mse_loss(residual, chosen.detach()))
                perplexities.append(_perplexity(index, self.codebook_size))
                quantized = quantized + chosen
                residual = residual - chosen.detach()
                codes.append(index)
            out = x + (quantized - x).detach() if self.training else quantized  # straight-through
        out = out.reshape(batch, frames, dim).permute(0, 2, 1).to(z.dtype)
        codes_t = torch.stack(codes, dim=1).reshape(batch, frames, n_q).permute(0, 2, 1)  # [B, Q, T]
        metrics = {"perplexity": sum(perplexities) / len(perplexities), "perplexity_level0": perplexities[0]}
        if self.training:
            metrics["dead_codes_replaced"] = float(dead)
            metrics["dead_codes"] = float(self.dead_codes())
        return QuantizerOutput(out, codes_t, torch.stack(commit).mean(), metrics)

    @torch.no_grad()
    def dead_codes(self) -> int:
        """Entries whose EMA usage is below the dead-code threshold, over all levels."""
        return int(sum(int(layer.dead_mask().sum()) for layer in self.layers))

    @torch.no_grad()
    def encode(self, z: torch.Tensor, n_q: int) -> torch.Tensor:
        """z [B, D, T] -> codes [B, Q, T] (no codebook updates)."""
        batch, dim, frames = z.shape
        residual = z.float().permute(0, 2, 1).reshape(-1, dim)
        codes = []
        for layer in self.layers[:n_q]:
            index = layer.quantize(residual)
            residual = residual - layer.decode(index)
            codes.append(index)
        return torch.stack(codes, dim=1).reshape(batch, frames, n_q).permute(0, 2, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, Q, T] -> quantized latents [B, D, T] (sum of the Q levels' entries)."""
        out = self.layers[0].decode(codes[:, 0])  # [B, T, D]
        for level in range(1, codes.shape[1]):
            out = out + self.layers[level].decode(codes[:, level])
        return out.permute(0, 2, 1)


def _perplexity(index: torch.Tensor, codebook_size: int) -> float:
    """exp(entropy) of the code histogram: how many entries are effectively in use."""
    probs = torch.bincount(index, minlength=codebook_size).float()
    probs = probs / probs.sum().clamp(min=1)
    entropy = -(probs * (probs + 1e-10).log()).sum()
    return float(entropy.exp())


class PitchedResidualVQ(ResidualVQ):
    """Level 0 = the pitch code, levels 1..n_q-1 = a ResidualVQ of the latent.

    Input [B, 1 + D, T]: channel 0 the F0 in Hz (0 = unvoiced; PitchedSTFTEncoder), channels
    1.. the latent. Output / decode [B, 1 + D, T]: channel 0 the quantised F0 in STFT bins of
    the decoder (F0 * n_fft / sample_rate; ISTFTDecoder with a harmonic-plus-noise head), 1.. the
    quantised latent. `n_q` counts every level, the pitch included, as the bit rate does: the
    pitch costs one level (log2 codebook_size bits a frame) like an RVQ level."""

    def __init__(
        self,
        n_q: int,
        codebook_size: int,
        dim: int,
        fmin: float,
        fmax: float,
        hz_to_bins: float,
        code_step: int = 1,
        **rvq_args,
    ):
        if n_q < 2:
            raise ValueError(f"a pitched quantizer needs n_q >= 2 (the pitch and one RVQ level), got {n_q}")
        super().__init__(n_q - 1, codebook_size, dim, **rvq_args)
        self.fmin, self.fmax, self.hz_to_bins, self.code_step = fmin, fmax, hz_to_bins, code_step

    def _pitch(self, f0_hz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """F0 [B, T] in Hz -> (codes [B, T], the decoded F0 in bins [B, T])."""
        codes = pitch_to_codes(f0_hz, self.codebook_size, self.fmin, self.fmax, self.code_step)
        return codes, self._bins(codes)

    def _bins(self, codes: torch.Tensor) -> torch.Tensor:
        return codes_to_pitch(codes, self.codebook_size, self.fmin, self.fmax) * self.hz_to_bins

    def _levels(self, n_q: int | None) -> int:
        levels = self.n_q + 1 if n_q is None else n_q
        if levels < 2:
            raise ValueError(f"a pitched codec decodes with >= 2 levels (the pitch and one RVQ level), got {levels}")
        return levels - 1

    def forward(self, z: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        codes, f0_bins = self._pitch(z[:, 0])
        out = super().forward(z[:, 1:], self._levels(n_q))
        out.quantized = torch.cat([f0_bins[:, None].to(out.quantized.dtype), out.quantized], dim=1)
        out.codes = torch.cat([codes[:, None], out.codes], dim=1)
        return out

    @torch.no_grad()
    def encode(self, z: torch.Tensor, n_q: int) -> torch.Tensor:
        codes, _ = self._pitch(z[:, 0])
        return torch.cat([codes[:, None], super().encode(z[:, 1:], self._levels(n_q))], dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        self._levels(codes.shape[1])
        latent = super().decode(codes[:, 1:])  # [B, D, T]
        return torch.cat([self._bins(codes[:, 0])[:, None].to(latent.dtype), latent], dim=1)
