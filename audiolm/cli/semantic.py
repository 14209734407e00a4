"""CLI: `audiolm train ssl`, `audiolm train kmeans`, `audiolm eval semantic`, `audiolm bench semantic`.

Only argparse at import time; torch, transformers and the models load inside the run functions.
"""

from __future__ import annotations

import time
import sys
import json
import dataclasses
import argparse
from pathlib import Path

from audiolm.cli.app import print_json, UsageError


def _ssl_train_defaults():
    from audiolm.training.trainer import TrainConfig  # lazy: keeps `audiolm --help` fast

    # ~30 min on a shared 2-core CPU with the default SSLConfig (25 Hz, 8 x 2 s crops per step:
    # 0.7-0.9 steps/s measured with 1 thread at load ~7)
    return TrainConfig(steps=1500, batch_size=8, lr=1e-3, warmup_steps=100, valid_every=250, valid_batches=8,
                       save_every=250, log_every=25)


def _setup_train_ssl(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder (manifest.jsonl); trains on its train split")
    p.add_argument("--targets", help="tokenizer directory whose ids the MLM module predicts (HuBERT-style, e.g. "
                   "`audiolm train kmeans --mfcc`); sets target_clusters to its K unless the config sets it. "
                   "Pass it again with --resume")
    from audiolm.training.trainer import add_training_arguments  # lazy: keeps `audiolm --help` fast

    add_training_arguments(p, _ssl_train_defaults())


def _run_train_ssl(args: argparse.Namespace) -> int:
    from audiolm.models.semantic.config import SSLConfig  # lazy: keeps `audiolm --help` fast
    from audiolm.training.semantic.task import SSLTask  # lazy: keeps `audiolm --help` fast
    from audiolm.training.trainer import resolve_model_config, train_from_args  # lazy: keeps `audiolm --help` fast

    defaults = SSLConfig()
    if args.targets:
        from audiolm.models.semantic.tokenizer import SemanticTokenizer  # lazy: keeps `audiolm --help` fast

        targets = SemanticTokenizer.from_pretrained(args.targets)
        defaults = dataclasses.replace(defaults, target_clusters=targets.vocab_size, frame_rate=targets.frame_rate)
    config = resolve_model_config(args, SSLConfig, defaults)
    train_from_args(lambda: SSLTask.from_corpus(config, args.data, args.targets), args, _ssl_train_defaults())
    return 0


def _check_out(path: str, overwrite: bool) -> None:
    if Path(path).exists() and not overwrite:
        raise UsageError(f"{path} already exists; pass --overwrite to replace it")


def _setup_train_kmeans(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ssl", help="SSL training run or exported model (audiolm train ssl --out RUN)")
    src.add_argument("--hf", help="local transformers directory: HuBERT, wav2vec 2.0 or w2v-BERT 2.0")
    src.add_argument("--mfcc", action="store_true", help="the MFCC baseline tokenizer")
    p.add_argument("--layer", type=int, default=None, help="feature layer (required with --ssl / --hf)")
    p.add_argument("--k", type=int, default=256, help="number of centroids = vocabulary size (default 256)")
    p.add_argument("--out", required=True, help="tokenizer directory to write (SemanticTokenizer.from_pretrained)")
    p.add_argument("--data", help="corpus folder (default: the corpus the SSL run trained on)")
    p.add_argument("--frame-rate", type=int, default=50, choices=(25, 50), help="frame rate for --mfcc")
    p.add_argument("--max-frames", type=int, default=400_000, help="frames sampled for k-means (default 400000)")
    p.add_argument("--steps", type=int, default=300, help="mini-batch k-means steps (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _run_train_kmeans(args: argparse.Namespace) -> int:
    from audiolm.core.checkpoint import resolve_checkpoint_dir  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.kmeans import resolve_device  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.tokenizer import SemanticTokenizer  # lazy: keeps `audiolm --help` fast

    _check_out(args.out, args.overwrite)
    if (args.ssl or args.hf) and args.layer is None:
        raise UsageError("--layer is required with --ssl / --hf")
    data = args.data
    if args.ssl:
        tok = SemanticTokenizer.from_ssl(args.ssl, args.layer)
        if data is None:
            record = resolve_checkpoint_dir(args.ssl) / "ssl_data.json"
            if record.is_file():
                data = json.loads(record.read_text()).get("data")
    elif args.hf:
        tok = SemanticTokenizer.from_hf(args.hf, args.layer)
    else:
        tok = SemanticTokenizer.mfcc(args.frame_rate)
    if data is None:
        raise UsageError("--data is required (the SSL run does not record its corpus)")
    device = resolve_device(args.device)
    tok.to(device)
    tok.fit_kmeans(data, args.k, max_frames=args.max_frames, steps=args.steps, seed=args.seed, device=str(device))
    out = tok.to("cpu").save(args.out)
    print(f"tokenizer written to {out} (K={tok.vocab_size}, layer {tok.layer}, {tok.frame_rate} Hz)")
    return 0


def _setup_eval(p: argparse.ArgumentParser) -> None:
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


def _run_eval(args: argparse.Namespace) -> int:
    from audiolm.core.checkpoint import atomic_write_text  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.semantic.evaluate import evaluate_semantic, format_table  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.kmeans import resolve_device  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.tokenizer import SemanticTokenizer, load_ssl_encoder  # lazy: keeps `audiolm --help` fast

    if args.out:
        _check_out(args.out, args.overwrite)
    device = str(resolve_device(args.device))
    kwargs = dict(k=args.k, smoothing=args.smoothing, max_kmeans_frames=args.max_kmeans_frames, device=device,
                  progress=not args.json)
    if args.ssl:
        result = evaluate_semantic(args.data, encoder=load_ssl_encoder(args.ssl), layers=args.layers, **kwargs)
    else:
        tok = SemanticTokenizer.from_pretrained(args.tokenizer, device=device)
        result = evaluate_semantic(args.data, tokenizer=tok, **kwargs)
    table = format_table(result)
    if args.out:
        atomic_write_text(args.out, table)
    if args.json:
        print_json(result | {"machine": describe_machine(device)})
    else:
        sys.stdout.write(table)
    return 0


def _setup_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", help="tokenizer directory (default: the shipped one; an untrained "
                   "default-size encoder if none is shipped)")
    p.add_argument("--layer", type=int, default=4, help="layer of the untrained stand-in (default 4)")
    p.add_argument("--frame-rate", type=int, default=25, choices=(25, 50), help="frame rate of the stand-in")
    p.add_argument("--seconds", type=float, default=10.0, help="audio per call (default 10)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_bench(args: argparse.Namespace) -> int:
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.config import SSLConfig, TokenizerConfig  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.encoder import SSLEncoder  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.features import SSLFeatures  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.tokenizer import SemanticTokenizer, default_checkpoint_dir  # lazy: keeps `audiolm --help` fast

    note = "trained"
    if args.tokenizer or (default_checkpoint_dir() / "config.json").is_file():
        tok = SemanticTokenizer.from_pretrained(args.tokenizer)
    else:  # same cost as a trained one: default size up to --layer, K=256
        torch.manual_seed(0)
        ssl = SSLConfig(num_layers=args.layer, frame_rate=args.frame_rate)
        cfg = TokenizerConfig(source="ssl", layer=args.layer, vocab_size=256, frame_rate=ssl.frame_rate, ssl=ssl)
        tok = SemanticTokenizer(cfg, SSLFeatures(SSLEncoder(ssl), args.layer), {"centroids": torch.randn(256, ssl.hidden_size)})
        note = "untrained default-size encoder (no shipped tokenizer)"
    tok = tok.to(args.device)
    n = int(args.seconds * 24000)
    wav = torch.randn(args.batch_size, n, generator=torch.Generator().manual_seed(0)) * 0.1
    tok.encode(wav, 24000)  # warm-up
    times = []
    for _ in range(args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        tokens = tok.encode(wav, 24000)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    best, median = min(times), sorted(times)[len(times) // 2]
    audio_seconds = args.seconds * args.batch_size
    result = {
        "benchmark": "semantic tokenize (24 kHz input, resampling included)",
        "tokenizer": note if note != "trained" else str(args.tokenizer or default_checkpoint_dir()),
        "layer": tok.layer, "vocab_size": tok.vocab_size, "frame_rate": tok.frame_rate,
        "audio_seconds_per_call": audio_seconds, "batch_size": args.batch_size,
        "median_seconds": median, "best_seconds": best,
        "realtime_factor": audio_seconds / median, "realtime_factor_best": audio_seconds / best,
        "tokens": list(tokens.shape),
        "threads": torch.get_num_threads(), "machine": describe_machine(args.device),
    }
    if args.json:
        print_json(result)
    else:
        print(f"semantic tokenizing: {result['realtime_factor']:.0f}x real time median, "
              f"{result['realtime_factor_best']:.0f}x best "
              f"({audio_seconds:g} s of audio in {median * 1000:.1f} ms median, layer {tok.layer}, "
              f"K={tok.vocab_size}, {tok.frame_rate} Hz) on {result['machine']}")
    return 0


def register(cli) -> None:
    cli.add("train ssl", "pretrain the SSL encoder (w2v-BERT: contrastive + masked prediction)",
            _setup_train_ssl, _run_train_ssl)
    cli.add("train kmeans", "fit k-means on one encoder layer and write a SemanticTokenizer directory",
            _setup_train_kmeans, _run_train_kmeans)
    cli.add("eval semantic", "cross-validated phone purity / PNMI per layer vs an MFCC + k-means baseline",
            _setup_eval, _run_eval)
    cli.add("bench semantic", "semantic tokenizing speed (x real time)", _setup_bench, _run_bench)
