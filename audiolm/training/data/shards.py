"""Token shards: the tokenized corpus the LM stages train from (tokenize once, train many times).

Layout of a token directory:

    OUT/tokenize.json                    the tokenizers' description (written first; a resumed
                                         run must match it)
    OUT/train/shard-00000.semantic.npy   int16/int32 [N_s]      semantic tokens, utterances concatenated
    OUT/train/shard-00000.acoustic.npy   int16/int32 [N_a, Q]   acoustic codes, frame-major
    OUT/train/shard-00000.json           {"utterances": [{"id", "kind", "speaker", "duration",
                                          "semantic": [offset, length], "acoustic": [offset, length]}]}
    OUT/valid/...
    OUT/index.json                       tokenize.json's fields + {"splits": {split: {"shards",
                                         "n_utterances", "n_semantic", "n_frames"}}}; written last

`tokenize.json` / `index.json` fields: "codec": {"dir", "sample_rate", "frame_rate" (75),
"codebook_size", "n_q" (levels stored), "kbps"}, "semantic": {"dir", "sample_rate",
"frame_rate", "vocab_size"}. Acoustic codes are stored frame-major ([T, Q]) so a window of
frames is one contiguous slice; `Utterance.codes` gives the codec's [Q, T] view. Each shard's
`.json` is written after its arrays, atomically, and marks the shard complete: a killed run
resumes from the first shard without one. Arrays are opened with `mmap_mode="r"`, so a
dataset far larger than memory costs only what is read.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiolm.core.checkpoint import atomic_write_bytes, atomic_write_json
from audiolm.core.errors import AudiolmError

FORMAT_VERSION = 1
INDEX_FILE = "index.json"
SETTINGS_FILE = "tokenize.json"


@dataclass
class Utterance:
    """One tokenized utterance. semantic [Ts] at the semantic frame rate; acoustic [Ta, Q] at 75 Hz."""

    id: str
    semantic: np.ndarray
    acoustic: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def codes(self) -> np.ndarray:
        """Acoustic codes as the codec returns them: [Q, Ta] (a transposed view)."""
        return self.acoustic.T


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.int16) if vocab_size <= np.iinfo(np.int16).max + 1 else np.dtype(np.int32)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


class ShardWriter:
    """Writes one token directory. `settings` is the tokenize.json content (see module doc)."""

    def __init__(self, out_dir: str | Path, settings: dict[str, Any]) -> None:
        self.out_dir = Path(out_dir)
        self.settings = {"format_version": FORMAT_VERSION, **settings}
        self.semantic_dtype = token_dtype(int(settings["semantic"]["vocab_size"]))
        self.acoustic_dtype = token_dtype(int(settings["codec"]["codebook_size"]))
        self.n_q = int(settings["codec"]["n_q"])

    def start(self) -> None:
        """Create OUT (or check that an earlier, interrupted run used the same settings)."""
        settings_path = self.out_dir / SETTINGS_FILE
        if settings_path.is_file():
            old = json.loads(settings_path.read_text())
            if old != json.loads(json.dumps(self.settings)):
                raise AudiolmError(
                    f"{self.out_dir}: holds tokens made with other settings ({SETTINGS_FILE}); "
                    "choose another OUT or pass --overwrite"
                )
            return
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise AudiolmError(f"{self.out_dir}: exists and is not a token directory; pass --overwrite to replace it")
        atomic_write_json(settings_path, self.settings)

    def shard_done(self, split: str, index: int, ids: list[str]) -> bool:
        """True when the shard exists complete and holds exactly `ids` (in order)."""
        path = self.out_dir / split / f"{shard_name(index)}.json"
        if not path.is_file():
            return False
        try:
            done = [u["id"] for u in json.loads(path.read_text())["utterances"]]
        except (json.JSONDecodeError, KeyError, TypeError):
            return False
        return done == ids

    def write_shard(self, split: str, index: int, utterances: list[Utterance]) -> Path:
        """Write one shard: the two arrays, then its JSON (the completion mark)."""
        semantic_parts, acoustic_parts, entries = [], [], []
        s_offset = a_offset = 0
        for u in utterances:
            semantic = np.asarray(u.semantic).reshape(-1)
            acoustic = np.asarray(u.acoustic)
            if acoustic.ndim != 2 or acoustic.shape[1] != self.n_q:
                raise ValueError(f"{u.id}: acoustic codes must be [T, {self.n_q}], got {acoustic.shape}")
            semantic_parts.append(semantic.astype(self.semantic_dtype))
            acoustic_parts.append(acoustic.astype(self.acoustic_dtype))
            entries.append(
                {
                    **u.meta,
                    "id": u.id,
                    "semantic": [s_offset, int(semantic.shape[0])],
                    "acoustic": [a_offset, int(acoustic.shape[0])],
                }
            )
            s_offset += semantic.shape[0]
            a_offset += acoustic.shape[0]
        semantic_all = np.concatenate(semantic_parts) if semantic_parts else np.zeros(0, self.semantic_dtype)
        acoustic_all = (
            np.concatenate(acoustic_parts) if acoustic_parts else np.zeros((0, self.n_q), self.acoustic_dtype)
        )
        base = self.out_dir / split / shard_name(index)
        atomic_write_bytes(base.with_name(base.name + ".semantic.npy"), _npy_bytes(semantic_all))
        atomic_write_bytes(base.with_name(base.name + ".acoustic.npy"), _npy_bytes(acoustic_all))
        atomic_write_json(base.with_name(base.name + ".json"), {"utterances": entries})
        return base

    def finish(self, shards_per_split: dict[str, int]) -> Path:
        """Write index.json (the token directory is complete from then on)."""
        splits = {}
        for split, count in shards_per_split.items():
            names = [f"{split}/{shard_name(i)}" for i in range(count)]
            n_utt = n_sem = n_frames = 0
            for name in names:
                for u in json.loads((self.out_dir / f"{name}.json").read_text())["utterances"]:
                    n_utt += 1
                    n_sem += u["semantic"][1]
                    n_frames += u["acoustic"][1]
            splits[split] = {"shards": names, "n_utterances": n_utt, "n_semantic": n_sem, "n_frames": n_frames}
        index = {**self.settings, "splits": splits}
        atomic_write_json(self.out_dir / INDEX_FILE, index)
        return self.out_dir / INDEX_FILE


def read_token_index(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / INDEX_FILE
    if not path.is_file():
        if (directory / SETTINGS_FILE).is_file():
            raise AudiolmError(
                f"{directory}: tokenization did not finish (no {INDEX_FILE}); rerun `audiolm tokenize` to resume"
            )
        raise AudiolmError(f"{directory}: not a token directory (no {INDEX_FILE}); make one with `audiolm tokenize`")
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AudiolmError(f"{path}: not valid JSON ({e})") from None
    if index.get("format_version") != FORMAT_VERSION:
        raise AudiolmError(f"{path}: token format version {index.get('format_version')}, expected {FORMAT_VERSION}")
    return index


class TokenShards:
    """Read-only, memory-mapped access to one split: `len()`, `[i] -> Utterance`.

    `kind` ("speech", "music", ...) keeps only the utterances whose manifest kind it is (the
    kind `audiolm tokenize` copies from the manifest into each utterance's entry), so one token
    directory serves a mixed model and per-kind models alike. Arrays are mapped lazily (and
    dropped when pickled), so DataLoader workers each map their own.
    """

    def __init__(self, directory: str | Path, split: str = "train", kind: str | None = None) -> None:
        self.directory = Path(directory)
        self.info = read_token_index(self.directory)
        if split not in self.info["splits"]:
            raise AudiolmError(f"{self.directory}: no split {split!r}; it has {', '.join(self.info['splits'])}")
        self.split = split
        self.kind = kind
        self.shards: list[str] = list(self.info["splits"][split]["shards"])
        self.entries: list[tuple[int, dict[str, Any]]] = []
        kinds: set[str] = set()
        for shard_index, name in enumerate(self.shards):
            for entry in json.loads((self.directory / f"{name}.json").read_text())["utterances"]:
                kinds.add(str(entry.get("kind")))
                if kind is None or entry.get("kind") == kind:
                    self.entries.append((shard_index, entry))
        if kind is not None and not self.entries:
            have = ", ".join(sorted(kinds)) or "none"
            raise AudiolmError(f"{self.directory}: no {split} utterance of kind {kind!r} (kinds here: {have})")
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state

    def _open(self, shard_index: int) -> tuple[np.ndarray, np.ndarray]:
        if shard_index not in self._arrays:
            base = self.directory / self.shards[shard_index]
            arrays = []
            for suffix in (".semantic.npy", ".acoustic.npy"):
                path = base.with_name(base.name + suffix)
                try:
                    arrays.append(np.load(path, mmap_mode="r", allow_pickle=False))
                except ValueError:  # a zero-length array cannot be mapped
                    arrays.append(np.load(path, allow_pickle=False))
                except FileNotFoundError:
                    raise AudiolmError(f"{path}: token shard file missing") from None
            self._arrays[shard_index] = (arrays[0], arrays[1])
        return self._arrays[shard_index]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Utterance:
        shard_index, entry = self.entries[i]
        semantic, acoustic = self._open(shard_index)
        s0, sn = entry["semantic"]
        a0, an = entry["acoustic"]
        meta = {k: v for k, v in entry.items() if k not in ("id", "semantic", "acoustic")}
        return Utterance(entry["id"], semantic[s0 : s0 + sn], acoustic[a0 : a0 + an], meta)

    def lengths(self) -> list[int]:
        """Acoustic frames per utterance (no array is read)."""
        return [entry["acoustic"][1] for _, entry in self.entries]

    def semantic_lengths(self) -> list[int]:
        return [entry["semantic"][1] for _, entry in self.entries]
