"""The decoding loop: prefill, a pure one-token step, and a sliding window past the context.

    prompt [B, T] --prefill--> logits --sample--> token T
    token t --decode_one_token (forward at cache slot p + sample)--> token t+1   ... repeated

The KV cache is static: `model.config.max_seq_len` slots (the trained context), allocated once.
When the next token would not fit, the window slides: the most recent `window_keep` tokens
are prefilled again at positions 0..keep-1 and decoding goes on from there. Every logit is
therefore exactly the logit a full forward pass over the current window would give (the test
suite checks this), memory stays bounded, and positions never exceed what the model was
trained on. A re-prefill costs one batched pass over `keep` tokens every `S - keep` tokens.

Rows of different lengths decode as one batch (`prompt_lengths`, the prompt left-padded so
that every row's next token shares a column): each row keeps its own window, its tokens sit
at their own positions (`Transformer.forward(left_pad=...)`) and a key-padding mask hides the
padding, so each row's tokens are those it would get alone. The cache slots stay shared: when
one row's window is full, every row's window is prefilled again, right-aligned (the others
unchanged, so only that row slides); that costs one batched pass per slide of any row.

No host synchronisation happens per token: positions are Python ints the loop tracks itself,
sampling stays on the device, and tokens are written into a preallocated output tensor.

The model stays plain; the loop picks the fast paths that wrap it: on CPU the prefill and the
eager steps run through prepacked oneDNN weights (`packed_step.py`) where this torch has them,
and the one-token step can be a compiled one (`compiled_step.py`: kept on disk per machine, or
`torch.compile`d in the process); on CUDA it
is a graph-captured copy (`cuda_graph.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from audiolm.inference.compiled_step import cached_step, compiled_step
from audiolm.inference.cuda_graph import CudaGraphStep
from audiolm.inference.packed_step import check_precision, packed_model
from audiolm.inference.sampling import SamplingConfig, sample, seeds_tensor
from audiolm.inference.step import Forward, StepFn, decode_one_token
from audiolm.models.lm.transformer import Transformer

LogitsMask = Callable[[int], "torch.Tensor | None"]
Progress = Callable[[int, int], None]


@dataclass
class Generation:
    """What `decode` returns. tokens [B, T + N]; logits [B, N, V] (float32) when asked for:
    logits[:, i] is what token T+i was sampled from, computed over tokens[:, window_starts[i]:T+i]
    (a ragged batch: row b's window starts later by its padding in the cache, see `decode_steps`)."""

    tokens: torch.Tensor
    logits: torch.Tensor | None = None
    window_starts: list[int] = field(default_factory=list)


def prefill(model: Forward, tokens: torch.Tensor, left_pad: torch.Tensor | None = None) -> torch.Tensor:
    """Run tokens [B, T] at cache positions 0..T-1; return the last position's logits [B, V].
    left_pad [B]: row b's first left_pad[b] tokens are padding (`Transformer.forward`)."""
    T = tokens.shape[1]
    input_pos = torch.arange(T, device=tokens.device)
    if left_pad is None:
        return model(tokens, input_pos, kv_len=T, last_only=True)[:, -1]
    return model(tokens, input_pos, kv_len=T, last_only=True, left_pad=left_pad)[:, -1]


def left_padded(rows: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
    """Token rows [T_b] of different lengths -> (tokens [B, max T_b] right-aligned, padding 0
    in front, lengths): the prompt of a ragged `decode_steps` call."""
    lengths = [int(r.shape[-1]) for r in rows]
    width = max(lengths)
    out = rows[0].new_zeros(len(rows), width)
    for b, row in enumerate(rows):
        out[b, width - lengths[b] :] = row
    return out, lengths


class DecodeStep(NamedTuple):
    """One sampled token, as `decode_steps` yields it."""

    tokens: torch.Tensor  # [B, T + N]: the prompt and every token so far (the buffer being filled)
    index: int  # type: ignore[assignment]  # position in `tokens` of the token just sampled (shadows tuple.index)
    logits: torch.Tensor  # [B, V] it was sampled from
    window_start: int  # position in `tokens` of the first token the logits saw (the widest row's)


def decode(
    model: Transformer,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    sampling: SamplingConfig | None = None,
    seeds: list[int] | torch.Tensor | None = None,
    logits_mask: LogitsMask | None = None,
    window_keep: int | None = None,
    step_offset: int | list[int] = 0,
    progress: Progress | None = None,
    return_logits: bool = False,
    cuda_graph: bool | None = None,
    compile_step: bool | str = False,
    decode_weights: str | None = None,
    prompt_lengths: list[int] | None = None,
) -> Generation:
    """Continue prompt [B, T] by `max_new_tokens` tokens.

    seeds: one per sample (default 0, 1, ..., B-1); sample b's draws depend only on seeds[b]
        and the draw number (step_offset + i), so batched == per-sample runs.
    logits_mask(pos) -> bool [V] (or [B, V]) of tokens allowed at sequence index pos, or None.
        Return prebuilt device tensors (a table lookup) to keep the loop free of host syncs.
    window_keep: tokens kept when the window slides (default 3/4 of the context).
    step_offset: first draw number; callers that generate in chunks pass the tokens drawn so far.
        One per row (a list) for rows that have drawn different numbers of tokens.
    progress(done, total) is called after each token.
    cuda_graph: use a graph-captured step (default: when the model is on CUDA).
    compile_step: on CPU, a compiled one-token step: True (or "cached"): compiled ahead of time
        once per machine and kept on disk (`compile_cache.py`; the first use compiles, for tens
        of seconds; a compile that fails warns once and decodes eagerly); "jit": `torch.compile`d
        in this process on first use (nothing on disk). Both are kept per model, batch size,
        sampling config and mask use and need a C++ compiler.
    decode_weights: on CPU, the dtype of the packed decoding weights: None (the model's),
        "float32", or "bfloat16" (lossy: half the bytes read per step).
    prompt_lengths: a ragged batch: row b's prompt is its last prompt_lengths[b] tokens (the
        prompt left-padded, see `left_padded`); each row is decoded as if alone (its own
        positions, window and slides; padding hidden by a key-padding mask). `logits_mask(pos)`
        then gets the column in `tokens` (row b's index in its own sequence is pos minus its
        padding, T - prompt_lengths[b]): new tokens share columns across rows.
        Padded rows and per-row step offsets run the plain or packed step: the graph-captured
        and the compiled steps are static-shape and unmasked, so they are bypassed.
    """
    out = prompt
    all_logits: list[torch.Tensor] = []
    starts: list[int] = []
    steps = decode_steps(
        model,
        prompt,
        max_new_tokens,
        sampling=sampling,
        seeds=seeds,
        logits_mask=logits_mask,
        window_keep=window_keep,
        step_offset=step_offset,
        cuda_graph=cuda_graph,
        compile_step=compile_step,
        decode_weights=decode_weights,
        prompt_lengths=prompt_lengths,
    )
    with torch.inference_mode():
        for i, step in enumerate(steps):
            out = step.tokens
            if return_logits:
                all_logits.append(step.logits.float().clone())
                starts.append(step.window_start)
            if progress is not None:
                progress(i + 1, max_new_tokens)
    return Generation(out, torch.stack(all_logits, dim=1) if all_logits else None, starts)


def decode_steps(
    model: Transformer,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    sampling: SamplingConfig | None = None,
    seeds: list[int] | torch.Tensor | None = None,
    logits_mask: LogitsMask | None = None,
    window_keep: int | None = None,
    step_offset: int | list[int] = 0,
    cuda_graph: bool | None = None,
    compile_step: bool | str = False,
    decode_weights: str | None = None,
    prompt_lengths: list[int] | None = None,
) -> Iterator[DecodeStep]:
    """`decode` one token at a time (same arguments, same tokens): yields a `DecodeStep` after
    each token, for callers that use tokens as they come. `decode` runs it to the end;
    streaming runs several stages' loops interleaved.

    Each step runs in inference mode and nothing stays entered across a yield, so loops of
    different models can be interleaved freely; loops of one model must not be (they share its
    KV cache). Arguments are checked at the first `next()`.
    """
    check_precision(decode_weights)
    sampling = sampling or SamplingConfig()
    B, T = prompt.shape
    if T < 1:
        raise ValueError("the prompt must hold at least one token")
    S = model.config.max_seq_len
    keep = window_keep or max(1, (3 * S) // 4)
    if not 1 <= keep < S:
        raise ValueError(f"window_keep must be in [1, {S - 1}], got {keep}")
    device = prompt.device
    seeds_t = seeds_tensor(list(range(B)) if seeds is None else seeds, device)
    if seeds_t.shape != (B,):
        raise ValueError(f"expected {B} seeds, got {tuple(seeds_t.shape)}")
    lengths = [T] * B if prompt_lengths is None else [int(n) for n in prompt_lengths]
    if len(lengths) != B or not all(1 <= n <= T for n in lengths):
        raise ValueError(f"prompt_lengths must be {B} lengths in [1, {T}], got {prompt_lengths}")
    offsets = [step_offset] * B if isinstance(step_offset, int) else [int(o) for o in step_offset]
    if len(offsets) != B:
        raise ValueError(f"expected {B} step offsets, got {len(offsets)}")
    # a ragged batch (rows of other lengths or draw counts) needs per-row positions, a padding
    # mask or per-row draw numbers, which the static-shape fast paths do not take
    ragged = len(set(lengths)) > 1 or len(set(offsets)) > 1
    if compile_step not in (False, True, "cached", "jit"):
        raise ValueError(f"compile_step must be False, True, 'cached' or 'jit', got {compile_step!r}")
    use_graph = (device.type == "cuda" if cuda_graph is None else cuda_graph) and not ragged
    if compile_step and device.type != "cpu":
        raise ValueError("compile_step is for CPU decoding (CUDA uses a graph-captured step)")
    if ragged:
        compile_step = False
    if max_new_tokens <= 0:
        return
    was_training = model.training
    try:
        with torch.inference_mode():
            out = torch.empty(B, T + max_new_tokens, dtype=torch.long, device=device)
            out[:, :T] = prompt
            pads = [T - n for n in lengths]  # row b's columns before pads[b] are padding
            for b, pad in enumerate(pads):
                out[b, :pad] = 0  # any valid id: the mask hides it
            model.eval()
            if model.cache_shape != (B, S):
                model.setup_caches(B, S, device=device)
            # packed CPU weights (None elsewhere); packing is a no-op when they are current
            packed = packed_model(model, decode_weights)
            forward: Forward = packed or model
            step_fn: StepFn = decode_one_token
            if use_graph:
                step_fn = CudaGraphStep(model, B, sampling, masked=logits_mask is not None)
            elif compile_step:
                dtype = packed.dtype if packed is not None else None  # the matrices' dtype
                masked = logits_mask is not None
                if compile_step == "jit":
                    step_fn = compiled_step(model, B, sampling, masked=masked, dtype=dtype)
                else:  # None where compiling failed (warned once): the eager step
                    step_fn = cached_step(model, B, sampling, masked=masked, dtype=dtype) or decode_one_token
            positions = torch.arange(S, device=device)
            if len(set(offsets)) > 1:
                step = torch.tensor(offsets, dtype=torch.long, device=device)  # per-row draw numbers
            else:
                step = torch.full((1,), offsets[0], dtype=torch.long, device=device)
            # the cache holds row b's tokens from its sequence index starts[b] on, right-aligned
            # at the column `cur` of the last prefill: slot s holds column base + s, and row b's
            # first left[b] slots are padding (its token at slot s has position s - left[b])
            starts = [0 if n <= S else n - keep for n in lengths]

            def layout(cur: int) -> tuple[int, list[int], torch.Tensor | None, torch.Tensor]:
                """Prefill every row's window up to column cur: (base, left, left_pad, logits)."""
                widths = [cur - pad - s for pad, s in zip(pads, starts)]
                width = max(widths)
                left = [width - w for w in widths]
                left_pad = torch.tensor(left, device=device) if any(left) else None
                return cur - width, left, left_pad, prefill(forward, out[:, cur - width : cur], left_pad)

            base, left, left_pad, logits = layout(T)
            token = sample(logits, sampling, seeds_t, step, logits_mask(T) if logits_mask else None)
        for i in range(max_new_tokens):
            cur = T + i  # column of the token just sampled
            with torch.inference_mode():
                if i:
                    p = cur - 1 - base  # cache slot of the token fed in
                    allowed = logits_mask(cur) if logits_mask else None
                    if p >= S:  # a window is full: its row keeps its most recent tokens, all prefilled again
                        for b in range(B):
                            if p - left[b] >= S:  # row b's own position overflows (as it would alone)
                                starts[b] = cur - pads[b] - keep
                        base, left, left_pad, logits = layout(cur)
                        token = sample(logits, sampling, seeds_t, step, allowed)
                    else:
                        token, logits = step_fn(
                            forward,
                            out[:, cur - 1 : cur],
                            positions[p : p + 1],
                            seeds_t,
                            step,
                            sampling,
                            allowed,
                            kv_len=p + 1 if not use_graph else None,
                            **({} if left_pad is None else {"left_pad": left_pad}),
                        )
                out[:, cur] = token
                step += 1
            yield DecodeStep(out, cur, logits, base)
    finally:
        model.train(was_training)


def generate(model: Transformer, prompt: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """`decode(...).tokens`: prompt [B, T] -> tokens [B, T + max_new_tokens] (prompt included)."""
    return decode(model, prompt, max_new_tokens, **kwargs).tokens
