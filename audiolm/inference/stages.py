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
from dataclasses import dataclass

import torch

from audiolm.inference.decode import decode_steps, left_padded
from audiolm.inference.sampling import SamplingConfig, position_seeds, sample, seeds_tensor
from audiolm.models.lm.config import StageConfig
from audiolm.models.lm.fine_bark import EMPTY, FineBarkLayout
from audiolm.models.lm.layouts import CoarseLayout, FineLayout, semantic_span
from audiolm.models.lm.transformer import Transformer

FrameProgress = Callable[[int, int], None]


class Track:
    """A tensor [B, ..., T] filled left to right: frames [0, ready) are final.

    Rows may be of different lengths (`lengths`, row b's frames [0, lengths[b]), zeros after):
    then frames [0, min(ready, lengths[b])) of every row b are final (`set_ready`).
    `steps` is a generator that writes into `data`, raises `ready` and yields each time it has
    made progress (a token, a frame or a window); it is started lazily, on the first `fill` or
    `advance`. progress(ready, T) is called after every step.
    """

    def __init__(
        self,
        data: torch.Tensor,
        ready: int | list[int],
        steps: Callable[[Track], Iterator[None]],
        progress: FrameProgress | None = None,
        lengths: list[int] | None = None,
    ) -> None:
        self.data = data
        self.lengths = [data.shape[-1]] * data.shape[0] if lengths is None else list(lengths)
        self.ready = 0
        self.set_ready(ready)
        self._make_steps = steps
        self._steps: Iterator[None] | None = None
        self.progress = progress

    def set_ready(self, ready: int | list[int]) -> None:
        """Frames final so far: one count for every row, or one per row (a finished row counts
        as the whole width, so `ready` is how far every unfinished row has come)."""
        if isinstance(ready, int):
            self.ready = min(ready, self.length)
        else:
            self.ready = min((r if r < n else self.length for r, n in zip(ready, self.lengths)), default=self.length)

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
    n_new: int | list[int],
    *,
    sampling: SamplingConfig | None = None,
    seeds: list[int] | None = None,
    progress: FrameProgress | None = None,
    prompt_lengths: list[int] | None = None,
    compile_step: bool | str = False,
) -> Track:
    """Semantic tokens [B, Ts + n_new], the prompt [B, Ts] ready; one step per sampled token.

    Rows of different lengths: prompt_lengths[b] (row b's prompt is prompt[b, :prompt_lengths[b]])
    and n_new per row; the track's rows are then lengths[b] = prompt_lengths[b] + n_new[b]
    long, padded with zeros, and all decode as one left-padded batch (`decode_steps`).
    compile_step: as in `decode.decode` (CPU; bypassed for a ragged batch)."""
    _check_stage(config, "semantic")
    B, Ts = prompt.shape
    lengths = _per_row(prompt_lengths, B, Ts)
    news = [max(0, n) for n in _per_row(n_new, B, 0)]
    totals = [n + k for n, k in zip(lengths, news)]
    data = torch.zeros(B, max(totals), dtype=torch.long, device=prompt.device)
    if len(set(lengths)) == 1:
        data[:, : lengths[0]] = prompt[:, : lengths[0]]
    else:
        for b, n in enumerate(lengths):
            data[b, :n] = prompt[b, :n]

    def steps(track: Track) -> Iterator[None]:
        rows = [data[b : b + 1, :n] for b, n in enumerate(lengths)]
        window, window_lengths, _ = _window_batch(rows, [0])
        width = window.shape[1]
        even = len(set(lengths)) == 1 and len(set(news)) == 1
        for step in decode_steps(
            model,
            window,
            max(news),
            sampling=sampling,
            seeds=seeds,
            prompt_lengths=window_lengths,
            compile_step=compile_step,
        ):
            k = step.index - width  # tokens drawn before this one
            if even:
                data[:, lengths[0] + k] = step.tokens[:, step.index]
                track.set_ready(lengths[0] + k + 1)
            else:
                for b in range(B):
                    if k < news[b]:
                        data[b, lengths[b] + k] = step.tokens[b, step.index]
                track.set_ready([n + min(k + 1, m) for n, m in zip(lengths, news)])
            yield

    return Track(data, lengths, steps, progress, lengths=totals)


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


def _per_row(value: int | list[int] | None, B: int, default: int) -> list[int]:
    if value is None:
        return [default] * B
    if isinstance(value, int):
        return [value] * B
    if len(value) != B:
        raise ValueError(f"expected {B} values (one per row), got {len(value)}")
    return [int(v) for v in value]


@dataclass
class _WindowRows:
    """The rows decoding one window: each row b draws frames [done[b], t1[b]); `drawn[b]`
    counts the tokens it has drawn so far (its sampling offset). `done` and `drawn` advance
    when the window is finished."""

    rows: list[int]
    batch: int  # rows in the whole batch
    done: list[int]
    t1: dict[int, int]
    drawn: list[int]


def _decode_window(
    model: Transformer,
    prompts: list[torch.Tensor],
    window: _WindowRows,
    codes: torch.Tensor,
    levels: slice,
    tokens_to_codes: Callable[[torch.Tensor], torch.Tensor],
    track: Track,
    sampling: SamplingConfig | None,
    seeds: list[int],
    masks: torch.Tensor,
    compile_step: bool | str,
) -> Iterator[None]:
    """Decode one window of frames for `window.rows` (prompts [1, P_b] each, left-padded into
    one batch): every frame's `levels` tokens become codes[b, levels, frame] and the track's
    ready frames move on; yields once per drawn frame (a coarse and a fine track both)."""
    rows, done, t1, drawn = window.rows, window.done, window.t1, window.drawn
    per_frame = levels.stop - levels.start
    prompt, lengths, offsets = _window_batch(prompts, [drawn[b] for b in rows])
    n_new = {b: (t1[b] - done[b]) * per_frame for b in rows}
    P = prompt.shape[1]
    even = len(rows) == window.batch and len({(done[b], t1[b]) for b in rows}) == 1
    for step in decode_steps(
        model,
        prompt,
        max(n_new.values()),
        sampling=sampling,
        seeds=seeds,
        step_offset=offsets,
        logits_mask=_cycling(masks, P),
        prompt_lengths=lengths,
        compile_step=compile_step,
    ):
        drawn_here = step.index - P + 1
        if drawn_here % per_frame:
            continue
        new = tokens_to_codes(step.tokens[:, step.index + 1 - per_frame : step.index + 1])  # [rows, Q, 1]
        frame = drawn_here // per_frame - 1  # frame of the window, counted from done
        if even:
            codes[:, levels, done[0] + frame : done[0] + frame + 1] = new
            track.set_ready(done[0] + frame + 1)
        else:
            for i, b in enumerate(rows):
                if done[b] + frame < t1[b]:
                    codes[b, levels, done[b] + frame] = new[i, :, 0]
            track.set_ready([min(d + frame + 1, t1[b]) if b in t1 else d for b, d in enumerate(done)])
        yield
    for b in rows:
        drawn[b] += n_new[b]
        done[b] = t1[b]


def _cycling(masks: torch.Tensor, first: int) -> Callable[[int], torch.Tensor]:
    """logits_mask(pos) for `decode_steps`: masks [L, V] in turn, masks[0] at column `first`
    (the first new token: a window's new tokens run level 0, 1, .., L-1, 0, ..)."""
    return lambda pos: masks[(pos - first) % masks.shape[0]]


def _window_batch(
    prompts: list[torch.Tensor], drawn: list[int]
) -> tuple[torch.Tensor, list[int] | None, int | list[int]]:
    """Per-row window prompts [1, P_b] -> (prompt [B, max P_b] left-padded, its lengths or None
    when all agree, the draw offsets: one int when all agree). Rows that agree run exactly the
    batch-of-equals path."""
    if len({p.shape[-1] for p in prompts}) == 1:
        tokens, lengths = torch.cat(prompts), None
    else:
        tokens, lengths = left_padded([p[0] for p in prompts])
    return tokens, lengths, drawn[0] if len(set(drawn)) == 1 else drawn


# -- coarse ---------------------------------------------------------------------------------


def coarse_track(
    model: Transformer,
    config: StageConfig,
    semantic: Track | torch.Tensor,
    prompt_codes: torch.Tensor | None = None,
    n_frames: int | list[int] | None = None,
    *,
    sampling: SamplingConfig | None = None,
    seeds: list[int] | None = None,
    context_frames: int | None = None,
    progress: FrameProgress | None = None,
    prompt_frames: list[int] | None = None,
    compile_step: bool | str = False,
) -> Track:
    """Coarse codes [B, Qc, n_frames] for semantic tokens (a tensor [B, Ts] or a track that
    fills as needed); the prompt frames ready; one step per generated frame. Arguments as in
    `generate_coarse`; rows of different lengths: n_frames and prompt_frames (row b's prompt is
    prompt_codes[b, :, :prompt_frames[b]]) per row, its semantic tokens `semantic.lengths[b]`.
    Each row walks its own windows; window k of every row decodes in one left-padded batch.
    compile_step: as in `decode.decode` (CPU; bypassed for a ragged batch)."""
    _check_stage(config, "coarse")
    semantic = semantic if isinstance(semantic, Track) else _given(semantic)
    layout = CoarseLayout(config)
    F, Qc = config.window_frames, config.coarse_levels
    B = semantic.data.shape[0]
    semantic_lengths = semantic.lengths
    device = semantic.data.device
    frames = [
        int(ts * config.acoustic_frame_rate / config.semantic_frame_rate) if n is None else n
        for ts, n in zip(semantic_lengths, [n_frames] * B if not isinstance(n_frames, list) else n_frames)
    ]
    context = F // 2 if context_frames is None else context_frames
    if not 0 <= context < F:
        raise ValueError(f"context_frames must be in [0, {F - 1}], got {context}")
    codes = torch.zeros(B, Qc, max(frames), dtype=torch.long, device=device)
    known = [0] * B
    if prompt_codes is not None:
        given = _per_row(prompt_frames, B, prompt_codes.shape[-1])
        known = [min(g, n) for g, n in zip(given, frames)]
        for b in range(B):
            codes[b, :, : known[b]] = prompt_codes[b, :Qc, : known[b]]
    masks = layout.level_masks(device)
    seed_list = list(range(B)) if seeds is None else list(seeds)

    def steps(track: Track) -> Iterator[None]:
        done, drawn = list(known), [0] * B
        while True:
            rows = [b for b in range(B) if done[b] < frames[b]]
            if not rows:
                return
            t0 = {b: max(0, done[b] - context) for b in rows}
            t1 = {b: min(t0[b] + F, frames[b]) for b in rows}
            spans = {
                b: semantic_span(
                    t0[b], t1[b], config.semantic_frame_rate, config.acoustic_frame_rate, semantic_lengths[b]
                )
                for b in rows
            }
            tokens = semantic.fill(max(j1 for _, j1 in spans.values()))
            prompts = [
                torch.cat(
                    [
                        layout.prefix_tokens(tokens[b : b + 1, spans[b][0] : spans[b][1]]),
                        layout.codes_to_tokens(codes[b : b + 1, :, t0[b] : done[b]]),
                    ],
                    1,
                )
                for b in rows
            ]
            yield from _decode_window(
                model,
                prompts,
                _WindowRows(rows, B, done, t1, drawn),
                codes,
                slice(0, Qc),
                layout.tokens_to_codes,
                track,
                sampling,
                [seed_list[b] for b in rows],
                masks,
                compile_step,
            )

    return Track(codes, known, steps, progress, lengths=frames)


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
    (Rows of different lengths: `coarse_track`.)

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
    fine_prompt_frames: list[int] | None = None,
    compile_step: bool | str = False,
) -> Track:
    """All levels [B, Q, T] from coarse codes (a tensor [B, >=Qc, T] or a track that fills as
    needed); the prompt frames ready; one step per frame (a window for a Bark-style stage).
    Rows of different lengths: the coarse track's `lengths`, and fine_prompt_frames per row
    (row b's fine prompt is fine_prompt[b, :, :fine_prompt_frames[b]]); each row walks its own
    windows, window k of every row in one batch.
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
            model,
            config,
            coarse,
            fine_prompt,
            sampling,
            seeds,
            context_frames,
            progress,
            first_window_frames,
            fine_prompt_frames,
        )
    layout = FineLayout(config)
    F, Qc, Q = config.window_frames, config.coarse_levels, config.n_q
    Qf = Q - Qc
    B = coarse.data.shape[0]
    frames = coarse.lengths
    device = coarse.data.device
    context = F // 4 if context_frames is None else context_frames
    if not 0 <= context < F:
        raise ValueError(f"context_frames must be in [0, {F - 1}], got {context}")
    codes, known = _start_fine_codes(coarse, fine_prompt, Qc, Q, fine_prompt_frames)
    masks = layout.fine_level_masks(device)
    seed_list = list(range(B)) if seeds is None else list(seeds)

    def steps(track: Track) -> Iterator[None]:
        done, drawn = list(known), [0] * B
        limit = first_window_frames
        while True:
            rows = [b for b in range(B) if done[b] < frames[b]]
            if not rows:
                return
            t0 = {b: max(0, min(done[b] - context, frames[b] - F)) for b in rows}  # full windows where the audio allows
            t1 = {b: min(t0[b] + F, frames[b]) for b in rows}
            if limit is not None:  # a short first window; each next one at most twice as long
                t1 = {b: min(t1[b], done[b] + limit) for b in rows}
                limit = None if 2 * limit >= F else 2 * limit
            coarse_codes = coarse.fill(max(t1.values()))
            prompts = []
            for b in rows:
                window_coarse = coarse_codes[b : b + 1, :Qc, t0[b] : t1[b]]
                codes[b, :Qc, done[b] : t1[b]] = window_coarse[0, :, done[b] - t0[b] :]
                prompts.append(
                    torch.cat(
                        [
                            layout.coarse_part_tokens(window_coarse),
                            layout.fine_codes_to_tokens(codes[b : b + 1, Qc:, t0[b] : done[b]]),
                        ],
                        1,
                    )
                )
            yield from _decode_window(
                model,
                prompts,
                _WindowRows(rows, B, done, t1, drawn),
                codes,
                slice(Qc, Qc + Qf),
                layout.tokens_to_fine_codes,
                track,
                sampling,
                [seed_list[b] for b in rows],
                masks,
                compile_step,
            )

    return Track(codes, known, steps, progress, lengths=frames)


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
    first frames. (Rows of different lengths: `fine_track`.) context_frames: fine frames carried into each next window (default F // 4;
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
    fine_prompt_frames: list[int] | None = None,
) -> Track:
    """`fine_track` for a Bark-style stage: per window, one forward pass per fine level.

    Windows are always F frames, as in training: the last one is PAD-filled past the end. Its
    first `known` frames (at most F // 4, the most training showed) carry fine codes from the
    previous window or the prompt as level-q inputs; the rest of level q is sampled at once.
    Every row's window is F frames, so rows of different lengths batch with no padding mask:
    only which frames of its window a row samples differs."""
    layout = FineBarkLayout(config)
    sampling = sampling or SamplingConfig()
    F, Qc, Q = config.window_frames, config.coarse_levels, config.n_q
    B = coarse.data.shape[0]
    frames = coarse.lengths
    device = coarse.data.device
    context = layout.max_prompt_frames() if context_frames is None else context_frames
    if not 0 <= context <= layout.max_prompt_frames():
        raise ValueError(
            f"context_frames must be in [0, {layout.max_prompt_frames()}] for a Bark-style fine stage, got {context}"
        )
    codes, known_frames = _start_fine_codes(coarse, fine_prompt, Qc, Q, fine_prompt_frames)
    seed_states = seeds_tensor(list(range(B)) if seeds is None else seeds, device)
    if seed_states.shape != (B,):
        raise ValueError(f"expected {B} seeds, got {tuple(seed_states.shape)}")
    masks = [layout.level_mask(q, device) for q in range(Q)]

    def steps(track: Track) -> Iterator[None]:
        done = list(known_frames)
        limit = first_window_frames
        while True:
            rows = [b for b in range(B) if done[b] < frames[b]]
            if not rows:
                return
            t0 = {b: max(0, done[b] - context) for b in rows}
            t1 = {b: min(t0[b] + F, frames[b]) for b in rows}
            if limit is not None:  # a short first window (PAD-filled past t1, like the last one);
                t1 = {b: min(t1[b], done[b] + limit) for b in rows}  # each next one at most twice as long, up to F
                limit = None if 2 * limit >= F else 2 * limit
            coarse_codes = coarse.fill(max(t1.values()))
            known = [done[b] - t0[b] for b in rows]  # prompt frames of each row's window
            real = [t1[b] - t0[b] for b in rows]  # frames before the padding
            was_training = model.training
            model.eval()
            try:
                with torch.inference_mode():
                    window = torch.zeros(len(rows), Q, F, dtype=torch.long, device=device)
                    for i, b in enumerate(rows):
                        codes[b, :Qc, done[b] : t1[b]] = coarse_codes[b, :Qc, done[b] : t1[b]]
                        window[i, :, : real[i]] = codes[b, :, t0[b] : t1[b]]
                    # draws keyed by (seed, absolute frame, level): one state per sampled frame
                    frame_states = torch.cat(
                        [
                            position_seeds(seed_states[b : b + 1], torch.arange(done[b], t1[b], device=device))[0]
                            for b in rows
                        ]
                    )
                    for q in range(Qc, Q):
                        inputs = torch.cat(
                            [layout.level_input_tokens(window[i : i + 1], q, known[i]) for i in range(len(rows))]
                        )  # [rows, F, Q]
                        for i in range(len(rows)):
                            inputs[i, real[i] :] = EMPTY
                            inputs[i, real[i] :, 0] = layout.pad
                        logits = model(inputs)  # [rows, F, V]
                        picked = torch.cat([logits[i, known[i] : real[i]] for i in range(len(rows))])  # [n, V]
                        step = torch.full((1,), q, dtype=torch.long, device=device)
                        drawn = sample(picked, sampling, frame_states, step, masks[q]) - layout.level_offsets[q]
                        for i, part in enumerate(drawn.split([r - k for k, r in zip(known, real)])):
                            window[i, q, known[i] : real[i]] = part
                    for i, b in enumerate(rows):
                        codes[b, Qc:, done[b] : t1[b]] = window[i, Qc:, known[i] : real[i]]
            finally:
                model.train(was_training)
            for b in rows:
                done[b] = t1[b]
            track.set_ready(done)
            yield

    return Track(codes, known_frames, steps, progress, lengths=frames)


def _start_fine_codes(
    coarse: Track, fine_prompt: torch.Tensor | None, Qc: int, Q: int, fine_prompt_frames: list[int] | None = None
) -> tuple[torch.Tensor, list[int]]:
    """All Q levels [B, Q, T] with the coarse levels (as far as known) and the known fine prompt
    filled in, and how many leading frames of each row are already complete. fine_prompt:
    [B, Q - Qc, P] or [B, Q, P], row b's first fine_prompt_frames[b] frames (default all P)."""
    B, _, T = coarse.data.shape
    codes = torch.zeros(B, Q, T, dtype=torch.long, device=coarse.data.device)
    codes[:, :Qc] = coarse.data[:, :Qc]
    done = [0] * B
    if fine_prompt is not None:
        fine_prompt = fine_prompt[:, -(Q - Qc) :] if fine_prompt.shape[1] == Q else fine_prompt
        given = _per_row(fine_prompt_frames, B, fine_prompt.shape[-1])
        done = [min(g, n) for g, n in zip(given, coarse.lengths)]
        for b in range(B):
            codes[b, Qc:, : done[b]] = fine_prompt[b, :, : done[b]]
    return codes, done
