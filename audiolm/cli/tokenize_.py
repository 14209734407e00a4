"""`audiolm tokenize`: a corpus once into memory-mappable semantic + acoustic token shards
(audiolm/training/data/tokenize_corpus.py).

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiolm.cli.args import UsageError, check_finite


def _setup_tokenize(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", metavar="CORPUS", help="corpus folder (audiolm corpus build)")
    parser.add_argument("out", metavar="OUT", help="token directory to write (resumed if interrupted)")
    parser.add_argument("--codec", metavar="DIR", help="codec directory (default: the embedded codec)")
    parser.add_argument("--semantic", metavar="DIR", help="semantic tokenizer directory (default: embedded)")
    parser.add_argument("--kbps", type=float, default=6.0, help="codec bandwidth: sets the RVQ levels kept (default 6)")
    parser.add_argument("--shard-size", type=int, default=64, help="utterances per shard (default 64)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it holds other tokens")
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=30.0,
        help="encode longer files in chunks of this length, in bounded memory (default 30)",
    )
    parser.add_argument(
        "--context-seconds",
        type=float,
        default=5.0,
        help="audio either side of a chunk that its encoders also see (default 5)",
    )


def _run_tokenize(args: argparse.Namespace) -> int:
    from audiolm.models.codec.codec import Codec  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.tokenizer import SemanticTokenizer  # lazy: keeps `audiolm --help` fast
    from audiolm.training.data.tokenize_corpus import tokenize_corpus  # lazy: keeps `audiolm --help` fast

    if not 1 <= args.shard_size <= 1_000_000:
        raise UsageError(f"--shard-size must be in [1, 1000000], got {args.shard_size}")
    check_finite(args.kbps, "--kbps", positive=True)
    check_finite(args.chunk_seconds, "--chunk-seconds", positive=True)
    check_finite(args.context_seconds, "--context-seconds", low=0.0)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"{args.out}: is a file, not a token folder")
    if not Path(args.out).exists() and not Path(args.out).parent.is_dir():
        raise UsageError(f"{args.out}: folder {Path(args.out).parent} does not exist")
    from audiolm.core.corpus import read_manifest  # lazy: keeps `audiolm --help` fast

    read_manifest(args.corpus)  # a bad corpus fails before the tokenizers load
    codec = Codec.from_pretrained(args.codec)
    semantic = SemanticTokenizer.from_pretrained(args.semantic)
    index = tokenize_corpus(
        args.corpus,
        args.out,
        codec,
        semantic,
        kbps=args.kbps,
        codec_dir=args.codec,
        semantic_dir=args.semantic,
        shard_size=args.shard_size,
        overwrite=args.overwrite,
        chunk_seconds=args.chunk_seconds,
        context_seconds=args.context_seconds,
    )
    print(f"tokens written to {index.parent}")
    return 0


def register(cli) -> None:
    cli.add(
        "tokenize",
        "tokenize a corpus once into memory-mappable semantic + acoustic token shards",
        _setup_tokenize,
        _run_tokenize,
    )
