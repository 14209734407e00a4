"""CLI for the codec:

    audiolm codec IN OUT [--kbps K] [--codec DIR] [--save-codes FILE] [--overwrite]   round trip (+ codes)
    audiolm train codec --data CORPUS --out RUN [--config JSON] [--resume] [trainer flags]
    audiolm eval codec --data CORPUS [--split valid] [--codec DIR] [--json] [--out TABLE.md]
    audiolm bench codec [--codec DIR | --random] [--device cpu|cuda|all] [--json]

Only argparse is imported at module level; torch and the codec load inside the run functions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiolm.cli.app import print_json, UsageError
from audiolm.core.config import load_config_file

TRAIN_DEFAULTS = dict(
    steps=3000, batch_size=8, lr=3e-4, weight_decay=0.0, warmup_steps=50,
    valid_every=250, valid_batches=4, save_every=250, log_every=10,
)


def _train_defaults():
    from audiolm.training.trainer import TrainConfig  # lazy: keeps `audiolm --help` fast

    return TrainConfig(**TRAIN_DEFAULTS)


def _device(name: str) -> str:
    import torch  # lazy: keeps `audiolm --help` fast

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _add_codec_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codec", metavar="DIR", default=None,
                        help="codec checkpoint, training run, or HF EnCodec folder (default: the shipped codec)")


# -- audiolm codec ----------------------------------------------------------------------------


def _setup_roundtrip(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="audio file (any rate; channels are mixed to mono)")
    parser.add_argument("output", metavar="OUT", help="output .wav or .flac (mono, at the input's sample rate)")
    parser.add_argument("--kbps", type=float, default=6.0, help="bit rate: 1.5, 3, 6 or 12 (default 6)")
    _add_codec_arg(parser)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--save-codes", metavar="FILE",
                        help='also save the codes (safetensors, "codes" [1, Q, T]), e.g. for a WaveNet vocoder')


def _run_roundtrip(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out}: already exists; pass --overwrite to replace it")
    if out.suffix.lower() not in (".wav", ".flac"):
        raise UsageError(f"{out}: output must be a .wav or .flac file")
    if args.save_codes and Path(args.save_codes).exists() and not args.overwrite:
        raise UsageError(f"{args.save_codes}: already exists; pass --overwrite to replace it")
    from audiolm.core.audio import load_audio, resample, save_audio  # lazy: keeps `audiolm --help` fast
    from audiolm.models.codec.codec import Codec  # lazy: keeps `audiolm --help` fast

    codec = Codec.from_pretrained(args.codec, device=_device(args.device))
    wav, rate = load_audio(args.input)  # [C, N]
    codes = codec.encode(wav, rate, kbps=args.kbps)  # [1, Q, T]
    audio = codec.decode(codes)[0].cpu()  # [1, T * hop] at the codec rate
    audio = resample(audio, codec.sample_rate, rate)[:, : wav.shape[-1]]
    save_audio(out, audio, rate)
    if args.save_codes:
        from audiolm.core.checkpoint import save_tensors  # lazy: keeps `audiolm --help` fast

        save_tensors(args.save_codes, {"codes": codes.cpu().contiguous()})
    print(f"{args.input} -> {out}: {codes.shape[1]} levels x {codes.shape[2]} frames "
          f"({args.kbps:g} kbps) at {codec.frame_rate} Hz", file=sys.stderr)
    return 0


# -- audiolm train codec ----------------------------------------------------------------------


def _setup_train(parser: argparse.ArgumentParser) -> None:
    from audiolm.training.trainer import add_training_arguments  # lazy: keeps `audiolm --help` fast

    parser.add_argument("--data", required=True, metavar="CORPUS", help="corpus folder (manifest.jsonl)")
    add_training_arguments(parser, _train_defaults())


def _run_train(args: argparse.Namespace) -> int:
    from audiolm.models.codec.config import CodecConfig  # lazy: keeps `audiolm --help` fast
    from audiolm.training.codec.task import CodecTask  # lazy: keeps `audiolm --help` fast
    from audiolm.training.trainer import resolve_model_config, train_from_args  # lazy: keeps `audiolm --help` fast

    config = resolve_model_config(args, CodecConfig, CodecConfig())
    seed = args.seed if args.seed is not None else 0
    train_from_args(lambda: CodecTask.from_corpus(config, args.data, seed=seed), args, _train_defaults())
    return 0


# -- audiolm eval codec -----------------------------------------------------------------------


def _setup_eval(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="CORPUS", help="corpus folder (manifest.jsonl)")
    parser.add_argument("--split", default="valid", choices=("train", "valid"), help="split (default valid)")
    _add_codec_arg(parser)
    parser.add_argument("--kbps", type=float, nargs="+", default=None,
                        help="bit rates to evaluate (default: every bit rate the codec offers up to 12)")
    parser.add_argument("--max-items", type=int, default=None, help="at most N clips per kind (default all)")
    parser.add_argument("--no-opus", action="store_true", help="skip the Opus comparison")
    parser.add_argument("--skip-visqol", action="store_true", help="skip ViSQOL (slow; for quick checks only)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--out", metavar="TABLE.md", help="also save the table (Markdown) here")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_eval(args: argparse.Namespace) -> int:
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise UsageError(f"{args.out}: already exists; pass --overwrite to replace it")
    from audiolm.core.checkpoint import atomic_write_text  # lazy: keeps `audiolm --help` fast
    from audiolm.models.codec.codec import Codec  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.codec.evaluate import evaluate_codec, format_table  # lazy: keeps `audiolm --help` fast
    from audiolm.core.corpus import read_manifest  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    device = _device(args.device)
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
    results = evaluate_codec(codec, items, bandwidths, opus=not args.no_opus,
                             use_visqol=not args.skip_visqol, progress=not args.no_progress)
    title = f"codec vs Opus on {args.data} ({args.split} split), codec {codec.source}"
    table = format_table(results, title)
    if args.out:
        atomic_write_text(args.out, table + "\n")
    report = {
        "machine": describe_machine(device),
        "codec": codec.source,
        "data": str(args.data),
        "split": args.split,
        "clips": {kind: sum(1 for it in items if it.kind == kind) for kind in ("speech", "music")},
        "visqol": not args.skip_visqol,
        "results": results,
    }
    if args.json:
        print_json(report)
    else:
        print(table)
    return 0


# -- audiolm bench codec ----------------------------------------------------------------------


def _setup_bench(parser: argparse.ArgumentParser) -> None:
    _add_codec_arg(parser)
    parser.add_argument("--random", action="store_true",
                        help="time a randomly initialised codec (default config, or --config) instead of a checkpoint")
    parser.add_argument("--config", metavar="JSON", help="codec config for --random")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure, best kept (default 3)")
    parser.add_argument("--batch-size", type=int, default=1, help="clips per call (default 1)")
    parser.add_argument("--device", default="all", help="cpu | cuda | all (default all: cpu, and cuda if present)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _run_bench(args: argparse.Namespace) -> int:
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.evaluation.codec.bench import bench_codec, format_bench  # lazy: keeps `audiolm --help` fast
    from audiolm.models.codec.codec import Codec  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    if args.seconds <= 0 or args.repeats < 1 or args.batch_size < 1:
        raise UsageError("--seconds must be > 0, --repeats and --batch-size >= 1")
    if args.random:
        if args.codec:
            raise UsageError("give --codec or --random, not both")
        from audiolm.models.codec.config import CodecConfig  # lazy: keeps `audiolm --help` fast
        from audiolm.models.codec.model import CodecModel  # lazy: keeps `audiolm --help` fast
        config = load_config_file(CodecConfig, args.config) if args.config else CodecConfig()
        torch.manual_seed(0)
        codec = Codec(CodecModel(config), source="random init")
    else:
        codec = Codec.from_pretrained(args.codec)
    if args.device == "all":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    elif args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available")
    else:
        devices = [args.device]
    reports = []
    for device in devices:
        report = bench_codec(codec, args.seconds, args.repeats, device, args.batch_size)
        report["machine"] = describe_machine(device)
        reports.append(report)
    if args.json:
        print_json({"machine": reports[0]["machine"], "codec": codec.source, "runs": reports})
    else:
        print(f"codec: {codec.source}")
        for report in reports:
            print(format_bench(report) + "\n")
    return 0


def register(cli) -> None:
    cli.add("codec", "encode and decode an audio file through the codec (a round trip at one bit rate)",
            _setup_roundtrip, _run_roundtrip)
    cli.add("train codec", "train the codec from scratch on a corpus (RVQ, mel + adversarial losses)",
            _setup_train, _run_train)
    cli.add("eval codec", "codec vs Opus at the same bit rates: mel distance, SI-SDR, STOI, PESQ, ViSQOL",
            _setup_eval, _run_eval)
    cli.add("bench codec", "codec encode / decode speed as multiples of real time (CPU, and GPU if present)",
            _setup_bench, _run_bench)
