"""`audiolm corpus import SRC OUT`: any folder (or file list) of audio -> the corpus format.

Every regular file whose extension libsndfile reads (wav, flac, ogg/opus, mp3, aiff, ...) is
streamed block by block — mono, resampled (soxr), never whole in memory — and cut into
chunks of at most `chunk_seconds`: at the quietest 50 ms frame of the chunk's second half
when that frame is silence (30 dB under the chunk's level), else at the fixed length
(`split="fixed"`: always there). A last piece shorter than `min_seconds` joins the chunk
before it. Each chunk gets the builder's level (-23 dB RMS, peaks under 0.99) and is written
as 16-bit PCM:

    OUT/<kind>/<group>/<id>.wav     id = <kind letter><10 hex of the source path>_<chunk>
    OUT/manifest.jsonl              the format `corpus build` writes (audiolm/core/corpus.py)
    OUT/import.json                 settings (a resume with other settings is refused)
    OUT/import_report.json          files skipped (unreadable, empty, silent, too short, ...)
    OUT/.import/<hash>.json         one record per finished source file: what a resume skips

Kind: `kind="speech"|"music"` for everything, or one kind per top-level subfolder named
`speech/` or `music/` (anything else is skipped and reported). Group (the unit of the
train/valid split, so valid holds unseen voices or pieces): `top` = the first folder under
the kind's root (a speaker folder: LibriSpeech's SRC/<speaker>/<chapter>/*.flac), `parent`
= the file's folder (an album), `file` = the file; a file directly in the root is its own
group. Default: top for speech, parent for music. A group is valid when a hash of its name
falls under `valid_fraction` (stable as files are added); with two or more groups both
splits are non-empty.

Nothing under SRC is written, moved or touched; OUT may not lie inside SRC.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from audiolm.core.audio import check_sample_rate, normalize_loudness, save_audio
from audiolm.core.audio_stream import iter_blocks
from audiolm.core.checkpoint import atomic_write_json
from audiolm.core.corpus import KINDS, CorpusItem, write_manifest
from audiolm.core.errors import AudiolmError

SETTINGS_FILE = "import.json"
REPORT_FILE = "import_report.json"
RECORDS_DIR = ".import"
FORMAT_VERSION = 1
GROUP_BY = ("top", "parent", "file")
SPLIT_MODES = ("silence", "fixed")
# extensions libsndfile 1.2 reads (soundfile.available_formats(), plus common aliases)
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .caf .w64 .rf64 .voc .sd2 .htk .ircam "
    ".sf .nist .sph .mat4 .mat5 .paf .pvf .xi .avr .wve .mpc .svx".split()
)
_BLOCK_SECONDS = 20.0  # read this much of a source at a time
_FRAME_S = 0.05
_SILENCE_DB = 30.0  # a cut frame this far under the chunk's level is silence
_SILENT_DBFS = -60.0  # a chunk quieter than this carries nothing


@dataclass(frozen=True)
class ImportSettings:
    sample_rate: int = 24000
    kind: str | None = None  # None: one kind per top-level subfolder
    chunk_seconds: float = 30.0
    min_seconds: float = 1.0
    split: str = "silence"
    group_by: str | None = None  # None: top for speech, parent for music
    valid_fraction: float = 0.1

    def check(self) -> None:
        check_sample_rate(self.sample_rate, "--sample-rate")
        if self.kind is not None and self.kind not in KINDS:
            raise AudiolmError(f"--kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not 0 < self.min_seconds <= self.chunk_seconds:
            raise AudiolmError("need 0 < --min-seconds <= --chunk-seconds")
        if self.split not in SPLIT_MODES:
            raise AudiolmError(f"--split must be one of {', '.join(SPLIT_MODES)}")
        if self.group_by is not None and self.group_by not in GROUP_BY:
            raise AudiolmError(f"--group-by must be one of {', '.join(GROUP_BY)}")
        if not 0 <= self.valid_fraction < 1:
            raise AudiolmError("--valid-fraction must be in [0, 1)")


@dataclass(frozen=True)
class Source:
    """One audio file to import: where it is, its kind and its split group."""

    path: str  # absolute
    rel: str  # relative to SRC (or as listed), the file's identity in OUT
    kind: str
    group: str


# ---------------------------------------------------------------------------------------------
# finding the files


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "_"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    """Regular files under `root` (file symlinks followed, folder symlinks not), sorted."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def find_sources(src: str | Path, settings: ImportSettings) -> tuple[list[Source], list[dict[str, str]], int]:
    """(sources, skipped [{path, reason}], number of non-audio files ignored).

    `src` is a folder, or a text file listing one audio path per line (relative paths are
    taken from the list's folder; blank lines and lines starting with # are ignored)."""
    src = Path(src)
    skipped: list[dict[str, str]] = []
    ignored = 0
    if src.is_dir():
        root = src.resolve()
        listed = [(p, p.relative_to(root).as_posix()) for p in _walk(root)]
    elif src.is_file():
        root = src.resolve().parent
        listed = []
        try:
            lines = src.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError) as e:
            raise AudiolmError(f"{src}: not a folder or a readable list of audio files ({e})") from None
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            path = Path(line) if Path(line).is_absolute() else root / line
            try:
                rel = path.resolve().relative_to(root).as_posix()
            except ValueError:
                rel = path.as_posix().lstrip("/")
            listed.append((path, rel))
    else:
        raise AudiolmError(f"{src}: no such folder or file list")
    sources = []
    for path, rel in listed:
        if not path.is_file():
            skipped.append({"path": rel, "reason": "not a file" if path.exists() else "missing"})
            continue
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            ignored += 1
            continue
        parts = rel.split("/")
        kind = settings.kind
        if kind is None:
            if len(parts) < 2 or parts[0] not in KINDS:
                skipped.append({"path": rel, "reason": "no kind: not under speech/ or music/ (or pass --kind)"})
                continue
            kind, parts = parts[0], parts[1:]
        group_by = settings.group_by or ("top" if kind == "speech" else "parent")
        if len(parts) == 1 or group_by == "file":
            group = "/".join(parts)
        elif group_by == "top":
            group = parts[0]
        else:
            group = "/".join(parts[:-1])
        sources.append(Source(str(path.absolute()), rel, kind, group))
    return sources, skipped, ignored


def assign_splits(groups: set[str], valid_fraction: float) -> dict[str, str]:
    """group -> "train" | "valid": by a hash of the group's name; both splits non-empty when
    there are two or more groups and valid_fraction > 0."""
    score = {g: int(_digest("split:" + g)[:12], 16) / 16**12 for g in groups}
    split = {g: "valid" if score[g] < valid_fraction else "train" for g in groups}
    if len(groups) >= 2 and valid_fraction > 0:
        if "valid" not in split.values():
            split[min(groups, key=lambda g: score[g])] = "valid"
        if "train" not in split.values():
            split[max(groups, key=lambda g: score[g])] = "train"
    return split


# ---------------------------------------------------------------------------------------------
# one file -> chunks (runs in worker processes)


def _level_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20)) if len(x) else -200.0


def find_cut(buf: np.ndarray, max_len: int, sample_rate: int, mode: str) -> int:
    """Where to end the chunk that starts at buf[0] (len(buf) >= max_len): the centre of the
    quietest 50 ms frame in [max_len / 2, max_len) when it is silence, else max_len."""
    if mode == "fixed":
        return max_len
    hop = max(1, int(_FRAME_S * sample_rate))
    lo = max_len // 2
    n = (max_len - lo) // hop
    if n < 1:
        return max_len
    frames = buf[lo : lo + n * hop].reshape(n, hop).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    best = int(np.argmin(level))
    if level[best] < _level_db(buf[:max_len]) - _SILENCE_DB:
        return lo + best * hop + hop // 2
    return max_len


def chunk_stream(
    blocks: Iterator[np.ndarray], sample_rate: int, chunk_seconds: float, min_seconds: float, mode: str
) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, chunk) for the whole stream; the last piece, if shorter than
    `min_seconds`, joins the chunk before it. Holds at most ~2 chunks + a block in memory."""
    max_len = int(round(chunk_seconds * sample_rate))
    min_len = int(round(min_seconds * sample_rate))
    buf = np.zeros(0, dtype=np.float32)
    start = 0
    pending: tuple[int, np.ndarray] | None = None
    for block in blocks:
        buf = np.concatenate([buf, block])
        while len(buf) >= max_len + min_len:  # a cut here leaves at least min_len behind it
            cut = find_cut(buf, max_len, sample_rate, mode)
            if pending is not None:
                yield pending
            pending = (start, buf[:cut].copy())
            start += cut
            buf = buf[cut:]
    if len(buf) > max_len:  # the tail between max_len and max_len + min_len: two pieces
        cut = find_cut(buf, max_len, sample_rate, mode)
        if pending is not None:
            yield pending
        pending, start, buf = (start, buf[:cut].copy()), start + cut, buf[cut:]
    if len(buf) >= min_len or pending is None:
        if pending is not None:
            yield pending
        if len(buf):
            yield start, buf
    else:  # a short tail joins the chunk before it
        yield pending[0], np.concatenate([pending[1], buf])


def import_file(source: Source, out_dir: str, settings: ImportSettings) -> dict[str, Any]:
    """Import one file; returns its record {"rel", "items": [...], "skipped": reason | None,
    "seconds_in", "seconds_dropped"}. Never raises for bad input: the reason is recorded."""
    out = Path(out_dir)
    sr = settings.sample_rate
    prefix = source.kind[0] + _digest(source.rel)[:10]
    folder = f"{source.kind}/{_safe(source.group)}"
    items: list[dict[str, Any]] = []
    written: list[Path] = []
    seconds_in = dropped = 0.0
    short = silent = 0
    try:
        if os.path.getsize(source.path) == 0:
            raise _Skip("empty file (0 bytes)")
        for start, chunk in chunk_stream(
            iter_blocks(source.path, sr, _BLOCK_SECONDS),
            sr,
            settings.chunk_seconds,
            settings.min_seconds,
            settings.split,
        ):
            seconds = len(chunk) / sr
            seconds_in += seconds
            if seconds < settings.min_seconds:
                dropped, short = dropped + seconds, short + 1
                continue
            if not np.isfinite(chunk).all() or _level_db(chunk) < _SILENT_DBFS:
                dropped, silent = dropped + seconds, silent + 1
                continue
            k = len(items)
            wav = normalize_loudness(torch.from_numpy(chunk).reshape(1, -1), target_db=-23.0)
            rel_path = f"{folder}/{prefix}_{k:04d}.wav"
            written.append(out / rel_path)
            save_audio(out / rel_path, wav, sr)
            items.append(
                {
                    "id": f"{prefix}_{k:04d}",
                    "path": rel_path,
                    "kind": source.kind,
                    "duration": seconds,
                    "sample_rate": sr,
                    "speaker": f"import:{source.group}",
                    "labels": {"source": source.rel, "group": source.group, "start": round(start / sr, 4), "chunk": k},
                }
            )
        if seconds_in == 0:
            raise _Skip("empty (no samples)")
        reason = None
        if silent:
            reason = "silent" if not items else f"{silent} silent chunk(s) dropped"
        elif short:
            reason = f"too short ({seconds_in:.2f} s < {settings.min_seconds} s)" if not items else "short tail dropped"
    except _Skip as e:
        reason = str(e)
    except Exception as e:  # noqa: BLE001 - any decoder failure is bad input, reported, never fatal
        for path in written:  # a file that fails mid-way leaves nothing behind
            path.unlink(missing_ok=True)
        items, reason = [], f"unreadable: {' '.join(str(e).split())[:160] or type(e).__name__}"
    return {
        "rel": source.rel,
        "items": items,
        "skipped": None if items else reason,
        "partly_dropped": reason if items else None,
        "seconds_in": round(seconds_in, 3),
        "seconds_dropped": round(dropped, 3),
    }


class _Skip(Exception):
    """A file that is read fine but has nothing to import."""


def _import_and_record(args: tuple[Source, str, ImportSettings]) -> dict[str, Any]:
    source, out_dir, settings = args
    record = import_file(source, out_dir, settings)
    atomic_write_json(Path(out_dir) / RECORDS_DIR / f"{_digest(source.rel)}.json", record)  # marks it done
    return record


# ---------------------------------------------------------------------------------------------
# the import


def _check_out_dir(src: Path, out_dir: Path, settings: dict[str, Any]) -> None:
    src_root = (src if src.is_dir() else src.parent).resolve()
    out_abs = out_dir.resolve()
    if src.is_dir() and (out_abs == src_root or src_root in out_abs.parents):
        raise AudiolmError(f"{out_dir} lies inside {src}: choose an output folder outside the source")
    path = out_dir / SETTINGS_FILE
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise AudiolmError(f"{path}: not valid JSON; remove the folder to import again") from None
        for key, value in settings.items():
            if previous.get(key) != value:
                raise AudiolmError(
                    f"{out_dir} holds an import made with {key}={previous.get(key)!r}, not {value!r}: "
                    "use another folder"
                )
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise AudiolmError(f"{out_dir} exists and is not an import folder: choose an empty or new folder")


def import_corpus(
    src: str | Path,
    out_dir: str | Path,
    settings: ImportSettings | None = None,
    workers: int = 2,
    progress: bool = True,
) -> tuple[list[CorpusItem], dict[str, Any]]:
    """Import `src` into `out_dir` (resuming a killed import); returns (manifest items, report)."""
    began = time.monotonic()
    settings = settings or ImportSettings()
    settings.check()
    src, out_dir = Path(src), Path(out_dir)
    if not src.exists():
        raise AudiolmError(f"{src}: no such folder or file list")
    recorded = {"format_version": FORMAT_VERSION, "source": str(src.resolve()), **settings.__dict__}
    _check_out_dir(src, out_dir, recorded)
    sources, skipped, ignored = find_sources(src, settings)
    if not sources:
        hint = (
            " (put them under speech/ or music/, or pass --kind)"
            if any(s["reason"].startswith("no kind") for s in skipped)
            else ""
        )
        raise AudiolmError(f"{src}: no audio files to import{hint}; {len(skipped)} skipped, {ignored} other files")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / SETTINGS_FILE, recorded)
    records_dir = out_dir / RECORDS_DIR
    records_dir.mkdir(exist_ok=True)
    for orphan in out_dir.rglob(".*.tmp"):  # temp files of an import killed mid-write
        orphan.unlink(missing_ok=True)

    records: dict[str, dict[str, Any]] = {}
    todo = []
    for source in sources:
        path = records_dir / f"{_digest(source.rel)}.json"
        try:
            records[source.rel] = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            todo.append(source)
    bar = tqdm(total=len(sources), initial=len(records), desc="import", unit="file", disable=not progress)
    args = [(s, str(out_dir), settings) for s in todo]
    if workers > 1 and len(todo) > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for record in pool.imap_unordered(_import_and_record, args, chunksize=4):
                records[record["rel"]] = record
                bar.update(1)
    else:
        for a in args:
            record = _import_and_record(a)
            records[record["rel"]] = record
            bar.update(1)
    bar.close()

    groups = {(s.kind, s.group) for s in sources if records[s.rel]["items"]}
    splits: dict[tuple[str, str], str] = {}
    for kind in KINDS:
        kind_split = assign_splits({g for k, g in groups if k == kind}, settings.valid_fraction)
        splits.update({(kind, g): s for g, s in kind_split.items()})
    items = []
    for source in sorted(sources, key=lambda s: s.rel):
        record = records[source.rel]
        if record["skipped"]:
            skipped.append({"path": source.rel, "reason": record["skipped"]})
        for raw in record["items"]:
            items.append(CorpusItem(**raw, split=splits[(source.kind, source.group)], root=out_dir))
    write_manifest(out_dir, items)
    seconds = {
        f"{k}/{s}": round(sum(i.duration for i in items if i.kind == k and i.split == s), 2)
        for k in KINDS
        for s in ("train", "valid")
    }
    report = {
        "source": str(src.resolve()),
        "files": len(sources) + len([s for s in skipped if s["reason"] in ("not a file", "missing")]),
        "imported_files": sum(1 for s in sources if records[s.rel]["items"]),
        "items": len(items),
        "seconds": seconds,
        "seconds_read": round(sum(r["seconds_in"] for r in records.values()), 2),
        "seconds_dropped": round(sum(r["seconds_dropped"] for r in records.values()), 2),
        "groups": {k: len({g for kk, g in groups if kk == k}) for k in KINDS},
        "valid_groups": sorted(f"{k}:{g}" for (k, g), s in splits.items() if s == "valid"),
        "ignored_non_audio": ignored,
        "skipped": sorted(skipped, key=lambda s: s["path"]),
        "wall_s_this_run": round(time.monotonic() - began, 2),
    }
    atomic_write_json(out_dir / REPORT_FILE, report)
    return items, report
