"""`audiolm continue PROMPT -o OUT`: continue a speech or music prompt with a pipeline and write
the audio. Sampling flags take one value for every stage or three (semantic,coarse,fine).

    audiolm continue PROMPT -o OUT.wav [--seconds S] [--pipeline NAME|DIR] [--seed N]
                     [--num-samples N] [--temperature T[,T,T]] [--top-k K[,K,K]] [--top-p P[,P,P]]
                     [--plot OUT.png] [--continuation-only] [--save-prompt P] [--prompt-tokens P]
                     [--overwrite] [--device cpu|cuda]

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from audiolm.cli.args import check_writable, UsageError
from audiolm.models.lm.config import STAGES


def _per_stage(text: str | None, cast, flag: str):
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = [cast(p) for p in parts]
    except ValueError:
        raise UsageError(f"{flag}: expected a number or three comma-separated numbers, got '{text}'") from None
    if len(values) == 1:
        return values[0]
    if len(values) != 3:
        raise UsageError(f"{flag}: give one value or three (semantic,coarse,fine), got {len(values)}")
    return dict(zip(STAGES, values))


def output_paths(out: Path, num_samples: int) -> list[Path]:
    """OUT for one sample; OUT-1, OUT-2, ... (before the suffix) for several."""
    if num_samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i + 1}{out.suffix}") for i in range(num_samples)]


def _setup_continue(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", help="prompt audio (wav, flac, ogg, mp3); optional with --prompt-tokens")
    p.add_argument("-o", "--out", required=True, help="output .wav or .flac (OUT-1, OUT-2, ... with --num-samples)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds to generate (default 4)")
    p.add_argument("--pipeline", default=None, help="speech | music | default | a recipe file or directory")
    p.add_argument("--seed", type=int, default=None, help="random seed (sample i uses seed + i)")
    p.add_argument("--num-samples", type=int, default=1, help="continuations to write (default 1)")
    p.add_argument("--temperature", help="sampling temperature: T or T_semantic,T_coarse,T_fine")
    p.add_argument("--top-k", help="top-k: K or three values (0 = off)")
    p.add_argument("--top-p", help="nucleus top-p: P or three values (1 = off)")
    p.add_argument("--plot", help="write a spectrogram of prompt + continuation (seam marked) to this PNG")
    p.add_argument("--continuation-only", action="store_true", help="write only the new audio")
    p.add_argument("--save-prompt", help="also save the encoded prompt here (safetensors) for reuse")
    p.add_argument("--prompt-tokens", help="use a prompt saved with --save-prompt instead of encoding audio")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")


def _run_continue(args: argparse.Namespace) -> int:
    if args.prompt is None and args.prompt_tokens is None:
        raise UsageError("give a PROMPT audio file or --prompt-tokens FILE")
    if args.prompt is not None and args.prompt_tokens is not None:
        raise UsageError("give either a PROMPT audio file or --prompt-tokens FILE, not both")
    if args.num_samples < 1:
        raise UsageError(f"--num-samples must be at least 1, got {args.num_samples}")
    if not args.seconds > 0:
        raise UsageError(f"--seconds must be positive, got {args.seconds}")
    out = Path(args.out)
    if out.suffix.lower() not in (".wav", ".flac"):
        raise UsageError(f"{out}: output must end in .wav or .flac")
    outs = output_paths(out, args.num_samples)
    plots = output_paths(Path(args.plot), args.num_samples) if args.plot else []
    extra = [Path(args.save_prompt)] if args.save_prompt else []
    check_writable(outs + plots + extra, args.overwrite)
    temperature = _per_stage(args.temperature, float, "--temperature")
    top_k = _per_stage(args.top_k, int, "--top-k")
    top_p = _per_stage(args.top_p, float, "--top-p")

    import torch  # lazy: keeps `audiolm --help` fast
    from tqdm.auto import tqdm  # lazy: keeps `audiolm --help` fast

    from audiolm.core.audio import load_audio, save_audio  # lazy: keeps `audiolm --help` fast
    from audiolm.inference.pipeline import AudioLM, PromptTokens  # lazy: keeps `audiolm --help` fast

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available")
    lm = AudioLM.from_pretrained(args.pipeline, device=args.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.prompt_tokens:
            prompt = PromptTokens.load(args.prompt_tokens)
        else:
            wav, sr = load_audio(args.prompt)
            prompt = lm.encode_prompt(wav, sr)
    for w in caught:
        print(f"audiolm: warning: {w.message}", file=sys.stderr)
    if args.save_prompt:
        prompt.save(args.save_prompt)

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            unit = "frame" if stage in ("coarse", "fine") else ("token" if stage == "semantic" else "step")
            bar = bars[stage] = tqdm(total=total, desc=stage, unit=unit, leave=True, dynamic_ncols=True)
        bar.total = total
        bar.n = done
        bar.refresh()

    result = lm.continue_audio(
        None, None, seconds=args.seconds, seed=args.seed, num_samples=args.num_samples,
        temperature=temperature, top_k=top_k, top_p=top_p, progress=progress, prompt=prompt,
        continuation_only=args.continuation_only, return_tokens=True,
    )
    for bar in bars.values():
        bar.close()
    for i, path in enumerate(outs):
        save_audio(path, result.audio[i], result.sample_rate)
        print(f"wrote {path}")
    for i, path in enumerate(plots):
        from audiolm.evaluation.plot import plot_continuation  # lazy: keeps `audiolm --help` fast

        plot_continuation(path, result.audio[i, 0], result.sample_rate, result.prompt_samples)
        print(f"wrote {path}")
    return 0


def register(cli) -> None:
    cli.add("continue", "continue a speech or music prompt", _setup_continue, _run_continue)
