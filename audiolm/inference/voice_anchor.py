"""Voice anchoring: before the codec decodes a continuation, the generated frames' latents are
matched, channel by channel, to the mean and spread of the prompt's latents.

Why: the coarse stage keeps the prompt's voice poorly. On 24 held-out voices its continuations
are retrieved by an external speaker encoder (GE2E) 0.17 of the time, against 0.71 for the real
continuation through the codec; given the real semantic tokens it is no better (0.21), and
swapping the real codes back in level by level shows the voice is lost in the first RVQ level,
the spectral envelope (BENCHMARKS.md, "Continuation quality", Session 8). The continuation's
envelope drifts toward the average voice of the training corpus. An affine map per latent
channel from the continuation's statistics to the prompt's, z' = (z - mean_gen) / std_gen *
std_prompt + mean_prompt, moves the timbre back without touching the frame-to-frame content:
GE2E retrieval 0.17 -> 0.54 on those voices, DNSMOS within run-to-run noise.

A pitched codec (level 0 = the F0 code, 0 = unvoiced; its latent channel 0 = the F0 itself) gets
one map for voiced and one for unvoiced frames, and its F0 channel is left alone (matching the
F0's statistics too lowered DNSMOS and did not help retrieval). Any other codec gets one map
over all channels.

The map is fitted on the whole continuation, so it is not causal. `AudioLM.stream`, which plays
audio before the continuation is finished, uses `RunningVoiceAnchor` instead: each frame mapped
with the statistics of the frames before it (about half the gain: BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audiolm.models.codec.quantizer import PitchedResidualVQ

# a group (voiced / unvoiced) is matched only when the prompt and the continuation each hold at
# least this many of its frames (fewer give a noisy spread); otherwise it is left as it is
MIN_FRAMES = 10
# the spread is scaled by at most this factor either way (a near-constant channel in a short
# continuation would otherwise be blown up)
MAX_SCALE = 4.0


@dataclass
class VoiceAnchor:
    """Per-row affine maps of latent channels, one per frame group, applied from each row's
    first generated frame on. Call it as a `Codec.decode` latent map."""

    scale: torch.Tensor  # [B, G, C]
    shift: torch.Tensor  # [B, G, C]
    start: list[int]  # per row: its first generated frame (frames before it are the prompt's)
    first_channel: int  # channels [first_channel, first_channel + C) are mapped
    pitched: bool  # groups: voiced / unvoiced by the F0 code (level 0); else one group

    def __call__(self, latent: torch.Tensor, codes: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """latent [B, D, t] of codes [B, Q, t] whose first frame is frame `offset` of the
        sequence -> the mapped latent (a new tensor)."""
        B, _, t = latent.shape
        c0, C = self.first_channel, self.scale.shape[-1]
        group = _groups(codes, self.pitched)  # [B, t]
        scale = self.scale.to(latent).gather(1, group[..., None].expand(B, t, C))  # [B, t, C]
        shift = self.shift.to(latent).gather(1, group[..., None].expand(B, t, C))
        frame = torch.arange(offset, offset + t, device=latent.device)
        generated = frame[None] >= torch.tensor(self.start, device=latent.device)[:, None]  # [B, t]
        z = latent[:, c0 : c0 + C].transpose(1, 2)  # [B, t, C]
        mapped = torch.where(generated[..., None], z * scale + shift, z)
        out = latent.clone()
        out[:, c0 : c0 + C] = mapped.transpose(1, 2)
        return out

    def rows(self, index: torch.Tensor | list[int]) -> VoiceAnchor:
        """The anchor of a subset of rows, in that order."""
        index = torch.as_tensor(index, dtype=torch.long)
        return VoiceAnchor(
            self.scale[index],
            self.shift[index],
            [self.start[i] for i in index.tolist()],
            self.first_channel,
            self.pitched,
        )


def _groups(codes: torch.Tensor, pitched: bool) -> torch.Tensor:
    """codes [B, Q, t] -> group index [B, t]: 0 voiced, 1 unvoiced (pitched), else all 0."""
    if pitched:
        return (codes[:, 0] == 0).long()
    return torch.zeros_like(codes[:, 0])


@torch.inference_mode()
def fit_voice_anchor(
    codec,
    codes: torch.Tensor,
    prompt_frames: list[int],
    lengths: list[int] | None = None,
    latent: torch.Tensor | None = None,
) -> VoiceAnchor:
    """The anchor mapping each row's generated frames [prompt_frames[b], lengths[b]) onto the
    statistics of its prompt frames [0, prompt_frames[b]). codes [B, Q, T] (prompt +
    continuation; lengths: each row's frames, default T). `codec`: an `audiolm` Codec.
    latent [B, D, T]: the latents the anchor will map, if not the codes' own (e.g. a mean of
    fine draws, fine_draws.py)."""
    B, _, T = codes.shape
    lengths = [T] * B if lengths is None else lengths
    if len(prompt_frames) != B or len(lengths) != B:
        raise ValueError(
            f"need one prompt length and one length per row ({B}), got {len(prompt_frames)}, {len(lengths)}"
        )
    pitched = isinstance(codec.model.quantizer, PitchedResidualVQ)
    if latent is None:
        latent = codec.model.quantizer.decode(codes.to(codec.device))
    latent = latent.float()  # [B, D, T]
    first = 1 if pitched else 0
    z = latent[:, first:]  # [B, C, T]
    C = z.shape[1]
    groups = 2 if pitched else 1
    scale = torch.ones(B, groups, C)
    shift = torch.zeros(B, groups, C)
    group = _groups(codes, pitched).cpu()
    z = z.cpu()
    for b in range(B):
        frame = torch.arange(T)
        in_prompt = frame < prompt_frames[b]
        in_generated = (frame >= prompt_frames[b]) & (frame < lengths[b])
        for g in range(groups):
            p = z[b][:, in_prompt & (group[b] == g)]  # [C, n_p]
            x = z[b][:, in_generated & (group[b] == g)]  # [C, n_g]
            if p.shape[1] < MIN_FRAMES or x.shape[1] < MIN_FRAMES:
                continue
            ratio = (p.std(dim=1) / x.std(dim=1).clamp(min=1e-6)).clamp(1 / MAX_SCALE, MAX_SCALE)
            scale[b, g] = ratio
            shift[b, g] = p.mean(dim=1) - x.mean(dim=1) * ratio
    return VoiceAnchor(scale, shift, list(prompt_frames), first, pitched)


# a stream's statistics start from the prompt's, as if this many generated frames had matched it
PRIOR_FRAMES = 25


class RunningVoiceAnchor:
    """Voice anchoring for a stream, which cannot wait for the whole continuation: generated frame
    t is mapped with the statistics of the generated frames up to t (its group's), shrunk toward
    the prompt's by PRIOR_FRAMES pseudo-frames. A frame's map depends only on the frames before
    it, so a frame decoded again as a later window's left context is mapped as the first time.
    Got about half of the whole-continuation fit's gain (BENCHMARKS.md, "Session 8").

    Call it as `ChunkedDecoder`'s latent map: windows must move forward without gaps."""

    def __init__(self, codec, prompt_codes: torch.Tensor) -> None:
        """prompt_codes [B, Q, Tp]: every row's prompt (one length: a stream has one prompt)."""
        self.pitched = isinstance(codec.model.quantizer, PitchedResidualVQ)
        self.first_channel = 1 if self.pitched else 0
        self.start = prompt_codes.shape[-1]
        latent = codec.model.quantizer.decode(prompt_codes.to(codec.device)).float()[:, self.first_channel :]
        group = _groups(prompt_codes.to(latent.device), self.pitched)  # [B, Tp]
        B, C = latent.shape[0], latent.shape[1]
        G = 2 if self.pitched else 1
        self.mean = torch.zeros(B, G, C, device=latent.device)
        self.var = torch.ones(B, G, C, device=latent.device)
        self.known = torch.zeros(B, G, dtype=torch.bool, device=latent.device)  # prompt frames enough
        for b in range(B):
            for g in range(G):
                x = latent[b][:, group[b] == g]
                if x.shape[1] >= MIN_FRAMES:
                    self.mean[b, g], self.var[b, g], self.known[b, g] = x.mean(1), x.var(1), True
        # running sums over the generated frames seen so far, per row and group
        self.count = torch.zeros(B, G, device=latent.device)
        self.sum = torch.zeros(B, G, C, device=latent.device)
        self.sum_sq = torch.zeros(B, G, C, device=latent.device)
        self.seen = self.start  # next generated frame to fold into the sums
        # the maps of generated frames [kept, seen): scale, shift [B, C, seen - kept]
        self.kept = self.start
        self.scale = torch.zeros(B, C, 0, device=latent.device)
        self.shift = torch.zeros(B, C, 0, device=latent.device)

    def __call__(self, latent: torch.Tensor, codes: torch.Tensor, offset: int = 0) -> torch.Tensor:
        c0, C = self.first_channel, self.mean.shape[-1]
        t = latent.shape[-1]
        if offset + t > self.seen:  # new frames (seen >= start: never a prompt frame): fold them in
            first = self.seen - offset
            if first < 0:
                raise ValueError(f"frames must come in order: frame {offset} before frame {self.seen}")
            self._fold(latent[:, c0 : c0 + C, first:].float(), _groups(codes[..., first:], self.pitched))
            self.seen = offset + t
        out = latent.clone()
        lo = max(offset, self.start)  # frames of this window that are generated ones
        if lo < offset + t:
            scale = self.scale[..., lo - self.kept : offset + t - self.kept]  # [B, C, n]
            shift = self.shift[..., lo - self.kept : offset + t - self.kept]
            z = latent[:, c0 : c0 + C, lo - offset :].float()
            out[:, c0 : c0 + C, lo - offset :] = (z * scale + shift).to(latent.dtype)
        # windows only move forward: keep the maps of this window's frames on
        drop = max(0, offset - self.kept)
        if drop:
            self.scale, self.shift, self.kept = self.scale[..., drop:], self.shift[..., drop:], self.kept + drop
        return out

    def _fold(self, z: torch.Tensor, group: torch.Tensor) -> None:
        """Generated latents z [B, C, n] of groups [B, n], in order: each frame's map from the
        running statistics up to and including it, then the sums move on past them."""
        G = self.mean.shape[1]
        onehot = torch.nn.functional.one_hot(group, G).to(z.dtype)  # [B, n, G]
        x = z.transpose(1, 2)  # [B, n, C]
        count = self.count[:, None] + onehot.cumsum(1)  # [B, n, G]
        total = self.sum[:, None] + (onehot[..., None] * x[:, :, None]).cumsum(1)  # [B, n, G, C]
        total_sq = self.sum_sq[:, None] + (onehot[..., None] * (x * x)[:, :, None]).cumsum(1)
        self.count, self.sum, self.sum_sq = count[:, -1], total[:, -1], total_sq[:, -1]
        pick = group[..., None, None].expand(-1, -1, 1, x.shape[-1])  # each frame's own group
        n = count.gather(2, group[..., None])[..., 0][..., None] + PRIOR_FRAMES  # [B, n, 1]
        mean_p = self.mean[:, None].expand(-1, x.shape[1], -1, -1).gather(2, pick)[:, :, 0]  # [B, n, C]
        var_p = self.var[:, None].expand(-1, x.shape[1], -1, -1).gather(2, pick)[:, :, 0]
        mean = (total.gather(2, pick)[:, :, 0] + PRIOR_FRAMES * mean_p) / n
        second = (total_sq.gather(2, pick)[:, :, 0] + PRIOR_FRAMES * (var_p + mean_p**2)) / n
        std = (second - mean**2).clamp(min=1e-12).sqrt()
        scale = (var_p.sqrt() / std.clamp(min=1e-6)).clamp(1 / MAX_SCALE, MAX_SCALE)
        shift = mean_p - mean * scale
        known = self.known.gather(1, group)[..., None]  # [B, n, 1]
        scale = torch.where(known, scale, torch.ones_like(scale)).transpose(1, 2)  # [B, C, n]
        shift = torch.where(known, shift, torch.zeros_like(shift)).transpose(1, 2)
        self.scale = torch.cat([self.scale, scale], -1)
        self.shift = torch.cat([self.shift, shift], -1)
