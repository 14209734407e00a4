"""Where compiled decoding steps are kept between processes, and under which key.

A compiled step (`compiled_step.CachedStep`, an AOTInductor package: a shared library plus the
frozen weights) is built once per machine and loaded from disk by every later process in well
under a second. What it was built from is its key; a step is reused only where every part is
equal, because each part changes the code or the numbers it holds:

    model        the stage's config and a hash of its weights (frozen into the package)
    shapes       batch size, cache length (the window), masked sampling, the matrices' dtype
    sampling     temperature, top-k, top-p (constants in the graph)
    torch        the torch version (the package's ABI and inductor's code generation)
    CPU          torch's CPU capability (AVX2, AVX512, ...): kernels use that vector ISA
    format       this module's FORMAT (bumped when the exported step changes)

The key's SHA-256 names the entry `<root>/<hash>.pt2`; a JSON file beside it holds the key in
clear, checked again before loading, so a file copied from another machine or torch is never
used. Entries are written to a temporary name and renamed, so two processes compiling at once
each leave a whole file. The root is `$AUDIOLM_CACHE/compiled`, else
`$XDG_CACHE_HOME/audiolm/compiled`, else `~/.cache/audiolm/compiled`.

Every new temperature, top-k, batch size or model adds an entry (~20 MB for the shipped
stages), so the folder is kept under `$AUDIOLM_CACHE_MAX_MB` (default 2048): after each store,
the least recently used entries go first (a hit marks its entry used).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from audiolm.core.cpu_features import cpu_capability

CACHE_ENV = "AUDIOLM_CACHE"
MAX_MB_ENV = "AUDIOLM_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
FORMAT = 2  # 2: the sampler's Gumbel noise is clamped finite (sampling.gumbel_from_bits)


def cache_root() -> Path:
    """The folder compiled steps live in (read from the environment on every call)."""
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base) / "compiled"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "audiolm" / "compiled"


@dataclass(frozen=True)
class StepKey:
    """Everything a compiled step depends on (see the module docstring)."""

    model: str  # sha256 of the model's config and weights
    batch_size: int
    cache_len: int
    masked: bool
    dtype: str
    sampling: str  # "temperature=..,top_k=..,top_p=.."
    torch_version: str
    cpu_capability: str
    format: int = FORMAT

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:32]


def model_hash(model: torch.nn.Module, config: object) -> str:
    """sha256 of a model's config (its repr: a dataclass) and every parameter and persistent
    buffer, in state-dict order (~20 ms for 10M float32 weights)."""
    h = hashlib.sha256(repr(config).encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def current_key(
    model_digest: str, batch_size: int, cache_len: int, masked: bool, dtype: torch.dtype, sampling: str
) -> StepKey:
    """The key for this torch and this CPU."""
    return StepKey(
        model=model_digest,
        batch_size=batch_size,
        cache_len=cache_len,
        masked=masked,
        dtype=str(dtype).removeprefix("torch."),
        sampling=sampling,
        torch_version=torch.__version__,
        cpu_capability=cpu_capability(),
    )


def entry_path(key: StepKey, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"{key.digest()}.pt2"


def lookup(key: StepKey, root: Path | None = None) -> Path | None:
    """The cached package for exactly this key, or None (missing, or its recorded key differs)."""
    path = entry_path(key, root)
    meta = path.with_suffix(".json")
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        recorded = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if recorded != asdict(key):
        return None
    try:
        os.utime(path)  # used now: the last to go when the cache is pruned
    except OSError:
        pass
    return path


def max_bytes() -> int:
    """The cache's size limit, from $AUDIOLM_CACHE_MAX_MB (default 2048 MB)."""
    raw = os.environ.get(MAX_MB_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_MB << 20
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = -1.0
    if not megabytes >= 0:
        raise ValueError(f"{MAX_MB_ENV} must be a number of megabytes >= 0, got {raw!r}")
    return int(megabytes * (1 << 20))


def prune(root: Path, keep: Path | None = None, limit: int | None = None) -> list[Path]:
    """Remove the least recently used entries until the folder's entries fit in `limit` bytes
    (default `max_bytes()`); `keep` (the entry just stored) stays whatever its size. Returns
    the removed packages."""
    limit = max_bytes() if limit is None else limit
    entries = []
    for package in root.glob("*.pt2"):
        try:
            stat = package.stat()
        except OSError:
            continue  # removed by another process meanwhile
        entries.append((stat.st_mtime, stat.st_size, package))
    entries.sort(reverse=True)  # newest first
    total, removed = 0, []
    for _, size, package in entries:
        total += size
        if total <= limit or package == keep:
            continue
        for part in (package.with_suffix(".json"), package):  # the key first: a half entry is never used
            part.unlink(missing_ok=True)
        removed.append(package)
    return removed


def store(key: StepKey, build: Callable[[Path], None], root: Path | None = None) -> Path:
    """Run build(temp_path) to write the package, then move it (and its key) into place."""
    path = entry_path(key, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".building-", suffix=".pt2")
    os.close(fd)
    os.unlink(tmp)  # the builder writes the file itself
    try:
        build(Path(tmp))
        meta_tmp = Path(tmp).with_suffix(".json")
        meta_tmp.write_text(json.dumps(asdict(key), sort_keys=True, indent=1))
        os.replace(tmp, path)
        os.replace(meta_tmp, path.with_suffix(".json"))  # last: an entry counts once its key is there
    finally:
        for leftover in (Path(tmp), Path(tmp).with_suffix(".json")):
            leftover.unlink(missing_ok=True)
    prune(path.parent, keep=path)
    return path
