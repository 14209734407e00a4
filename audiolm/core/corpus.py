"""The corpus format: a folder of audio files plus `manifest.jsonl`, read by every training task.

    OUT/manifest.jsonl        one JSON object per utterance / music excerpt (see `CorpusItem`)
    OUT/speech/<voice>/<id>.wav         + <id>.phones.json  (phone alignment)
    OUT/music/<piece>/<id>.wav
    OUT/corpus.json           build settings (seed, sample rate, minutes) — `audiolm corpus build`
    OUT/.cache/midi/          each score as MIDI, so a resumed build does not parse it again
    OUT/build_errors.json     items that could not be rendered and were left out (if any)
    OUT/merge.json            a merged corpus' sources (`audiolm corpus merge`; its items' paths
                              run through one link per source: OUT/<source name>/...)

A manifest line:

    {"id": "...", "path": "speech/en-us+m3/s000123.wav", "kind": "speech" | "music",
     "split": "train" | "valid", "duration": 2.31, "sample_rate": 24000,
     "labels": {"engine": "espeak", "voice": "en-us+m3", ...} | {"instrument": ..., "piece": ...},
     "speaker": "espeak:en-us+m3" | "gm:violin",   # the voice (speech) or instrument (music)
     "text": "..." | null, "phones": "speech/.../s000123.phones.json" | null}

A phones file: {"inventory": "flite" | "espeak", "phones": [[start_s, end_s, "phone"], ...]}.

The valid split holds voices/variants and pieces that the train split never contains, so a
validation loss measures generalisation to unseen speakers and music.

`audiolm corpus build` (corpus_build.py) writes this format from synthesizers; the tests'
`tiny_corpus` fixture writes it from `synthetic_corpus.py` through the same `write_manifest`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from audiolm.core.checkpoint import atomic_write_json, atomic_write_text
from audiolm.core.errors import AudiolmError

MANIFEST_FILE = "manifest.jsonl"
KINDS = ("speech", "music")
SPLITS = ("train", "valid")


@dataclass
class CorpusItem:
    """One manifest line. `path` and `phones` are relative to the corpus folder."""

    id: str
    path: str
    kind: str
    split: str
    duration: float
    sample_rate: int
    labels: dict[str, Any] = field(default_factory=dict)
    speaker: str = ""
    text: str | None = None
    phones: str | None = None
    root: Path | None = field(default=None, repr=False, compare=False)  # set by read_manifest

    @property
    def audio_path(self) -> Path:
        """Absolute path of the audio file."""
        return (self.root or Path(".")).resolve() / self.path

    @property
    def phones_path(self) -> Path | None:
        """Absolute path of the phone alignment file, or None."""
        return None if self.phones is None else (self.root or Path(".")).resolve() / self.phones

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("root")
        return d


def _validate(item: CorpusItem, where: str) -> None:
    if item.kind not in KINDS:
        raise AudiolmError(f"{where}: kind {item.kind!r} is not one of {KINDS}")
    if item.split not in SPLITS:
        raise AudiolmError(f"{where}: split {item.split!r} is not one of {SPLITS}")
    if Path(item.path).is_absolute() or ".." in Path(item.path).parts:
        raise AudiolmError(f"{where}: path {item.path!r} must be relative to the corpus folder")
    if not (item.duration > 0 and item.sample_rate > 0):
        raise AudiolmError(f"{where}: duration and sample_rate must be positive")


def write_manifest(out_dir: str | Path, items: Iterable[CorpusItem]) -> Path:
    """Write `out_dir/manifest.jsonl` atomically (one line per item, in the given order)."""
    out_dir = Path(out_dir)
    lines = []
    seen: set[str] = set()
    for item in items:
        _validate(item, f"manifest item {item.id!r}")
        if item.id in seen:
            raise AudiolmError(f"manifest item id {item.id!r} appears twice")
        seen.add(item.id)
        lines.append(json.dumps(item.to_json(), ensure_ascii=False, sort_keys=True))
    path = out_dir / MANIFEST_FILE
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def read_manifest(corpus_dir: str | Path, split: str | None = None, kind: str | None = None) -> list[CorpusItem]:
    """Read a corpus manifest, optionally keeping one split and/or one kind."""
    corpus_dir = Path(corpus_dir)
    path = corpus_dir if corpus_dir.is_file() else corpus_dir / MANIFEST_FILE  # a folder or its manifest
    if split is not None and split not in SPLITS:
        raise AudiolmError(f"split {split!r} is not one of {SPLITS}")
    if kind is not None and kind not in KINDS:
        raise AudiolmError(f"kind {kind!r} is not one of {KINDS}")
    if not path.is_file():
        raise AudiolmError(f"{path}: no corpus manifest here (build one with `audiolm corpus build`)")
    names = {f.name for f in fields(CorpusItem)} - {"root"}
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise AudiolmError(f"{where}: not valid JSON ({e.msg})") from None
        if not isinstance(raw, dict):
            raise AudiolmError(f"{where}: expected a JSON object")
        missing = {"id", "path", "kind", "split", "duration", "sample_rate"} - raw.keys()
        if missing:
            raise AudiolmError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
        unknown = raw.keys() - names
        if unknown:
            raise AudiolmError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        item = CorpusItem(**raw, root=path.parent)
        _validate(item, where)
        if (split is None or item.split == split) and (kind is None or item.kind == kind):
            items.append(item)
    return items


def read_phones(path: str | Path) -> tuple[str, list[tuple[float, float, str]]]:
    """Read a phones file: (inventory, [(start_s, end_s, phone), ...])."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        phones = [(float(s), float(e), str(p)) for s, e, p in raw["phones"]]
        return str(raw["inventory"]), phones
    except FileNotFoundError:
        raise AudiolmError(f"{path}: phones file is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise AudiolmError(f"{path}: not a valid phones file ({type(e).__name__}: {e})") from None


def write_phones(path: str | Path, inventory: str, phones: list[tuple[float, float, str]]) -> None:
    """Write a phones file atomically (times rounded to 0.1 ms)."""
    rows = [[round(float(s), 4), round(float(e), 4), str(p)] for s, e, p in phones]
    atomic_write_json(path, {"inventory": inventory, "phones": rows})


def train_valid_audio(corpus_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """Absolute audio paths of the corpus' train and valid splits (speech and music), for the
    audio models (codec, SSL encoder); an empty train split is an error."""
    train = [item.audio_path for item in read_manifest(corpus_dir, split="train")]
    valid = [item.audio_path for item in read_manifest(corpus_dir, split="valid")]
    if not train:
        raise AudiolmError(f"{corpus_dir}: the corpus has no train items")
    return train, valid
