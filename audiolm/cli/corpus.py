"""`audiolm corpus build OUT` (see audiolm/training/data/corpus_build.py).

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter


def _setup_build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output folder (created; an existing corpus is resumed/extended)")
    parser.add_argument("--speech-minutes", type=float, default=10.0, help="minutes of speech (default 10)")
    parser.add_argument("--music-minutes", type=float, default=10.0, help="minutes of music (default 10)")
    parser.add_argument("--sample-rate", type=int, default=24000, help="sample rate of the corpus (default 24000)")
    parser.add_argument("--seed", type=int, default=0, help="seed: texts, voices, pieces, instruments (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_build(args: argparse.Namespace) -> int:
    from audiolm.training.data.corpus_build import build_corpus  # lazy: keeps `audiolm --help` fast

    items = build_corpus(
        args.out, args.speech_minutes, args.music_minutes, sample_rate=args.sample_rate,
        seed=args.seed, workers=max(1, args.workers), progress=not args.no_progress,
    )
    minutes = Counter()
    for item in items:
        minutes[(item.kind, item.split)] += item.duration / 60
    summary = ", ".join(f"{kind}/{split} {m:.1f} min" for (kind, split), m in sorted(minutes.items()))
    print(f"corpus: {len(items)} items in {args.out} ({summary})", file=sys.stderr)
    return 0


def register(cli) -> None:
    cli.add(
        "corpus build",
        "build the offline training corpus: espeak-ng/flite speech with phone alignments, "
        "music21 scores rendered by fluidsynth",
        _setup_build,
        _run_build,
    )
