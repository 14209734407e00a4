"""Decoding the fine levels as an expectation: the mean latent of several fine-stage draws.

The fine stage is nearly uniform over its levels' codes (cross entropy ~6.6 nats of ln 1024 =
6.9 on the valid shards): one draw of levels 2-3 adds its own random detail to every frame, which
DNSMOS hears as distortion (decoding without the fine levels lifts DNSMOS OVRL by 0.17 but loses
voice). What the codes determine of those levels is their expectation given the coarse codes;
the mean of S draws' quantized latents estimates it (the minimum-squared-error latent), and the
codec decodes that. On 12 voices: 4 draws through the session-6 decoder DNSMOS OVRL +0.07, GE2E
cosine to the prompt +0.01; 3 draws through the session-9 decoder about +0.03 and +0.01
(BENCHMARKS.md, "Session 9").

The returned codes stay one draw (a token sequence like any other); only the audio is decoded
from the mean, so `codec.decode(codes)` of a continuation's codes is not its audio exactly.
"""

from __future__ import annotations

import torch

from audiolm.models.codec.model import LatentMap


class FineDrawMean:
    """Latent map for `Codec.decode` / `ChunkedDecoder`: the decoded draw's latent [B, D, t]
    averaged with the latents of `extra` draws [S - 1, B, Q, T] of the same frames (frame
    `offset` on), then `then` (e.g. a voice anchor) applied to the mean."""

    def __init__(self, codec, extra: torch.Tensor, then: LatentMap | None = None) -> None:
        self.codec = codec
        self.extra = extra
        self.then = then

    def __call__(self, latent: torch.Tensor, codes: torch.Tensor, offset: int = 0) -> torch.Tensor:
        t = latent.shape[-1]
        quantizer = self.codec.model.quantizer
        total = latent.float().clone()
        for draw in self.extra:  # [B, Q, T]
            total += quantizer.decode(draw[:, : codes.shape[1], offset : offset + t].to(latent.device)).float()
        mean = (total / (len(self.extra) + 1)).to(latent.dtype)
        return mean if self.then is None else self.then(mean, codes, offset)

    def rows(self, rows: torch.Tensor) -> FineDrawMean:
        """The same map for a subset of the batch's rows (a LongTensor of row indices)."""
        then = self.then
        if then is not None:
            then = then.rows(rows)  # type: ignore[attr-defined]  # a VoiceAnchor
        return FineDrawMean(self.codec, self.extra[:, rows.to(self.extra.device)], then)

    def mean_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """The mean latent [B, D, T] of codes [B, Q, T] and the extra draws (no `then`)."""
        quantizer = self.codec.model.quantizer
        return FineDrawMean(self.codec, self.extra)(quantizer.decode(codes.to(self.codec.device)), codes, 0)
