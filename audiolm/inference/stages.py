"""Stage-level generation: tokens in, tokens out, for the pipeline to chain.

    generate_semantic(model, config, semantic prompt [B, Ts], n_new)          -> [B, Ts + n_new]
    generate_coarse(model, config, semantic [B, Ts], coarse prompt [B, Qc, Tp]) -> [B, Qc, T]
    generate_fine(model, config, coarse [B, Qc, T])                             -> [B, Q, T]

Each stage is a `Track`: a tensor filled left to right by a generator (`semantic_track`,
`coarse_track`, `fine_track`), with `ready` leading frames final. A track pulls what it needs
from the track before it (`upstream.fill(t)`) only when it needs it, so asking the fine track
for its next window runs the coarse stage just far enough, which runs the semantic stage just
far enough: the stages interleave and audio can start before the continuation is complete
(`AudioLM.stream`). The `generate_*` functions fill a track to the end; streamed and whole
generation run the same loops in the same order of draws, so they give the same tokens.

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

from collections.abc import Callable, Iterator

import torch

from audiolm.inference.decode import decode_steps
from audiolm.inference.sampling import SamplingConfig, position_seeds, sample, seeds_tensor
from audiolm.models.lm.config import StageConfig
from audiolm.models.lm.fine_bark import EMPTY, FineBarkLayout
from audiolm.models.lm.layouts import CoarseLayout, FineLayout, semantic_span
from audiolm.models.lm.transformer import Transformer

FrameProgress = Callable[[int, int], None]


class Track:
    """A tensor [B, ..., T] filled left to right: frames [0, ready) are final.

    `steps` is a generator that writes into `data`, raises `ready` and yields each time it has
    made progress (a token, a frame or a window); it is started lazily, on the first `fill` or
    `advance`. progress(ready, T) is called after every step.
    """

    def __init__(
        self,
        data: torch.Tensor,
        ready: int,
        steps: Callable[[Track], Iterator[None]],
        progress: FrameProgress | None = None,
    ) -> None:
        self.data = data
        self.ready = min(ready, data.shape[-1])
        self._make_steps = steps
        self._steps: Iterator[None] | None = None
        self.progress = progress

    @property
    def length(self) -> int:
        return self.data.shape[-1]

    @property
    def done(self) -> bool:
        return self.ready >= self.length

    def advance(self) -> int:
        """Run one step of the producer; return `ready` (unchanged once the track is full)."""
        if self.done:
            return self.ready
        if self._steps is None:
            self._steps = self._make_steps(self)
        try:
            next(self._steps)
        except StopIteration:
            raise RuntimeError(f"track stopped at frame {self.ready} of {self.length}") from None
        if self.progress is not None:
            self.progress(self.ready, self.length)
        return self.ready

    def fill(self, t: int | None = None) -> torch.Tensor:
        """Run the producer until frame t (default: the end) is ready; return `data`."""
        t = self.length if t is None else min(t, self.length)
        while self.ready < t:
            self.advance()
        return self.data


def _check_stage(config: StageConfig, stage: str) -> None:
    if config.stage != stage:
        raise ValueError(f"expected a {stage} stage model, got a {config.stage} stage")


# -- semantic -------------------------------------------------------------------------------


def semantic_track(
    model: Transformer,
    config: StageConfig,
    prompt: torch.Tensor,
    n_new: int,
    *,
    sampling: SamplingConfig | None = None,
    seeds: list[int] | None = None,
    progress: FrameProgress | None = None,
    compile_step: bool | str = False,
) -> Track:
    """Semantic tokens [B, Ts + n_new], the prompt [B, Ts] ready; one step per sampled token.
    compile_step: as in `decode.decode` (CPU)."""
    _check_stage(config, "semantic")
    B, Ts = prompt.shape
    data = torch.empty(B, Ts + max(0, n_new), dtype=torch.long, device=prompt.device)
    data[:, :Ts] = prompt

    def steps(track: Track) -> Iterator[None]:
        for step in decode_steps(model, prompt, n_new, sampling=sampling, seeds=seeds, compile_step=compile_step):
            data[:, step.index] = step.tokens[:, step.index]
            track.ready = step.index + 1
            yield

    return Track(data, Ts, steps, progress)


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
    Ts = prompt.shape[1]
    report = None if progress is None else (lambda ready, total: progress(ready - Ts, total - Ts))
    return semantic_track(model, config, prompt, n_new, sampling=sampling, seeds=seeds, progress=report).fill()


def _given(tokens: torch.Tensor) -> Track:
    """A track whose data is all known already."""

    def steps(track: Track) -> Iterator[None]:
        return iter(())

    return Track(tokens, tokens.shape[-1], steps)


# -- coarse ---------------------------------------------------------------------------------


def coarse_track(
    model: Transformer,
    config: StageConfig,
    semantic: Track | torch.Tensor,
    prompt_codes: torch.Tensor | None = None,
    n_frames: int | None = None,
    *,
    sampling: SamplingConfig | None = None,
    seeds: list[int] | None = None,
    context_frames: int | None = None,
    progress: FrameProgress | None = None,
    compile_step: bool | str = False,
) -> Track:
    """Coarse codes [B, Qc, n_frames] for semantic tokens (a tensor [B, Ts] or a track that
    fills as needed); the prompt frames ready; one step per generated frame. Arguments as in
    `generate_coarse`; compile_step as in `decode.decode` (CPU)."""
    _check_stage(config, "coarse")
    semantic = semantic if isinstance(semantic, Track) else _given(semantic)
    layout = CoarseLayout(config)
    F, Qc = config.window_frames, config.coarse_levels
    B, Ts = semantic.data.shape
    device = semantic.data.device
    if n_frames is None:
        n_frames = int(Ts * config.acoustic_frame_rate / config.semantic_frame_rate)
    context = F // 2 if context_frames is None else context_frames
    if not 0 <= context < F:
        raise ValueError(f"context_frames must be in [0, {F - 1}], got {context}")
    codes = torch.zeros(B, Qc, n_frames, dtype=torch.long, device=device)
    known = 0
    if prompt_codes is not None:
        known = min(prompt_codes.shape[-1], n_frames)
        codes[:, :, :known] = prompt_codes[:, :Qc, :known]
    masks = layout.level_masks(device)
    start = layout.prefix_length

    def steps(track: Track) -> Iterator[None]:
        done, drawn = track.ready, 0
        while done < n_frames:
            t0 = max(0, done - context)
            t1 = min(t0 + F, n_frames)
            j0, j1 = semantic_span(t0, t1, config.semantic_frame_rate, config.acoustic_frame_rate, Ts)
            window_semantic = semantic.fill(j1)[:, j0:j1]
            prompt = torch.cat([layout.prefix_tokens(window_semantic), layout.codes_to_tokens(codes[:, :, t0:done])], 1)
            n_new = (t1 - done) * Qc
            P = prompt.shape[1]
            for step in decode_steps(
                model,
                prompt,
                n_new,
                sampling=sampling,
                seeds=seeds,
                step_offset=drawn,
                logits_mask=lambda pos: masks[(pos - start) % Qc],
                compile_step=compile_step,
            ):
                drawn_here = step.index - P + 1
                if drawn_here % Qc == 0:  # a frame is complete
                    frame = done + drawn_here // Qc - 1
                    codes[:, :, frame : frame + 1] = layout.tokens_to_codes(
                        step.tokens[:, step.index + 1 - Qc : step.index + 1]
                    )
                    track.ready = frame + 1
                    yield
            drawn += n_new
            done = t1

    return Track(codes, known, steps, progress)


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
    progress(done, n_frames) is called after each frame.
    """
    return coarse_track(
        model,
        config,
        semantic,
        prompt_codes,
        n_frames,
        sampling=sampling,
        seeds=seeds,
        context_frames=context_frames,
        progress=progress,
    ).fill()


# -- fine -----------------------------------------------------------------------------------


def fine_track(
    model: Transformer,
    config: StageConfig,
    coarse: Track | torch.Tensor,
    fine_prompt: torch.Tensor | None = None,
    *,
    sampling: SamplingConfig | None = None,
    seeds: list[int] | None = None,
    context_frames: int | None = None,
    progress: FrameProgress | None = None,
    first_window_frames: int | None = None,
    compile_step: bool | str = False,
) -> Track:
    """All levels [B, Q, T] from coarse codes (a tensor [B, >=Qc, T] or a track that fills as
    needed); the prompt frames ready; one step per frame (a window for a Bark-style stage).
    Arguments as in `generate_fine`; first_window_frames: the first window generates at most
    this many frames and each next one at most twice as many as the one before (until windows
    are full), so audio can start sooner and keep ahead of playback while the windows grow
    (default None: windows as `generate_fine` walks them). compile_step: as in `decode.decode`
    (CPU; an autoregressive fine stage only)."""
    _check_stage(config, "fine")
    coarse = coarse if isinstance(coarse, Track) else _given(coarse)
    if first_window_frames is not None and first_window_frames < 1:
        raise ValueError(f"first_window_frames must be >= 1, got {first_window_frames}")
    if config.fine_style == "bark":
        return _fine_bark_track(
            model, config, coarse, fine_prompt, sampling, seeds, context_frames, progress, first_window_frames
        )
    layout = FineLayout(config)
    F, Qc, Q = config.window_frames, config.coarse_levels, config.n_q
    Qf = Q - Qc
    B, _, T = coarse.data.shape
    device = coarse.data.device
    context = F // 4 if context_frames is None else context_frames
    if not 0 <= context < F:
        raise ValueError(f"context_frames must be in [0, {F - 1}], got {context}")
    codes, known = _start_fine_codes(coarse.data, fine_prompt, Qc, Q)
    masks = layout.fine_level_masks(device)
    start = layout.fine_start

    def steps(track: Track) -> Iterator[None]:
        done, drawn = track.ready, 0
        limit = first_window_frames
        while done < T:
            t0 = max(0, min(done - context, T - F))  # full windows where the audio allows
            t1 = min(t0 + F, T)
            if limit is not None:  # a short first window; each next one at most twice as long
                t1 = min(t1, done + limit)
                limit = None if 2 * limit >= F else 2 * limit
            window_coarse = coarse.fill(t1)[:, :Qc, t0:t1]
            codes[:, :Qc, done:t1] = window_coarse[:, :, done - t0 :]
            prompt = torch.cat(
                [layout.coarse_part_tokens(window_coarse), layout.fine_codes_to_tokens(codes[:, Qc:, t0:done])], 1
            )
            n_new = (t1 - done) * Qf
            P = prompt.shape[1]
            for step in decode_steps(
                model,
                prompt,
                n_new,
                sampling=sampling,
                seeds=seeds,
                step_offset=drawn,
                logits_mask=lambda pos: masks[(pos - start) % Qf],
                compile_step=compile_step,
            ):
                drawn_here = step.index - P + 1
                if drawn_here % Qf == 0:  # a frame is complete
                    frame = done + drawn_here // Qf - 1
                    new = step.tokens[:, step.index + 1 - Qf : step.index + 1]
                    codes[:, Qc:, frame : frame + 1] = layout.tokens_to_fine_codes(new)
                    track.ready = frame + 1
                    yield
            drawn += n_new
            done = t1

    return Track(codes, known, steps, progress)


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
    first frames. context_frames: fine frames carried into each next window (default F // 4;
    for a Bark-style stage at most the layout's `max_prompt_frames`). progress(done, T) is
    called after each frame (each window for a Bark-style stage).
    """
    return fine_track(
        model,
        config,
        coarse,
        fine_prompt,
        sampling=sampling,
        seeds=seeds,
        context_frames=context_frames,
        progress=progress,
    ).fill()


def _fine_bark_track(
    model: Transformer,
    config: StageConfig,
    coarse: Track,
    fine_prompt: torch.Tensor | None,
    sampling: SamplingConfig | None,
    seeds: list[int] | None,
    context_frames: int | None,
    progress: FrameProgress | None,
    first_window_frames: int | None = None,
) -> Track:
    """`fine_track` for a Bark-style stage: per window, one forward pass per fine level.

    Windows are always F frames, as in training: the last one is PAD-filled past the end. Its
    first `known` frames (at most F // 4, the most training showed) carry fine codes from the
    previous window or the prompt as level-q inputs; the rest of level q is sampled at once."""
    layout = FineBarkLayout(config)
    sampling = sampling or SamplingConfig()
    F, Qc, Q = config.window_frames, config.coarse_levels, config.n_q
    B, _, T = coarse.data.shape
    device = coarse.data.device
    context = layout.max_prompt_frames() if context_frames is None else context_frames
    if not 0 <= context <= layout.max_prompt_frames():
        raise ValueError(
            f"context_frames must be in [0, {layout.max_prompt_frames()}] for a Bark-style fine stage, got {context}"
        )
    codes, known_frames = _start_fine_codes(coarse.data, fine_prompt, Qc, Q)
    seed_states = seeds_tensor(list(range(B)) if seeds is None else seeds, device)
    if seed_states.shape != (B,):
        raise ValueError(f"expected {B} seeds, got {tuple(seed_states.shape)}")
    masks = [layout.level_mask(q, device) for q in range(Q)]

    def steps(track: Track) -> Iterator[None]:
        done = track.ready
        limit = first_window_frames
        while done < T:
            t0 = max(0, done - context)
            t1 = min(t0 + F, T)
            if limit is not None:  # a short first window (PAD-filled past t1, like the last one);
                t1 = min(t1, done + limit)  # each next one at most twice as long, up to F
                limit = None if 2 * limit >= F else 2 * limit
            window_coarse = coarse.fill(t1)[:, :Qc, t0:t1]
            was_training = model.training
            model.eval()
            try:
                with torch.inference_mode():
                    codes[:, :Qc, done:t1] = window_coarse[:, :, done - t0 :]
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
            finally:
                model.train(was_training)
            done = track.ready = t1
            yield

    return Track(codes, known_frames, steps, progress)


def _start_fine_codes(
    coarse: torch.Tensor, fine_prompt: torch.Tensor | None, Qc: int, Q: int
) -> tuple[torch.Tensor, int]:
    """All Q levels [B, Q, T] with the coarse levels (as far as known) and the known fine prompt
    filled in, and how many leading frames are already complete. fine_prompt: [B, Q - Qc, P]
    or [B, Q, P]."""
    B, _, T = coarse.shape
    codes = torch.zeros(B, Q, T, dtype=torch.long, device=coarse.device)
    codes[:, :Qc] = coarse[:, :Qc]
    done = 0
    if fine_prompt is not None:
        fine_prompt = fine_prompt[:, -(Q - Qc) :] if fine_prompt.shape[1] == Q else fine_prompt
        done = min(fine_prompt.shape[-1], T)
        codes[:, Qc:, :done] = fine_prompt[:, :, :done]
    return codes, done
