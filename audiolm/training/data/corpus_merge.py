"""`audiolm corpus merge OUT CORPUS...`: one corpus that reads several, without copying audio.

    OUT/<name>  -> a symlink to each source corpus folder (its folder name, made unique)
    OUT/manifest.jsonl   every source's items, path <name>/<its path>, id <name>/<its id>
    OUT/merge.json       the sources (absolute paths) and their item counts

Every command that takes a corpus (`train codec`, `tokenize`, `eval ...`) then takes OUT, e.g. the
synthetic corpus plus one built from other engines (`corpus build --engines mbrola`) or your own
recordings (`corpus import`). The manifests are copied as they are now: a source built further
later needs the merge run again (into a new folder).

Refused, before anything is written: a held-out evaluation set (`corpus build --heldout`: it
must never be trained on), and a speech voice that is in one source's valid split and another's
train split (valid measures unseen voices). Music is split by piece, not instrument, so an
instrument may be in both.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from audiolm.core.checkpoint import atomic_write_json
from audiolm.core.corpus import CorpusItem, read_manifest, write_manifest
from audiolm.core.errors import AudiolmError

MERGE_FILE = "merge.json"


def _is_heldout(source: Path) -> bool:
    build = source / "corpus.json"  # written by `corpus build` (corpus_build.BUILD_FILE)
    if not build.is_file():
        return False
    try:
        return bool(json.loads(build.read_text()).get("heldout", False))
    except json.JSONDecodeError:
        raise AudiolmError(f"{build}: not valid JSON") from None


def _link_names(sources: list[Path]) -> list[str]:
    """Each source's folder name, with -2, -3 ... where two share one."""
    names: list[str] = []
    for source in sources:
        base = source.name or "corpus"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def check_voice_splits(items: list[CorpusItem], sources: dict[str, str]) -> None:
    """AudiolmError when a speech voice is valid in one place and train in another.
    `sources`: item id -> the source it came from (for the message)."""
    where: dict[tuple[str, str], set[str]] = defaultdict(set)  # (voice, split) -> sources
    for item in items:
        if item.kind == "speech" and item.speaker:
            where[(item.speaker, item.split)].add(sources[item.id])
    for (voice, split), found in sorted(where.items()):
        if split == "valid" and (voice, "train") in where:
            raise AudiolmError(
                f"voice {voice!r} is in the valid split of {', '.join(sorted(found))} and the train split of "
                f"{', '.join(sorted(where[(voice, 'train')]))}: a merged corpus' valid voices must be unseen in train"
            )


def merge_corpora(out_dir: str | Path, corpora: list[str | Path]) -> list[CorpusItem]:
    """Write the merged corpus in `out_dir` (new or empty); returns its items."""
    out_dir = Path(out_dir)
    sources = [Path(c).resolve() for c in corpora]
    if len(sources) < 2:
        raise AudiolmError("corpus merge needs at least two corpora")
    if len(set(sources)) < len(sources):
        raise AudiolmError("corpus merge: a corpus is named twice")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise AudiolmError(f"{out_dir} exists and is not empty: choose a new folder (nothing was changed)")
    if out_dir.resolve() in sources or any(s in out_dir.resolve().parents for s in sources):
        raise AudiolmError(f"{out_dir} is inside a source corpus: choose a folder outside them")
    names = _link_names(sources)
    items: list[CorpusItem] = []
    origin: dict[str, str] = {}
    counts: dict[str, int] = {}
    for source, name in zip(sources, names):
        if _is_heldout(source):
            raise AudiolmError(f"{source} is a held-out evaluation set (corpus build --heldout): never train on it")
        own = read_manifest(source)
        if not own:
            raise AudiolmError(f"{source}: its manifest lists no item")
        counts[str(source)] = len(own)
        for item in own:
            merged = replace(
                item,
                id=f"{name}/{item.id}",
                path=f"{name}/{item.path}",
                phones=None if item.phones is None else f"{name}/{item.phones}",
                root=out_dir,
            )
            origin[merged.id] = str(source)
            items.append(merged)
    check_voice_splits(items, origin)
    out_dir.mkdir(parents=True, exist_ok=True)
    for source, name in zip(sources, names):
        os.symlink(source, out_dir / name, target_is_directory=True)
    write_manifest(out_dir, items)
    atomic_write_json(out_dir / MERGE_FILE, {"sources": [{"path": p, "items": n} for p, n in counts.items()]})
    return items
