"""Stage-level generation: tokens in, tokens out, for the pipeline to chain.

    generate_semantic(model, config, semantic prompt [B, Ts], n_new)          -> [B, Ts + n_new]
    generate_coarse(model, config, semantic [B, Ts], coarse prompt [B, Qc, Tp]) -> [B, Qc, T]
    generate_fine(model, config, coarse [B, Qc, T])                             -> [B, Q, T]

The semantic stage slides the decoder's window (`decode.py`). The coarse and fine stages
instead walk over the audio in windows of `window_frames` acoustic frames, the unit they were
trained on: each window is rebuilt from its layout (the coarse stage's semantic tokens for
exactly that time span; the fine stage's coarse codes for the whole window), its first
frames are given as a prompt (already known or generated in the previous window) and the
rest is sampled, each token restricted to its RVQ level's vocabulary range. Draw numbers run
on across windows (`step_offset`), so per-sample seeds give reproducible, batch-independent
results here too.

A Bark-style fine stage (`fine_style: "bark"`, `audiolm/models/lm/fine_bark.py`) walks the same
windows but fills each fine level of a window in one non-causal pass; its draws are keyed by
(seed, absolute frame, level), so it too is batch- and window-independent.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from audiolm.inference.decode import generate
from audiolm.inference.sampling import SamplingConfig, position_seeds, sample, seeds_tensor
from audiolm.models.lm.config import StageConfig
from audiolm.models.lm.fine_bark import EMPTY, FineBarkLayout
from audiolm.models.lm.layouts import CoarseLayout, FineLayout, semantic_span
from audiolm.models.lm.transformer import Transformer

FrameProgress = Callable[[int, int], None]


def _check_stage(config: StageConfig, stage: str) -> None:
    if config.stage != stage:
        raise ValueError(f"expected a {stage} stage model, got a {config.stage} stage")


def generate_semantic(
    model: Transformer,
    config: StageConfig,
    prompt: torch.Tensor,
    n_new: int,
    *,
    sampling: SamplingConfig | None = None,
    seeds: list[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Semantic tokens prompt [B, Ts] -> [B, Ts + n_new] (prompt included)."""
    _check_stage(config, "semantic")
    return generate(model, prompt, n_new, sampling=sampling, seeds=seeds, progress=progress)


def generate_coarse(
    model: Transformer,
    config: StageConfig,
    semantic: torch.Tensor,
    prompt_codes: torch.Tensor | None = None,
    n_frames: int | None = None,
    *,
    sampling: SamplingConfig | None = None,
    seeds: list[int] | None = None,
    context_frames: int | None = None,
    progress: FrameProgress | None = None,
) -> torch.Tensor:
    """Coarse codes [B, Qc, n_frames] for semantic tokens [B, Ts] (prompt + continuation).

    prompt_codes [B, >=Qc, Tp]: known first frames (only levels < Qc are used), copied as is.
    n_frames: default = the frames the semantic tokens cover (Ts * fa / fs).
    context_frames: known frames kept as the prompt of each new window (default F // 2).
    """
    _check_stage(config, "coarse")
    layout = CoarseLayout(config)
    F, Qc = config.window_frames, config.coarse_levels
    B, Ts = semantic.shape
    device = semantic.device
    if n_frames is None:
        n_frames = int(Ts * config.acoustic_frame_rate / config.semantic_frame_rate)
    context = F // 2 if context_frames is None else context_frames
    if not 0 <= context < F:
        raise ValueError(f"context_frames must be in [0, {F - 1}], got {context}")
    codes = torch.zeros(B, Qc, n_frames, dtype=torch.long, device=device)
    done = 0
    if prompt_codes is not None:
        done = min(prompt_codes.shape[-1], n_frames)
        codes[:, :, :done] = prompt_codes[:, :Qc, :done]
    masks = layout.level_masks(device)
    start = layout.prefix_length
    drawn = 0
    while done < n_frames:
        t0 = max(0, done - context)
        t1 = min(t0 + F, n_frames)
        j0, j1 = semantic_span(t0, t1, config.semantic_frame_rate, config.acoustic_frame_rate, Ts)
        prompt = torch.cat([layout.prefix_tokens(semantic[:, j0:j1]), layout.codes_to_tokens(codes[:, :, t0:done])], 1)
        n_new = (t1 - done) * Qc
        tokens = generate(
            model, prompt, n_new, sampling=sampling, seeds=seeds, step_offset=drawn,
            logits_mask=lambda pos: masks[(pos - start) % Qc],
        )
        codes[:, :, done:t1] = layout.tokens_to_codes(tokens[:, prompt.shape[1] :])
        drawn += n_new
        done = t1
        if progress is not None:
            progress(done, n_frames)
    return codes


def generate_fine(
    model: Transformer,
    config: StageConfig,
    coarse: torch.Tensor,
    fine_prompt: torch.Tensor | None = None,
    *,
    sampling: SamplingConfig | None = None,
    seeds: list[int] | None = None,
    context_frames: int | None = None,
    progress: FrameProgress | None = None,
) -> torch.Tensor:
    """All levels [B, Q, T] from coarse codes [B, >=Qc, T].

    fine_prompt [B, Q-Qc, Tp] (or [B, Q, Tp]: levels >= Qc are used): known fine codes of the
    first frames. context_frames: fine frames carried into each next window (default F // 4).
    """
    _check_stage(config, "fine")
    if config.fine_style == "bark":
        return _generate_fine_bark(model, config, coarse, fine_prompt, sampling, seeds, context_frames, progress)
    layout = FineLayout(config)
    F, Qc, Q = config.window_frames, config.coarse_levels, config.n_q
    Qf = Q - Qc
    B, _, T = coarse.shape
    device = coarse.device
    context = F // 4 if context_frames is None else context_frames
    if not 0 <= context < F:
        raise ValueError(f"context_frames must be in [0, {F - 1}], got {context}")
    codes, done = _start_fine_codes(coarse, fine_prompt, Qc, Q)
    masks = layout.fine_level_masks(device)
    start = layout.fine_start
    drawn = 0
    while done < T:
        t0 = max(0, min(done - context, T - F))  # full windows where the audio allows
        t1 = min(t0 + F, T)
        prompt = torch.cat(
            [layout.coarse_part_tokens(coarse[:, :, t0:t1]), layout.fine_codes_to_tokens(codes[:, Qc:, t0:done])], 1
        )
        n_new = (t1 - done) * Qf
        tokens = generate(
            model, prompt, n_new, sampling=sampling, seeds=seeds, step_offset=drawn,
            logits_mask=lambda pos: masks[(pos - start) % Qf],
        )
        codes[:, Qc:, done:t1] = layout.tokens_to_fine_codes(tokens[:, prompt.shape[1] :])
        drawn += n_new
        done = t1
        if progress is not None:
            progress(done, T)
    return codes


def _generate_fine_bark(
    model: Transformer,
    config: StageConfig,
    coarse: torch.Tensor,
    fine_prompt: torch.Tensor | None,
    sampling: SamplingConfig | None,
    seeds: list[int] | None,
    context_frames: int | None,
    progress: FrameProgress | None,
) -> torch.Tensor:
    """`generate_fine` for a Bark-style stage: per window, one forward pass per fine level.

    Windows are always F frames, as in training: the last one is PAD-filled past the end. Its
    first `known` frames (at most F // 4, the most training showed) carry fine codes from the
    previous window or the prompt as level-q inputs; the rest of level q is sampled at once."""
    layout = FineBarkLayout(config)
    sampling = sampling or SamplingConfig()
    F, Qc, Q = config.window_frames, config.coarse_levels, config.n_q
    B, _, T = coarse.shape
    device = coarse.device
    context = layout.max_prompt_frames() if context_frames is None else context_frames
    if not 0 <= context <= layout.max_prompt_frames():
        raise ValueError(f"context_frames must be in [0, {layout.max_prompt_frames()}] for a Bark-style fine stage, got {context}")
    codes, done = _start_fine_codes(coarse, fine_prompt, Qc, Q)
    seed_states = seeds_tensor(list(range(B)) if seeds is None else seeds, device)
    if seed_states.shape != (B,):
        raise ValueError(f"expected {B} seeds, got {tuple(seed_states.shape)}")
    masks = [layout.level_mask(q, device) for q in range(Q)]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            while done < T:
                t0 = max(0, done - context)
                t1 = min(t0 + F, T)
                known, real = done - t0, t1 - t0  # prompt frames, frames before the padding
                window = torch.zeros(B, Q, F, dtype=torch.long, device=device)
                window[:, :, :real] = codes[:, :, t0:t1]
                frame_states = position_seeds(seed_states, torch.arange(done, t1, device=device)).reshape(-1)
                for q in range(Qc, Q):
                    inputs = layout.level_input_tokens(window, q, known)  # [B, F, Q]
                    inputs[:, real:] = EMPTY
                    inputs[:, real:, 0] = layout.pad
                    logits = model(inputs)[:, known:real]  # [B, n, V]
                    n = real - known
                    step = torch.full((1,), q, dtype=torch.long, device=device)
                    drawn = sample(logits.reshape(B * n, -1), sampling, frame_states, step, masks[q])
                    window[:, q, known:real] = drawn.view(B, n) - layout.level_offsets[q]
                codes[:, Qc:, done:t1] = window[:, Qc:, known:real]
                done = t1
                if progress is not None:
                    progress(done, T)
    finally:
        model.train(was_training)
    return codes


def _start_fine_codes(coarse: torch.Tensor, fine_prompt: torch.Tensor | None, Qc: int, Q: int) -> tuple[torch.Tensor, int]:
    """All Q levels [B, Q, T] with the coarse levels and the known fine prompt filled in, and how
    many leading frames are already complete. fine_prompt: [B, Q - Qc, P] or [B, Q, P]."""
    B, _, T = coarse.shape
    codes = torch.zeros(B, Q, T, dtype=torch.long, device=coarse.device)
    codes[:, :Qc] = coarse[:, :Qc]
    done = 0
    if fine_prompt is not None:
        fine_prompt = fine_prompt[:, -(Q - Qc):] if fine_prompt.shape[1] == Q else fine_prompt
        done = min(fine_prompt.shape[-1], T)
        codes[:, Qc:, :done] = fine_prompt[:, :, :done]
    return codes, done
