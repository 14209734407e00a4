"""`audiolm eval {codec,semantic,continuation,stage}`: evaluation tables (--json: one JSON object).

    audiolm eval codec --data CORPUS [--split valid] [--codec DIR] [--skip-judges] [--diagnose] [--json] [--out TABLE.md]
    audiolm eval continuation --data CORPUS [--split valid] [--pipeline P] [--tokens TOKDIR] [--n N]
                     [--seeds N] [--kind K] [--skip-judges] [--json] [--out TABLE.md]
                                                                     (audiolm/evaluation/continuation.py)
    audiolm eval stage CKPT [CKPT ...] --tokens TOKDIR [--kinds speech,music] [--json]
                                                                     (audiolm/evaluation/lm/stage_loss.py)

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from audiolm.cli.args import (
    UsageError,
    add_codec_argument,
    add_pipeline_arguments,
    add_table_output_arguments,
    check_corpus_and_table_output,
    claim_output,
    load_pipeline,
    pick_device,
    print_json,
    write_report,
)


def _setup_codec(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="CORPUS", help="corpus folder (manifest.jsonl)")
    parser.add_argument("--split", default="valid", choices=("train", "valid"), help="split (default valid)")
    add_codec_argument(parser)
    parser.add_argument(
        "--kbps",
        type=float,
        nargs="+",
        default=None,
        help="bit rates to evaluate (default: every bit rate the codec offers up to 12)",
    )
    parser.add_argument("--max-items", type=int, default=None, help="at most N clips per kind (default all)")
    parser.add_argument("--no-opus", action="store_true", help="skip the Opus comparison")
    parser.add_argument("--skip-visqol", action="store_true", help="skip ViSQOL (slow; for quick checks only)")
    parser.add_argument(
        "--skip-judges",
        action="store_true",
        help="skip the listener judges (GE2E speaker similarity, DNSMOS, F0 errors)",
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also split the speech loss: ViSQOL with only the codec's magnitude, phase, envelope or fine "
        "structure, and the envelope error in dB (audiolm/evaluation/codec/loss_split.py)",
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--out", metavar="TABLE.md", help="also save the table (Markdown) here")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_codec(args: argparse.Namespace) -> int:
    table_out = claim_output(args, args.out)
    from audiolm.core.corpus import read_manifest  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.codec.evaluate import evaluate_codec, format_table  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast
    from audiolm.models.codec.codec import Codec  # lazy: keeps `audiolm --help` fast

    device = pick_device(args.device)
    codec = Codec.from_pretrained(args.codec, device=device)
    bandwidths = args.kbps or [b for b in codec.bandwidths if b <= 12]
    for kbps in bandwidths:
        codec.levels_for_kbps(kbps)  # a clear error for a rate the codec does not offer
    items = []
    for kind in ("speech", "music"):
        chosen = read_manifest(args.data, split=args.split, kind=kind)
        items += chosen[: args.max_items] if args.max_items is not None else chosen
    if not items:
        raise UsageError(f"{args.data}: no {args.split} items to evaluate")
    results = evaluate_codec(
        codec,
        items,
        bandwidths,
        opus=not args.no_opus,
        use_visqol=not args.skip_visqol,
        use_judges=not args.skip_judges,
        diagnose=args.diagnose,
        progress=not args.no_progress,
    )
    title = f"codec vs Opus on {args.data} ({args.split} split), codec {codec.source}"
    table = format_table(results, title)
    report = {
        "machine": describe_machine(device),
        "codec": codec.source,
        "data": str(args.data),
        "split": args.split,
        "clips": {kind: sum(1 for it in items if it.kind == kind) for kind in ("speech", "music")},
        "visqol": not args.skip_visqol,
        "judges": not args.skip_judges,
        "results": results,
    }
    write_report(table_out, args, table + "\n", report)
    return 0


def _setup_semantic(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder with phone alignments")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tokenizer", help="a tokenizer directory, scored as is (default: the shipped one)")
    src.add_argument("--ssl", help="SSL run / model: score each candidate layer (k-means fitted on train)")
    p.add_argument("--k", type=int, default=256, help="K for --ssl layers and the baseline (default 256)")
    p.add_argument("--layers", type=int, nargs="+", help="candidate layers (default: all)")
    p.add_argument("--smoothing", type=float, default=1.0, help="pseudo-count toward the phone prior (default 1)")
    p.add_argument("--max-kmeans-frames", type=int, default=200_000)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--out", help="also save the table (markdown) here")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _run_semantic(args: argparse.Namespace) -> int:
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.semantic.evaluate import (  # lazy: keeps `audiolm --help` fast
        evaluate_semantic,
        format_table,
    )
    from audiolm.models.semantic.kmeans import resolve_device  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.tokenizer import (  # lazy: keeps `audiolm --help` fast
        SemanticTokenizer,
        load_ssl_encoder,
    )

    table_out = claim_output(args, args.out)
    device = str(resolve_device(args.device))
    kwargs = dict(
        k=args.k,
        smoothing=args.smoothing,
        max_kmeans_frames=args.max_kmeans_frames,
        device=device,
        progress=not args.json,
    )
    if args.ssl:
        result = evaluate_semantic(args.data, encoder=load_ssl_encoder(args.ssl), layers=args.layers, **kwargs)
    else:
        tok = SemanticTokenizer.from_pretrained(args.tokenizer, device=device)
        result = evaluate_semantic(args.data, tokenizer=tok, **kwargs)
    write_report(table_out, args, format_table(result), result | {"machine": describe_machine(device)})
    return 0


# audiolm.evaluation.consistency.EMBEDDINGS, default first (repeated: this module imports no torch)

EMBEDDINGS = ("logmel-stats", "mfcc-stats", "codec-stats", "codec", "semantic")


def _setup_continuation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder (audiolm corpus build)")
    p.add_argument("--split", default="valid", choices=["train", "valid"], help="split to evaluate (default valid)")
    p.add_argument("--tokens", help="token folder (audiolm tokenize) for the cross entropy; default: the clips")
    p.add_argument(
        "--n",
        type=int,
        default=24,
        help="clips per kind (speech, music), at most one per voice / instrument; default 24",
    )
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length (default 3)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds to continue (default 4)")
    p.add_argument("--seed", type=int, default=0, help="clip i is continued with seed + i (default 0)")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="continue every prompt this many times (draw s uses seed + 1000 * s + i) and report the "
        "generated continuations' mean consistency (default 1)",
    )
    p.add_argument(
        "--embed",
        default=EMBEDDINGS[0],
        choices=EMBEDDINGS,
        help=f"embedding for consistency (default {EMBEDDINGS[0]}; see audiolm/evaluation/consistency.py)",
    )
    p.add_argument("--ce-windows", type=int, default=256, help="windows per stage for the cross entropy")
    p.add_argument(
        "--kind", choices=("speech", "music"), default=None, help="evaluate only this kind (default: speech and music)"
    )
    p.add_argument(
        "--skip-judges",
        action="store_true",
        help="skip the external judges (speech: GE2E speaker retrieval and similarity, DNSMOS; "
        "music: key and tempo agreement)",
    )
    add_table_output_arguments(p)
    add_pipeline_arguments(p)


def _run_continuation(args: argparse.Namespace) -> int:
    table_out = check_corpus_and_table_output(args)
    if args.tokens is not None and not Path(args.tokens).is_dir():
        raise UsageError(f"--tokens {args.tokens}: no such folder")
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    from audiolm.evaluation.continuation import evaluate_continuation, format_table  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    lm = load_pipeline(args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt is .* longer than the model context")
        report = evaluate_continuation(
            lm,
            args.data,
            split=args.split,
            tokens_dir=args.tokens,
            n=args.n,
            prompt_seconds=args.prompt_seconds,
            seconds=args.seconds,
            seed=args.seed,
            embedding=args.embed,
            ce_windows=args.ce_windows,
            seeds=args.seeds,
            judges=not args.skip_judges,
            kinds=(args.kind,) if args.kind else ("speech", "music"),
        )
    machine = describe_machine(args.device)
    write_report(table_out, args, format_table(report) + f"\nMachine: {machine}.\n", {"machine": machine, **report})
    return 0


def _setup_stage(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="stage checkpoint or training run folder(s)")
    p.add_argument("--tokens", required=True, help="token folder (audiolm tokenize)")
    p.add_argument("--split", default="valid", help="split to score (default valid)")
    p.add_argument(
        "--kinds",
        default="speech,music",
        help="comma-separated kinds, each scored separately; 'all' = every utterance (default speech,music)",
    )
    p.add_argument("--repeats", type=int, default=4, help="window draws per utterance (default 4)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _run_stage(args: argparse.Namespace) -> int:
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
    print(
        f"Cross entropy (nats/token) on the {args.split} split of {args.tokens}, "
        f"{args.repeats} window draws per utterance:\n"
    )
    print("| checkpoint | " + " | ".join(kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for i, ckpt in enumerate(args.checkpoints):
        cells = [f"{r['cross_entropy']:.3f}" for r in results[i * len(kinds) : (i + 1) * len(kinds)]]
        print(f"| {ckpt} | " + " | ".join(cells) + " |")
    return 0


def register(cli) -> None:
    cli.add(
        "eval semantic",
        "cross-validated phone purity / PNMI per layer vs an MFCC + k-means baseline",
        _setup_semantic,
        _run_semantic,
    )
    cli.add(
        "eval continuation",
        "continuation quality: per-stage cross entropy, acoustic consistency, external judges (GE2E, DNSMOS, "
        "key, tempo), resynthesis (speech and music)",
        _setup_continuation,
        _run_continuation,
    )
    cli.add(
        "eval stage",
        "an LM stage's cross entropy on token shards, per kind (mixed vs per-kind models)",
        _setup_stage,
        _run_stage,
    )
    cli.add(
        "eval codec",
        "codec vs Opus at the same bit rates: mel, SI-SDR, STOI, PESQ, ViSQOL, speaker similarity, DNSMOS, F0 errors",
        _setup_codec,
        _run_codec,
    )
