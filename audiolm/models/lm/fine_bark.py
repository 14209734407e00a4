"""Bark-style fine stage layout: non-causal, one forward pass per fine level (`fine_style: "bark"`).

The same `Transformer` as every other stage, built with `causal=False` (set by
`complete_stage_config`), fed several tokens per position (`Transformer.forward` sums their
embeddings; a negative id is an empty slot). One position = one acoustic frame of a window
of F = `window_frames` frames. Q = RVQ levels in the shards, Qc = `coarse_levels`, C = codebook
size, Qf = Q - Qc fine levels.

Token ids (vocab Q*C + Qf + 1)
    level l code c -> l*C + c   (as in the AR fine layout: a separate embedding row per level)
    QUERY_q        -> Q*C + (q - Qc)   "predict level q here", one per fine level
    PAD            -> Q*C + Qf         frames past the end of a short utterance

Predicting level q (Qc <= q < Q) over frames [t0, t0+F): inputs [F, Q], targets [F]
    column l < q : a[l, t] + l*C       (coarse levels and the fine levels below q, all frames)
    column q     : QUERY_q             (or a[q, t] + q*C on the first P "prompt" frames)
    column > q   : -1                  (empty)
    target t     : a[q, t] + q*C on the non-prompt frames; ignored on prompt and PAD frames
Every frame sees the whole window in both directions (past and future coarse codes, and the
lower levels of every frame), and all F frames of level q come out of one pass. Levels go in
order Qc, Qc+1, ..., Q-1, each pass conditioning on the levels sampled before it: Qf passes
per window where the AR layout needs F*Qf one-token steps. Training draws one level q per
example (uniform over the fine levels) and P uniform in [0, F/4]; the prompt frames are how
generation carries fine codes over from the previous, overlapping window. The output head is
the shared one over the whole vocabulary; loss and sampling use level q's C entries.

Alignment: this stage sees acoustic frames only (75 Hz); no semantic tokens, no separators.

Why: against the AR fine layout (`layouts.FineLayout`) at the same model size and training
budget, this layout is no worse in held-out cross entropy and an order of magnitude faster to
generate (the comparison: BENCHMARKS.md, "Fine stage: AR vs Bark-style"). It is the recommended
fine stage; the AR layout stays selectable (and the default) for existing checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch

from audiolm.models.lm.config import StageConfig
from audiolm.models.lm.layouts import IGNORE

EMPTY = -1  # an input slot that adds nothing to the position's embedding


class FineBarkLayout:
    def __init__(self, config: StageConfig) -> None:
        self.config = config
        C, Q = config.codebook_size, config.n_q
        self.n_coarse, self.n_fine = config.coarse_levels, Q - config.coarse_levels
        self.level_offsets = [q * C for q in range(Q)]
        self.query_ids = [Q * C + i for i in range(self.n_fine)]  # QUERY_q at index q - Qc
        self.pad = Q * C + self.n_fine
        self.vocab_size = Q * C + self.n_fine + 1

    def max_window_frames(self) -> int:
        return self.config.model.max_seq_len

    def sequence_length(self) -> int:
        return self.config.window_frames

    def context_length(self) -> int:
        return self.config.window_frames

    def max_prompt_frames(self) -> int:
        return self.config.window_frames // 4

    def level_inputs(self, frames: np.ndarray, level: int, prompt_frames: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Codes [T, >=Q] of a window (T <= F) and a fine level q -> (inputs [F, Q], targets [F])."""
        c = self.config
        F, Q = c.window_frames, c.n_q
        if not self.n_coarse <= level < Q:
            raise ValueError(f"level {level} is not a fine level ({self.n_coarse}..{Q - 1})")
        codes = np.asarray(frames, dtype=np.int64)[:F, :Q]
        T = codes.shape[0]
        tokens = codes + np.asarray(self.level_offsets)  # [T, Q]
        inputs = np.full((F, Q), EMPTY, dtype=np.int64)
        inputs[:T, :level] = tokens[:, :level]
        inputs[:T, level] = self.query_ids[level - self.n_coarse]
        inputs[:prompt_frames, level] = tokens[:prompt_frames, level]
        inputs[T:, 0] = self.pad
        targets = np.full(F, IGNORE, dtype=np.int64)
        targets[prompt_frames:T] = tokens[prompt_frames:, level]
        return inputs, targets

    def training_example(self, semantic: np.ndarray, acoustic: np.ndarray, rng: np.random.Generator):
        F, total = self.config.window_frames, acoustic.shape[0]
        t0 = int(rng.integers(0, max(total - F, 0) + 1))
        level = int(rng.integers(self.n_coarse, self.config.n_q))
        frames = acoustic[t0 : t0 + F]
        prompt = int(rng.integers(0, min(self.max_prompt_frames(), max(len(frames) - 1, 0)) + 1))
        return self.level_inputs(frames, level, prompt)

    def level_input_tokens(self, codes: torch.Tensor, level: int, known: int) -> torch.Tensor:
        """Batched `level_inputs` at generation: codes [B, >=level+1, T] of one window (levels
        < `level` all known, level `level` known on the first `known` frames) -> [B, T, Q]."""
        B, _, T = codes.shape
        offsets = torch.tensor(self.level_offsets[:level], device=codes.device)
        out = codes.new_full((B, T, self.config.n_q), EMPTY)
        out[:, :, :level] = codes[:, :level].transpose(1, 2) + offsets
        out[:, :, level] = self.query_ids[level - self.n_coarse]
        out[:, :known, level] = codes[:, level, :known] + self.level_offsets[level]
        return out

    def level_mask(self, level: int, device: torch.device | str) -> torch.Tensor:
        """bool [V]: exactly level `level`'s codes."""
        C = self.config.codebook_size
        mask = torch.zeros(self.vocab_size, dtype=torch.bool, device=device)
        mask[level * C : (level + 1) * C] = True
        return mask
