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

The map is fitted on the whole continuation, so it is not causal: `AudioLM.stream` cannot know
it before the last frame and decodes without it (fitting on the frames so far helped half as
much: BENCHMARKS.md).
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
    codec, codes: torch.Tensor, prompt_frames: list[int], lengths: list[int] | None = None
) -> VoiceAnchor:
    """The anchor mapping each row's generated frames [prompt_frames[b], lengths[b]) onto the
    statistics of its prompt frames [0, prompt_frames[b]). codes [B, Q, T] (prompt +
    continuation; lengths: each row's frames, default T). `codec`: an `audiolm` Codec."""
    B, _, T = codes.shape
    lengths = [T] * B if lengths is None else lengths
    if len(prompt_frames) != B or len(lengths) != B:
        raise ValueError(
            f"need one prompt length and one length per row ({B}), got {len(prompt_frames)}, {len(lengths)}"
        )
    pitched = isinstance(codec.model.quantizer, PitchedResidualVQ)
    latent = codec.model.quantizer.decode(codes.to(codec.device)).float()  # [B, D, T]
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
