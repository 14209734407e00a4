"""What the command modules share: the usage error, the `--json` printer, devices, output checks,
pipeline and corpus arguments. Imports nothing heavy (start-up time)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """Raised by a command for bad arguments; printed as one line, exit code 2."""


def print_json(obj: dict[str, Any]) -> None:
    """The `--json` convention: one JSON object on stdout, nothing else."""
    sys.stdout.write(json.dumps(obj, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    try:
        import numpy as np  # lazy: keeps `audiolm --help` free of numpy

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def pick_device(name: str) -> str:
    """cpu | cuda | cuda:N | mps | auto -> a device torch can use here, else UsageError."""
    import torch  # lazy: keeps `audiolm --help` fast

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name}: not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(f"--device {name}: MPS is not available")
    elif device.type != "cpu":
        raise UsageError(f"--device {name}: not supported; use cpu, cuda, cuda:N or auto")
    return str(device)


def check_finite(
    value,
    flag: str,
    *,
    positive: bool = False,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
) -> None:
    """A numeric argument must be finite and inside its range: else one-line UsageError."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{flag}: must be a finite number, got {value}")
    if integer and not float(value).is_integer():
        raise UsageError(f"{flag}: must be a whole number, got {value}")
    if positive and not value > 0:
        raise UsageError(f"{flag}: must be positive, got {value:g}")
    if low is not None and value < low:
        raise UsageError(f"{flag}: must be at least {low:g}, got {value:g}")
    if high is not None and value > high:
        raise UsageError(f"{flag}: must be at most {high:g}, got {value:g}")


def add_codec_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--codec",
        metavar="DIR",
        default=None,
        help="codec checkpoint, training run, or HF EnCodec folder (default: the shipped codec)",
    )


def check_output(path: str | Path | None, overwrite: bool) -> None:
    """Before any work: an output file that exists is an error unless --overwrite (None: no output)."""
    if path and Path(path).exists() and not overwrite:
        raise UsageError(f"{path}: already exists; pass --overwrite to replace it")


def claim_output(args: argparse.Namespace, path: str | Path | None, flag: str = "--out"):
    """Claim an output for the whole command (core/outputs.py; `main` releases it): None for
    no path. Write the returned claim's `temp`, then `publish_text` / `claim.publish()`."""
    if not path:
        return None
    claim = getattr(args, "claim_output", None)
    if claim is None:  # a run function called outside `main` (tests): claim for this call only
        from audiolm.core.outputs import OutputSet  # lazy: keeps `audiolm --help` fast

        return OutputSet().claim(path, getattr(args, "overwrite", False), flag)
    return claim(path, getattr(args, "overwrite", False), flag)


def publish_text(claim, text: str) -> None:
    """Write `text` to a claimed output and publish it (no-op for None)."""
    if claim is None:
        return
    claim.temp.write_text(text)
    claim.publish()


def make_output_folder(path: str | Path, what: str = "output") -> Path:
    """Create (or accept an existing) output folder now, so an unusable path fails before any
    work: a file in the way, a missing parent, a read-only place (/proc) -> one UsageError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: is a file; the {what} must be a folder")
    if not path.exists() and not path.parent.is_dir():
        raise UsageError(f"{path}: folder {path.parent} does not exist")
    try:
        path.mkdir(exist_ok=True)
        probe = path / f".audiolm-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise UsageError(f"{path}: cannot create the {what} there ({e.strerror or e})") from None
    return path


def check_writable(paths: list[Path], overwrite: bool) -> None:
    """Fail before any work: an existing file without --overwrite, or a folder we cannot write."""
    for path in paths:
        check_output(path, overwrite)
        if path.is_dir():
            raise UsageError(f"{path}: is a directory")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"{path}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise UsageError(f"{path}: folder {parent} is not writable")


def parse_batches(text: str) -> list[int]:
    """`--batches 1,8` -> [1, 8]; integers >= 1, at least one."""
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--batches: expected integers like 1,8, got {text!r}") from None
    if not batches or min(batches) < 1:
        raise UsageError("--batches: batch sizes must be >= 1")
    return batches


def add_table_output_arguments(p: argparse.ArgumentParser) -> None:
    """`--out FILE` (the markdown table, besides stdout) and `--overwrite`."""
    p.add_argument("--out", help="also write the table (markdown) to this file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def check_corpus_and_table_output(args: argparse.Namespace):
    """Before any work: the corpus (--data), the clip counts, and the --out file, claimed for
    the whole command (returns the claim for `write_report`, None without --out)."""
    check_corpus(args.data)
    check_counts(args)
    return claim_output(args, args.out)


def write_report(claim, args: argparse.Namespace, table: str, record: dict[str, Any]) -> None:
    """A report's outputs: the markdown table published to the claimed --out (when given), and on
    stdout the JSON record (--json) or the table."""
    publish_text(claim, table)
    if args.json:
        print_json(record)
    else:
        sys.stdout.write(table)


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", default=None, help="speech | music | default | a recipe file or directory")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="CPU: the eager decoding step, not the compiled one (cached per machine)",
    )


def load_pipeline(args: argparse.Namespace):
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.inference.pipeline import AudioLM  # lazy: keeps `audiolm --help` fast

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available")
    compile_step = False if getattr(args, "no_compile", False) else None
    return AudioLM.from_pretrained(args.pipeline, device=args.device, compile_step=compile_step)


def check_corpus(path: str) -> None:
    if not (Path(path) / "manifest.jsonl").is_file():
        raise UsageError(f"{path}: not a corpus (no manifest.jsonl); build one with `audiolm corpus build`")


def check_counts(args: argparse.Namespace) -> None:
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    if not (args.prompt_seconds > 0 and args.seconds > 0):
        raise UsageError("--prompt-seconds and --seconds must be positive")
