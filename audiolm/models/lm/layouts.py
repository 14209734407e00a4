"""Stage token layouts: how semantic tokens s[j] and acoustic codes a[q, t] become one sequence.

Every stage is the same `Transformer`; only the sequence differs. K = semantic vocabulary,
C = codebook size, Q = RVQ levels in the shards, Qc = `coarse_levels`, F = `window_frames`
(acoustic frames per window), fs / fa = semantic / acoustic frame rates.

Semantic stage (vocab K, no special tokens)
    s[j0] s[j0+1] ... s[j0+L]            a random window of L+1 = max_seq_len+1 tokens;
                                         `dedup_semantic` first drops consecutive repeats
                                         (AudioLM's choice; it loses timing, so the coarse stage
                                         cannot be aligned to a deduplicated stream: keep it
                                         off for the pipeline). Short utterances: padding with
                                         ignored targets. Loss on every real token.

Coarse stage (vocab K + 2 + Qc*C)
    PAD..PAD s[j0..j1) SEP a[0,t0] a[1,t0] .. a[Qc-1,t0] a[0,t0+1] ... a[Qc-1,t0+F-1]
    The window covers acoustic frames [t0, t0+F); the semantic tokens are those covering the
    same time: j0 = floor(t0*fs/fa), j1 = ceil((t0+F)*fs/fa) (`semantic_span`). At fs = 25 Hz
    one semantic token spans 3 acoustic frames; at 50 Hz, 2 tokens span 3 frames — the span is
    computed in time, so any ratio works. The semantic part is left-padded with PAD to a
    fixed S = ceil(F*fs/fa)+1 slots so acoustic tokens always sit at the same positions.
    Token ids: semantic j -> j; PAD = K; SEP = K+1; level q code c -> K + 2 + q*C + c.
    Loss only on acoustic tokens. At generation, position i of the acoustic part may only
    take level (i mod Qc)'s range (`level_masks`).

Fine stage, fine_style "ar" (vocab Q*C + 2), AudioLM-style autoregressive
    a[0,t0] .. a[Qc-1,t0] .. a[Qc-1,t0+F-1] SEP a[Qc,t0] .. a[Q-1,t0] a[Qc,t0+1] ... a[Q-1,t0+F-1]
    The whole window's coarse codes come first (so every fine token sees past *and future*
    coarse context), then the fine levels frame by frame. Token ids: level q code c -> q*C + c;
    PAD = Q*C; SEP = Q*C + 1. Loss only on fine tokens. Windows are fixed (F frames);
    generation walks over long audio with overlapping windows whose first frames' fine codes
    are given as a prompt.

Fine stage, fine_style "bark": non-causal, one pass per fine level; see `fine_bark.py`.

AR or Bark-style fine stage (`fine_style`): "bark" (`fine_bark.py`) is the recommended style
for new fine stages: Q-Qc passes over a window instead of F*(Q-Qc) sequential steps, an order
of magnitude faster, at no worse held-out cross entropy (BENCHMARKS.md, "Fine stage: AR vs
Bark-style"). This AR layout stays the default for existing checkpoints.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from audiolm.models.lm.config import StageConfig

IGNORE = -100  # target value ignored by the loss


def semantic_span(t0: int, t1: int, semantic_rate: float, acoustic_rate: float, n_semantic: int) -> tuple[int, int]:
    """Semantic token range [j0, j1) covering acoustic frames [t0, t1) in time, clipped to n_semantic."""
    ratio = semantic_rate / acoustic_rate
    j0 = min(int(math.floor(t0 * ratio + 1e-9)), n_semantic)
    j1 = min(int(math.ceil(t1 * ratio - 1e-9)), n_semantic)
    return j0, max(j0, j1)


def dedup(tokens: np.ndarray) -> np.ndarray:
    """Drop consecutive repeats: 5 5 5 2 2 7 5 -> 5 2 7 5."""
    tokens = np.asarray(tokens)
    if tokens.size == 0:
        return tokens
    keep = np.ones(tokens.shape[0], dtype=bool)
    keep[1:] = tokens[1:] != tokens[:-1]
    return tokens[keep]


def _shift(seq: np.ndarray, loss_from: int, pad: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Full sequence [N] -> (inputs [N-1], targets [N-1]); targets before `loss_from` (an index
    into targets) and PAD targets are ignored."""
    inputs = seq[:-1].astype(np.int64)
    targets = seq[1:].astype(np.int64)
    targets[:loss_from] = IGNORE
    if pad is not None:
        targets[targets == pad] = IGNORE
    return inputs, targets


class SemanticLayout:
    def __init__(self, config: StageConfig) -> None:
        self.config = config
        self.vocab_size = config.semantic_vocab

    def max_window_frames(self) -> int:
        return self.config.model.max_seq_len + 1

    def sequence_length(self) -> int:
        return self.config.window_frames or self.max_window_frames()

    def context_length(self) -> int:
        """Tokens the model sees at once (inputs are the sequence shifted by one)."""
        return self.sequence_length() - 1

    def training_example(self, semantic: np.ndarray, acoustic: np.ndarray, rng: np.random.Generator):
        tokens = dedup(semantic) if self.config.dedup_semantic else np.asarray(semantic)
        n = self.sequence_length()
        start = int(rng.integers(0, max(len(tokens) - n, 0) + 1))
        window = np.asarray(tokens[start : start + n], dtype=np.int64)
        seq = np.full(n, -1, dtype=np.int64)
        seq[: len(window)] = window
        inputs, targets = _shift(seq, 0, pad=-1)
        inputs[inputs < 0] = 0  # padding after the end: any id, its targets are ignored
        return inputs, targets


class CoarseLayout:
    def __init__(self, config: StageConfig) -> None:
        self.config = config
        K, C, Qc = config.semantic_vocab, config.codebook_size, config.coarse_levels
        self.n_levels = Qc
        self.pad, self.sep = K, K + 1
        self.level_offsets = [K + 2 + q * C for q in range(Qc)]
        self.vocab_size = K + 2 + Qc * C

    def semantic_slots(self, frames: int) -> int:
        c = self.config
        return int(math.ceil(frames * c.semantic_frame_rate / c.acoustic_frame_rate - 1e-9)) + 1

    def max_window_frames(self) -> int:
        frames = 0
        while self._length(frames + 1) - 1 <= self.config.model.max_seq_len:
            frames += 1
        return frames

    def _length(self, frames: int) -> int:
        return self.semantic_slots(frames) + 1 + frames * self.n_levels

    def sequence_length(self) -> int:
        return self._length(self.config.window_frames)

    def context_length(self) -> int:
        return self.sequence_length() - 1

    @property
    def prefix_length(self) -> int:
        """Index of the first acoustic token (PAD..PAD semantic SEP come before it)."""
        return self.semantic_slots(self.config.window_frames) + 1

    def prefix(self, semantic: np.ndarray) -> np.ndarray:
        """Semantic tokens of one window [n] -> PAD-left-padded prefix + SEP [S + 1]."""
        slots = self.prefix_length - 1
        semantic = np.asarray(semantic, dtype=np.int64)[:slots]
        out = np.full(slots + 1, self.pad, dtype=np.int64)
        out[slots - len(semantic) : slots] = semantic
        out[slots] = self.sep
        return out

    def frames_to_tokens(self, frames: np.ndarray) -> np.ndarray:
        """Codes [T, Qc] (frame-major) -> flat token ids [T*Qc]."""
        return (np.asarray(frames, dtype=np.int64)[:, : self.n_levels] + np.asarray(self.level_offsets)).reshape(-1)

    def training_example(self, semantic: np.ndarray, acoustic: np.ndarray, rng: np.random.Generator):
        c = self.config
        F, total = c.window_frames, acoustic.shape[0]
        t0 = int(rng.integers(0, max(total - F, 0) + 1))
        t1 = min(t0 + F, total)
        j0, j1 = semantic_span(t0, t1, c.semantic_frame_rate, c.acoustic_frame_rate, len(semantic))
        seq = np.full(self.sequence_length(), self.pad, dtype=np.int64)
        seq[: self.prefix_length] = self.prefix(semantic[j0:j1])
        body = self.frames_to_tokens(acoustic[t0:t1])
        seq[self.prefix_length : self.prefix_length + len(body)] = body
        return _shift(seq, self.prefix_length - 1, pad=self.pad)

    def prefix_tokens(self, semantic: torch.Tensor) -> torch.Tensor:
        """Batched `prefix`: semantic tokens of one window [B, n] -> [B, S + 1]."""
        slots = self.prefix_length - 1
        semantic = semantic[:, :slots]
        B, n = semantic.shape
        pad = semantic.new_full((B, slots - n), self.pad)
        sep = semantic.new_full((B, 1), self.sep)
        return torch.cat([pad, semantic, sep], dim=1)

    def tokens_to_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """Flat acoustic tokens [B, T*Qc] -> codes [B, Qc, T]."""
        B = tokens.shape[0]
        offsets = torch.tensor(self.level_offsets, device=tokens.device)
        return (tokens.view(B, -1, self.n_levels) - offsets).transpose(1, 2)

    def codes_to_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, Qc, T] -> flat acoustic tokens [B, T*Qc]."""
        offsets = torch.tensor(self.level_offsets, device=codes.device)
        return (codes[:, : self.n_levels].transpose(1, 2) + offsets).reshape(codes.shape[0], -1)

    def level_masks(self, device: torch.device | str) -> torch.Tensor:
        """bool [Qc, V]: mask[q] allows exactly level q's codes."""
        C = self.config.codebook_size
        mask = torch.zeros(self.n_levels, self.vocab_size, dtype=torch.bool, device=device)
        for q, off in enumerate(self.level_offsets):
            mask[q, off : off + C] = True
        return mask


class FineLayout:
    def __init__(self, config: StageConfig) -> None:
        self.config = config
        C, Q = config.codebook_size, config.n_q
        self.n_coarse, self.n_fine = config.coarse_levels, Q - config.coarse_levels
        self.pad, self.sep = Q * C, Q * C + 1
        self.level_offsets = [q * C for q in range(Q)]
        self.vocab_size = Q * C + 2

    def max_window_frames(self) -> int:
        return self.config.model.max_seq_len // self.config.n_q

    def sequence_length(self) -> int:
        return self.config.window_frames * self.config.n_q + 1

    def context_length(self) -> int:
        return self.sequence_length() - 1

    @property
    def fine_start(self) -> int:
        """Index of the first fine token (after the window's coarse tokens and SEP)."""
        return self.config.window_frames * self.n_coarse + 1

    def coarse_part(self, frames: np.ndarray) -> np.ndarray:
        """Coarse codes [T, >=Qc] of a window (T <= F) -> coarse tokens + SEP [F*Qc + 1], PAD-filled."""
        out = np.full(self.fine_start, self.pad, dtype=np.int64)
        body = (
            np.asarray(frames, dtype=np.int64)[:, : self.n_coarse] + np.asarray(self.level_offsets[: self.n_coarse])
        ).reshape(-1)
        out[: len(body)] = body
        out[-1] = self.sep
        return out

    def fine_tokens(self, frames: np.ndarray) -> np.ndarray:
        """Codes [T, Q] -> flat fine-level tokens [T*(Q-Qc)]."""
        fine = np.asarray(frames, dtype=np.int64)[:, self.n_coarse : self.config.n_q]
        return (fine + np.asarray(self.level_offsets[self.n_coarse :])).reshape(-1)

    def training_example(self, semantic: np.ndarray, acoustic: np.ndarray, rng: np.random.Generator):
        F, total = self.config.window_frames, acoustic.shape[0]
        t0 = int(rng.integers(0, max(total - F, 0) + 1))
        frames = acoustic[t0 : t0 + F]
        seq = np.full(self.sequence_length(), self.pad, dtype=np.int64)
        seq[: self.fine_start] = self.coarse_part(frames)
        body = self.fine_tokens(frames)
        seq[self.fine_start : self.fine_start + len(body)] = body
        return _shift(seq, self.fine_start - 1, pad=self.pad)

    def coarse_part_tokens(self, coarse: torch.Tensor) -> torch.Tensor:
        """Batched `coarse_part`: coarse codes [B, >=Qc, T] (T <= F) -> [B, F*Qc + 1]."""
        B, _, T = coarse.shape
        offsets = torch.tensor(self.level_offsets[: self.n_coarse], device=coarse.device)
        body = (coarse[:, : self.n_coarse].transpose(1, 2) + offsets).reshape(B, -1)
        out = coarse.new_full((B, self.fine_start), self.pad)
        out[:, : body.shape[1]] = body
        out[:, -1] = self.sep
        return out

    def fine_codes_to_tokens(self, fine: torch.Tensor) -> torch.Tensor:
        """Fine codes [B, Q-Qc, T] (levels Qc..Q-1) -> flat tokens [B, T*(Q-Qc)]."""
        offsets = torch.tensor(self.level_offsets[self.n_coarse :], device=fine.device)
        return (fine.transpose(1, 2) + offsets).reshape(fine.shape[0], -1)

    def tokens_to_fine_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """Flat fine tokens [B, T*(Q-Qc)] -> fine codes [B, Q-Qc, T]."""
        offsets = torch.tensor(self.level_offsets[self.n_coarse :], device=tokens.device)
        return (tokens.view(tokens.shape[0], -1, self.n_fine) - offsets).transpose(1, 2)

    def fine_level_masks(self, device: torch.device | str) -> torch.Tensor:
        """bool [Q-Qc, V]: mask[i] allows exactly fine level Qc+i's codes."""
        C = self.config.codebook_size
        mask = torch.zeros(self.n_fine, self.vocab_size, dtype=torch.bool, device=device)
        for i, off in enumerate(self.level_offsets[self.n_coarse :]):
            mask[i, off : off + C] = True
        return mask
