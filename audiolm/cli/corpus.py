"""`audiolm corpus build OUT` (audiolm/training/data/corpus_build.py), `audiolm corpus import
SRC OUT` (audiolm/training/data/corpus_import.py) and `audiolm corpus merge OUT CORPUS...`
(audiolm/training/data/corpus_merge.py).

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict

from audiolm.cli.args import UsageError, make_output_folder


def _setup_build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output folder (created; an existing corpus is resumed/extended)")
    parser.add_argument("--speech-minutes", type=float, default=10.0, help="minutes of speech (default 10)")
    parser.add_argument("--music-minutes", type=float, default=10.0, help="minutes of music (default 10)")
    parser.add_argument("--sample-rate", type=int, default=24000, help="sample rate of the corpus (default 24000)")
    parser.add_argument("--seed", type=int, default=0, help="seed: texts, voices, pieces, instruments (default 0)")
    parser.add_argument("--jobs", "--workers", dest="jobs", type=int, default=2, help="rendering processes (default 2)")
    parser.add_argument(
        "--heldout",
        action="store_true",
        help="build the held-out evaluation set instead: only the reserved voices and soundfont "
        "(Festival kal/ked/slt, MBROLA us1-3/en1 where installed, MuseScore_General), "
        "every item in the valid split; never train on it",
    )
    parser.add_argument(
        "--engines",
        help="speech engines to draw voices from, comma-separated: espeak, flite, festival, mbrola "
        "(default: every one installed; a resumed corpus keeps its own)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


MAX_MINUTES = 100_000.0


def _check_build(args: argparse.Namespace) -> None:
    """Every number in range and finite, OUT a folder or absent, before any work."""
    for flag in ("speech_minutes", "music_minutes"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and 0 <= value <= MAX_MINUTES):
            raise UsageError(f"--{flag.replace('_', '-')} must be a finite number in [0, {MAX_MINUTES:g}], got {value}")
    if args.speech_minutes + args.music_minutes <= 0:
        raise UsageError("--speech-minutes and --music-minutes are both 0: nothing to build")
    if not 8000 <= args.sample_rate <= 192_000:
        raise UsageError(f"--sample-rate must be in [8000, 192000], got {args.sample_rate}")
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed must be in [0, {2**32 - 1}], got {args.seed}")
    if not 1 <= args.jobs <= 256:
        raise UsageError(f"--jobs must be in [1, 256], got {args.jobs}")
    if args.engines is not None:
        from audiolm.training.data.corpus_build import SPEECH_ENGINES  # lazy: start-up time

        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        unknown = [e for e in engines if e not in SPEECH_ENGINES]
        if unknown or not engines:
            raise UsageError(f"--engines takes some of {', '.join(SPEECH_ENGINES)}, got {args.engines!r}")
        if args.heldout:
            raise UsageError("--engines is for a training corpus; --heldout always takes the reserved voices")
        args.engines = engines
    make_output_folder(args.out, "corpus")


def _summary(items: list, out: str) -> str:
    """ "N items, V voices in OUT (speech/train 9.1 min, ...)"."""
    minutes: dict[tuple[str, str], float] = defaultdict(float)
    for item in items:
        minutes[(item.kind, item.split)] += item.duration / 60
    split_minutes = ", ".join(f"{kind}/{split} {m:.1f} min" for (kind, split), m in sorted(minutes.items()))
    voices = len({item.speaker for item in items if item.kind == "speech"})
    return f"{len(items)} items, {voices} voices in {out} ({split_minutes})"


def _run_build(args: argparse.Namespace) -> int:
    _check_build(args)
    from audiolm.training.data.corpus_build import build_corpus  # lazy: keeps `audiolm --help` fast

    items = build_corpus(
        args.out,
        args.speech_minutes,
        args.music_minutes,
        sample_rate=args.sample_rate,
        seed=args.seed,
        workers=max(1, args.jobs),
        progress=not args.no_progress,
        heldout=args.heldout,
        engines=args.engines,
    )
    print(f"corpus: {_summary(items, args.out)}", file=sys.stderr)
    return 0


def _setup_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "src",
        metavar="SRC",
        help="a folder of audio files (searched recursively) or a text file "
        "listing one audio path per line; never modified",
    )
    parser.add_argument("out", metavar="OUT", help="output corpus folder (created; an existing import is resumed)")
    parser.add_argument(
        "--kind",
        choices=("speech", "music"),
        default=None,
        help="the kind of every file (default: one kind per top-level subfolder speech/ or music/)",
    )
    parser.add_argument(
        "--group-by",
        choices=("top", "parent", "file"),
        default=None,
        help="the unit of the train/valid split: top = first folder under the kind's root (speaker), "
        "parent = the file's folder (album), file (default: top for speech, parent for music)",
    )
    parser.add_argument("--valid-fraction", type=float, default=0.1, help="share of groups in valid (default 0.1)")
    parser.add_argument("--chunk-seconds", type=float, default=30.0, help="longest chunk (default 30)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="shortest chunk / file kept (default 1)")
    parser.add_argument(
        "--split",
        choices=("silence", "fixed"),
        default="silence",
        help="cut long files at silences (else at the fixed length) or always at the fixed length",
    )
    parser.add_argument("--sample-rate", type=int, default=24000, help="sample rate of the corpus (default 24000)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_import(args: argparse.Namespace) -> int:
    from audiolm.training.data.corpus_import import REPORT_FILE, ImportSettings, import_corpus  # lazy: start-up time

    settings = ImportSettings(
        sample_rate=args.sample_rate,
        kind=args.kind,
        chunk_seconds=args.chunk_seconds,
        min_seconds=args.min_seconds,
        split=args.split,
        group_by=args.group_by,
        valid_fraction=args.valid_fraction,
    )
    items, report = import_corpus(
        args.src, args.out, settings, workers=max(1, args.jobs), progress=not args.no_progress
    )
    summary = ", ".join(f"{k} {s / 60:.1f} min" for k, s in report["seconds"].items() if s > 0)
    print(
        f"import: {report['imported_files']} files -> {len(items)} items in {args.out} ({summary or 'nothing'}); "
        f"{len(report['skipped'])} skipped (listed in {REPORT_FILE})",
        file=sys.stderr,
    )
    return 0


def _setup_merge(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output folder (new or empty): a manifest and one link per source")
    parser.add_argument("corpora", metavar="CORPUS", nargs="+", help="corpus folders to merge (two or more)")


def _run_merge(args: argparse.Namespace) -> int:
    from audiolm.training.data.corpus_merge import merge_corpora  # lazy: start-up time

    if len(args.corpora) < 2:
        raise UsageError("corpus merge needs at least two corpora")
    items = merge_corpora(args.out, args.corpora)
    print(f"merge: {_summary(items, args.out)}", file=sys.stderr)
    return 0


def register(cli) -> None:
    cli.add(
        "corpus build",
        "build the offline training corpus: espeak-ng/flite/Festival speech with phone alignments, "
        "music21 scores rendered by fluidsynth through several soundfonts (--heldout: the evaluation set)",
        _setup_build,
        _run_build,
    )
    cli.add(
        "corpus import",
        "turn any folder (or list) of audio files into a corpus: chunked, level-normalised, split by speaker/album",
        _setup_import,
        _run_import,
    )
    cli.add(
        "corpus merge",
        "one corpus reading several (linked, not copied), e.g. the synthetic corpus plus your own recordings",
        _setup_merge,
        _run_merge,
    )
