"""`audiolm bench fine`: fine stages side by side — held-out cross entropy per fine level, and
the time to generate the fine levels of N seconds of audio.

Cross entropy: every full window of F frames, laid end to end from frame 0, of every utterance
of the token directory's valid split — the same frames for every stage compared (so they
must share F, Q and Qc). Per fine level q, the mean over frames of -log p(a[q, t]), with p the
softmax over level q's C codes only: the distribution generation samples from (both layouts'
heads span the whole vocabulary; the other levels' entries are masked at sampling).
- AR layout: one causal pass over [coarse tokens of the window, SEP, fine tokens]; the fine
  token of (t, q) sees all coarse codes, the fine codes of frames < t and levels < q at t.
- Bark-style: one pass per level q; level q of every frame sees all coarse codes and the
  levels < q of every frame (no level-q codes: no prompt frames).

Speed: the pipeline's setting — coarse codes for prompt + continuation, the prompt's fine codes
given — timed for `generate_fine` to fill the continuation's fine levels at batch 1 (best of
`repeats`, after one warm-up), with the default recipe's fine sampling; `clock="cpu"` (one
thread) times in process CPU time, as `audiolm bench decode --clock cpu` does, because on a
shared machine wall time mostly measures the other jobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiolm.core.errors import AudiolmError
from audiolm.evaluation.lm.bench import _clock
from audiolm.inference.sampling import SamplingConfig
from audiolm.inference.stages import generate_fine
from audiolm.models.lm.config import StageConfig
from audiolm.models.lm.stage import load_stage, make_layout
from audiolm.models.lm.transformer import Transformer
from audiolm.training.data.shards import TokenShards

FINE_SAMPLING = SamplingConfig(temperature=0.5, top_k=20)  # pipelines/default.json's fine stage


@dataclass
class FineBenchResult:
    stage: str
    fine_style: str
    params: int
    windows: int
    frames: int  # held-out frames per level
    ce_nats: dict[int, float]  # fine level -> mean cross entropy over level q's codes
    generate_s: float  # seconds for the continuation's fine levels at batch 1
    generated_frames: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ce_mean(self) -> float:
        return sum(self.ce_nats.values()) / len(self.ce_nats)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["ce_nats"] = {str(q): v for q, v in self.ce_nats.items()}
        out["ce_mean"] = self.ce_mean
        return out


def held_out_windows(shards: TokenShards, frames: int, max_windows: int | None = None) -> list[np.ndarray]:
    """Codes [F, Q] of every full window [k*F, (k+1)*F) of every utterance, in shard order."""
    windows: list[np.ndarray] = []
    for i in range(len(shards)):
        acoustic = shards[i].acoustic
        for k in range(acoustic.shape[0] // frames):
            windows.append(np.array(acoustic[k * frames : (k + 1) * frames], dtype=np.int64))
            if max_windows is not None and len(windows) >= max_windows:
                return windows
    return windows


def _level_nll(logits: torch.Tensor, codes: torch.Tensor, level: int, C: int) -> torch.Tensor:
    """logits [..., V], codes [...] of level `level` -> -log p over that level's C entries [...]."""
    logp = torch.log_softmax(logits[..., level * C : (level + 1) * C].float(), dim=-1)
    return -logp.gather(-1, codes[..., None])[..., 0]


@torch.inference_mode()
def fine_level_cross_entropy(
    model: Transformer, config: StageConfig, windows: list[np.ndarray], batch_size: int = 8
) -> dict[int, float]:
    """Mean cross entropy (nats) per fine level over `windows` (codes [F, Q] each)."""
    layout = make_layout(config)
    C, Qc, Q = config.codebook_size, config.coarse_levels, config.n_q
    totals = {q: 0.0 for q in range(Qc, Q)}
    count = 0
    model.eval()
    for start in range(0, len(windows), batch_size):
        chunk = np.stack(windows[start : start + batch_size])[:, :, :Q]  # [B, F, Q]
        codes = torch.from_numpy(chunk.astype(np.int64))
        count += codes.shape[0] * codes.shape[1]
        if config.fine_style == "bark":
            for q in range(Qc, Q):
                inputs = torch.from_numpy(np.stack([layout.level_inputs(w, q)[0] for w in chunk]))  # [B, F, Q]
                totals[q] += float(_level_nll(model(inputs), codes[:, :, q], q, C).sum())
        else:
            seq = torch.from_numpy(
                np.stack([np.concatenate([layout.coarse_part(w), layout.fine_tokens(w)]) for w in chunk])
            )  # [B, L]
            logits = model(seq[:, :-1])[:, layout.fine_start - 1 :]  # [B, F*Qf, V]: predicts fine tokens
            logits = logits.unflatten(1, (codes.shape[1], Q - Qc))  # [B, F, Qf, V]
            for q in range(Qc, Q):
                totals[q] += float(_level_nll(logits[:, :, q - Qc], codes[:, :, q], q, C).sum())
    if not count:
        raise AudiolmError("no held-out window: the valid split has no utterance of a full window")
    return {q: total / count for q, total in totals.items()}


def time_fine_generation(
    model: Transformer,
    config: StageConfig,
    codes: np.ndarray,
    prompt_frames: int,
    new_frames: int,
    repeats: int = 3,
    sampling: SamplingConfig = FINE_SAMPLING,
    clock: str = "wall",
) -> float:
    """Best seconds to fill the fine levels of `new_frames` frames after `prompt_frames` known
    ones, at batch 1; codes [T >= prompt + new, Q] supply the coarse codes and the prompt."""
    full = torch.from_numpy(np.asarray(codes[: prompt_frames + new_frames], dtype=np.int64)).T[None]  # [1, Q, T]
    coarse = full[:, : config.coarse_levels]
    prompt = full[:, config.coarse_levels : config.n_q, :prompt_frames]

    now = _clock(torch.device("cpu"), clock)
    best = math.inf
    for i in range(repeats + 1):  # the first run warms up (allocations, packing, caches)
        t = now()
        generate_fine(model, config, coarse, prompt, sampling=sampling, seeds=[0])
        if i:
            best = min(best, now() - t)
    return best


def bench_fine(
    stage_dirs: list[str],
    tokens_dir: str | Path,
    *,
    seconds: float = 4.0,
    prompt_seconds: float = 3.0,
    repeats: int = 3,
    max_windows: int | None = None,
    clock: str = "wall",
) -> list[FineBenchResult]:
    stages = [(d, loaded.model, loaded.config) for d in stage_dirs for loaded in [load_stage(d, "fine")]]
    shape = {(c.window_frames, c.n_q, c.coarse_levels, c.codebook_size) for _, _, c in stages}
    if len(shape) > 1:
        raise AudiolmError(
            "bench fine: the stages differ in window_frames / n_q / coarse_levels / codebook_size "
            f"({sorted(shape)}); the held-out windows must be the same for all"
        )
    F_frames = stages[0][2].window_frames
    valid = TokenShards(tokens_dir, "valid")
    windows = held_out_windows(valid, F_frames, max_windows)
    rate = stages[0][2].acoustic_frame_rate
    prompt_frames, new_frames = round(prompt_seconds * rate), round(seconds * rate)
    long_enough = [
        valid[i].acoustic for i in range(len(valid)) if valid[i].acoustic.shape[0] >= prompt_frames + new_frames
    ]
    if not long_enough:
        raise AudiolmError(f"bench fine: no valid utterance holds {prompt_seconds + seconds:g} s for the speed test")
    results = []
    for directory, model, config in stages:
        ce = fine_level_cross_entropy(model, config, windows)
        secs = time_fine_generation(model, config, long_enough[0], prompt_frames, new_frames, repeats, clock=clock)
        results.append(
            FineBenchResult(
                str(directory),
                config.fine_style,
                model.num_parameters(),
                len(windows),
                len(windows) * F_frames,
                ce,
                secs,
                new_frames,
            )
        )
    return results
