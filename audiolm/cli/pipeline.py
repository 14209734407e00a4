"""`audiolm continue`: continue a prompt with a pipeline and write the audio.

    audiolm continue PROMPT -o OUT.wav [--seconds S] [--pipeline NAME|DIR] [--seed N]
                     [--num-samples N] [--temperature T[,T,T]] [--top-k K[,K,K]] [--top-p P[,P,P]]
                     [--plot OUT.png] [--continuation-only] [--save-prompt P] [--prompt-tokens P]
                     [--overwrite] [--device cpu|cuda]
    audiolm eval continuation --data CORPUS [--split valid] [--pipeline P] [--tokens TOKDIR] [--n N]
                     [--json] [--out TABLE.md]                       (audiolm/evaluation/continuation.py)
    audiolm eval stage CKPT [CKPT ...] --tokens TOKDIR [--kinds speech,music] [--json]
                                                                     (audiolm/evaluation/lm/stage_loss.py)
    audiolm bench continue [--pipeline P] [--json] [--device cpu|cuda] [--batches 1,8] [--seconds S]
                                                                     (audiolm/evaluation/bench_continue.py)
    audiolm bench compare --data CORPUS [--pipeline P] [--wavenet CKPT] [--vocoder CKPT] [--n N] [--json]
                                                                     (audiolm/evaluation/compare.py)

Sampling flags take one value for every stage or three (semantic,coarse,fine).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from audiolm.cli.app import print_json, UsageError
from audiolm.models.lm.config import STAGES

# audiolm.evaluation.consistency.EMBEDDINGS, default first (repeated: this module imports no torch)
EMBEDDINGS = ("logmel-stats", "mfcc-stats", "codec-stats", "codec", "semantic")


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


def check_writable(paths: list[Path], overwrite: bool) -> None:
    """Fail before any work: an existing file without --overwrite, or a folder we cannot write."""
    for path in paths:
        if path.exists() and not overwrite:
            raise UsageError(f"{path}: already exists; pass --overwrite to replace it")
        if path.is_dir():
            raise UsageError(f"{path}: is a directory")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"{path}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise UsageError(f"{path}: folder {parent} is not writable")


def setup_continue(p: argparse.ArgumentParser) -> None:
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


def run_continue(args: argparse.Namespace) -> int:
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


# -- audiolm eval continuation ------------------------------------------------------------------


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", default=None, help="speech | music | default | a recipe file or directory")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")


def _load_pipeline(args: argparse.Namespace):
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.inference.pipeline import AudioLM  # lazy: keeps `audiolm --help` fast

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available")
    return AudioLM.from_pretrained(args.pipeline, device=args.device)


def _check_corpus(path: str) -> None:
    if not (Path(path) / "manifest.jsonl").is_file():
        raise UsageError(f"{path}: not a corpus (no manifest.jsonl); build one with `audiolm corpus build`")


def _check_counts(args: argparse.Namespace) -> None:
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    if not (args.prompt_seconds > 0 and args.seconds > 0):
        raise UsageError("--prompt-seconds and --seconds must be positive")


def setup_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder (audiolm corpus build)")
    p.add_argument("--split", default="valid", choices=["train", "valid"], help="split to evaluate (default valid)")
    p.add_argument("--tokens", help="token folder (audiolm tokenize) for the cross entropy; default: the clips")
    p.add_argument("--n", type=int, default=24,
                   help="clips per kind (speech, music), at most one per voice / instrument; default 24")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length (default 3)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds to continue (default 4)")
    p.add_argument("--seed", type=int, default=0, help="clip i is continued with seed + i (default 0)")
    p.add_argument("--seeds", type=int, default=1,
                   help="continue every prompt this many times (draw s uses seed + 1000 * s + i) and report the "
                        "generated continuations' mean consistency (default 1)")
    p.add_argument("--embed", default=EMBEDDINGS[0], choices=EMBEDDINGS,
                   help=f"embedding for consistency (default {EMBEDDINGS[0]}; see audiolm/evaluation/consistency.py)")
    p.add_argument("--ce-windows", type=int, default=256, help="windows per stage for the cross entropy")
    p.add_argument("--out", help="also write the table (markdown) to this file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    _add_common(p)


def run_eval(args: argparse.Namespace) -> int:
    _check_corpus(args.data)
    _check_counts(args)
    if args.tokens is not None and not Path(args.tokens).is_dir():
        raise UsageError(f"--tokens {args.tokens}: no such folder")
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    if args.out:
        check_writable([Path(args.out)], args.overwrite)
    from audiolm.core.checkpoint import atomic_write_text  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.continuation import evaluate_continuation, format_table  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    lm = _load_pipeline(args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt is .* longer than the model context")
        report = evaluate_continuation(
            lm, args.data, split=args.split, tokens_dir=args.tokens, n=args.n, prompt_seconds=args.prompt_seconds,
            seconds=args.seconds, seed=args.seed, embedding=args.embed, ce_windows=args.ce_windows, seeds=args.seeds,
        )
    machine = describe_machine(args.device)
    table = format_table(report) + f"\nMachine: {machine}.\n"
    if args.out:
        atomic_write_text(args.out, table)
    if args.json:
        print_json({"machine": machine, **report})
    else:
        print(table, end="")
    return 0


# -- audiolm eval stage ----------------------------------------------------------------------------


def setup_eval_stage(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="stage checkpoint or training run folder(s)")
    p.add_argument("--tokens", required=True, help="token folder (audiolm tokenize)")
    p.add_argument("--split", default="valid", help="split to score (default valid)")
    p.add_argument("--kinds", default="speech,music",
                   help="comma-separated kinds, each scored separately; 'all' = every utterance (default speech,music)")
    p.add_argument("--repeats", type=int, default=4, help="window draws per utterance (default 4)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run_eval_stage(args: argparse.Namespace) -> int:
    from audiolm.evaluation.lm.stage_loss import stage_loss  # lazy: keeps `audiolm --help` fast

    if args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds:
        raise UsageError("--kinds names no kind")
    if not Path(args.tokens).is_dir():
        raise UsageError(f"--tokens {args.tokens}: no such folder")
    results = [
        stage_loss(ckpt, args.tokens, split=args.split, kind=None if kind == "all" else kind, repeats=args.repeats)
        for ckpt in args.checkpoints
        for kind in kinds
    ]
    if args.json:
        print_json({"results": results})
        return 0
    print(f"Cross entropy (nats/token) on the {args.split} split of {args.tokens}, "
          f"{args.repeats} window draws per utterance:\n")
    print("| checkpoint | " + " | ".join(kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for i, ckpt in enumerate(args.checkpoints):
        cells = [f"{r['cross_entropy']:.3f}" for r in results[i * len(kinds) : (i + 1) * len(kinds)]]
        print(f"| {ckpt} | " + " | ".join(cells) + " |")
    return 0


# -- audiolm bench continue / compare -------------------------------------------------------------


def setup_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds to generate (default 4)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length (default 3)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per case after a warm-up; the fastest counts")
    _add_common(p)


def run_bench(args: argparse.Namespace) -> int:
    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--batches: expected integers like 1,8, got {args.batches!r}") from None
    if not batches or min(batches) < 1:
        raise UsageError("--batches: batch sizes must be >= 1")
    if not (args.seconds > 0 and args.prompt_seconds > 0) or args.repeats < 1:
        raise UsageError("--seconds, --prompt-seconds and --repeats must be positive")
    from audiolm.evaluation.bench_continue import bench_continue, format_table  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    lm = _load_pipeline(args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt is .* longer than the model context")
        results = bench_continue(lm, batches, args.seconds, args.prompt_seconds, repeats=args.repeats)
    machine = describe_machine(args.device)
    if args.json:
        print_json({"machine": machine, "results": [r.to_json() for r in results]})
    else:
        print(format_table(machine, results))
    return 0


def setup_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder (audiolm corpus build)")
    p.add_argument("--split", default="valid", choices=["train", "valid"], help="split (default valid)")
    p.add_argument("--wavenet", help="WaveNet checkpoint or run folder for raw-sample continuation")
    p.add_argument("--vocoder", help="WaveNet vocoder (codec-token conditioned) checkpoint or run folder "
                   "(default: checkpoints/wavenet_vocoder when shipped; 'none' for no vocoder rows)")
    p.add_argument("--n", type=int, default=4, help="clips per kind (default 4)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length (default 3)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds to continue / resynthesize (default 2)")
    p.add_argument("--seed", type=int, default=0, help="clip i uses seed + i (default 0)")
    p.add_argument("--embed", default="codec", choices=["codec", "semantic"], help="embedding for consistency")
    p.add_argument("--out", help="also write the table (markdown) to this file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    _add_common(p)


def run_compare(args: argparse.Namespace) -> int:
    _check_corpus(args.data)
    _check_counts(args)
    if args.out:
        check_writable([Path(args.out)], args.overwrite)
    from audiolm.core.checkpoint import atomic_write_text  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.compare import compare, format_table, resolve_vocoder  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast
    from audiolm.models.wavenet.model import WaveNet  # lazy: keeps `audiolm --help` fast

    lm = _load_pipeline(args)
    args.vocoder = resolve_vocoder(args.vocoder)
    wavenet = WaveNet.from_pretrained(args.wavenet, device=args.device) if args.wavenet else None
    vocoder = WaveNet.from_pretrained(args.vocoder, device=args.device) if args.vocoder else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt is .* longer than the model context")
        report = compare(
            lm, args.data, wavenet=wavenet, vocoder=vocoder, split=args.split, n=args.n,
            prompt_seconds=args.prompt_seconds, seconds=args.seconds, seed=args.seed, embedding=args.embed,
        )
    machine = describe_machine(args.device)
    report.update(wavenet=args.wavenet, vocoder=args.vocoder)
    table = format_table(report, machine)
    if args.out:
        atomic_write_text(args.out, table)
    if args.json:
        print_json({"machine": machine, **report})
    else:
        print(table, end="")
    return 0


def register(cli) -> None:
    cli.add("continue", "continue a speech or music prompt", setup_continue, run_continue)
    cli.add(
        "eval continuation",
        "continuation quality: per-stage cross entropy, acoustic consistency, resynthesis (speech and music)",
        setup_eval,
        run_eval,
    )
    cli.add(
        "eval stage",
        "an LM stage's cross entropy on token shards, per kind (mixed vs per-kind models)",
        setup_eval_stage,
        run_eval_stage,
    )
    cli.add("bench continue", "real-time factor of a pipeline, per stage and end to end", setup_bench, run_bench)
    cli.add(
        "bench compare",
        "token pipeline vs WaveNet continuation and WaveNet vocoder vs codec decoder: speed and quality",
        setup_compare,
        run_compare,
    )
