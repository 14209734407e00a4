"""Checkpoint directories: `config.json` + `model.safetensors` (+ trainer state), written atomically.

Layout of a checkpoint directory:

    config.json          {"kind": "codec", "format_version": 1, "config": {...}, ...}
    model.safetensors    the model's state dict
    *.safetensors/.json  optional extras (optimizer state, k-means centroids, trainer state)

Nothing is ever pickled: tensors go through safetensors, everything else through JSON, and
nested states (an optimizer's) are split into the two by `flatten_state`. A directory is
written under a temporary name and renamed into place, each file fsync'd first, so a kill at
any moment leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from audiolm.core.config import config_from_dict, config_to_dict
from audiolm.core.errors import CheckpointError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"


# ---------------------------------------------------------------------------------------------
# atomic file writes


_RENAME_EXCHANGE = 2  # linux/fs.h: swap two paths in one step
_AT_FDCWD = -100


@functools.cache
def _renameat2() -> Any:
    """libc's renameat2, looked up once; None where libc has none (not Linux, old glibc)."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


def _exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2 RENAME_EXCHANGE): there is no moment
    at which either name is missing. False where the kernel, libc or file system cannot."""
    renameat2 = _renameat2()
    return (
        renameat2 is not None and renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0
    )


def previous_copy(directory: Path) -> Path:
    """Where `save_checkpoint` keeps the replaced checkpoint while it swaps in a new one without
    an atomic exchange: a kill between its two renames leaves only this copy."""
    return directory.with_name(f".{directory.name}.old")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_temp_file(path: Path) -> tuple[int, str]:
    """A temp file beside `path` with the permissions a plain `open()` would give it
    (mkstemp's are 0600, which would leave every atomically written file private)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = make_temp_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# ---------------------------------------------------------------------------------------------
# tensors


def tensors_to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """Serialize a flat dict of tensors with safetensors (shared storage is copied apart)."""
    seen: set[tuple[int, object]] = set()
    clean = {}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else (id(t), 0)
        if key in seen:
            t = t.clone()
        seen.add(key)
        clean[name] = t
    return save(clean)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write_bytes(path, tensors_to_bytes(tensors))


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def flatten_state(state: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state (dicts / lists / tensors / scalars) into JSON + named tensors.

    Each tensor is replaced by {"__tensor__": name}; `unflatten_state` reverses it. This is how
    optimizer, scheduler and RNG states are saved without pickle.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[path] = obj
            return {"__tensor__": path}
        if isinstance(obj, dict):
            # JSON keys are strings; remember int keys (optimizer state is keyed by param index)
            out = {"__dict__": [[k, walk(v, f"{path}.{k}")] for k, v in obj.items()]}
            return out
        if isinstance(obj, (list, tuple)):
            items = [walk(v, f"{path}.{i}") for i, v in enumerate(obj)]
            return {"__tuple__": items} if isinstance(obj, tuple) else items
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise TypeError(f"cannot serialize {type(obj).__name__} at {path or '<root>'}")

    return walk(state, prefix or "s"), tensors


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            if "__tensor__" in obj:
                return tensors[obj["__tensor__"]]
            if "__dict__" in obj:
                return {k: walk(v) for k, v in obj["__dict__"]}
            if "__tuple__" in obj:
                return tuple(walk(v) for v in obj["__tuple__"])
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return walk(skeleton)


# ---------------------------------------------------------------------------------------------
# checkpoint directories


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns: the parsed config and the model tensors."""

    path: Path
    kind: str
    config: Any  # the dataclass when `config_cls` was given, else the raw dict
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]  # every other key of config.json


def save_checkpoint(
    directory: str | Path,
    kind: str,
    config: Any,
    state_dict: dict[str, torch.Tensor],
    *,
    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
    extra_json: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (replacing an older one at the same path).

    extra_tensors: {"optimizer.safetensors": {...}} — more safetensors files.
    extra_json:    {"trainer_state.json": {...}}   — more JSON files.
    meta:          extra top-level keys for config.json (e.g. training step).
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    config_dict = config_to_dict(config) if dataclasses.is_dataclass(config) else dict(config)
    header = {"kind": kind, "format_version": FORMAT_VERSION, "config": config_dict}
    header.update(meta or {})
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        atomic_write_json(tmp / CONFIG_FILE, header)
        save_tensors(tmp / MODEL_FILE, state_dict)
        for name, tensors in (extra_tensors or {}).items():
            save_tensors(tmp / name, tensors)
        for name, obj in (extra_json or {}).items():
            atomic_write_json(tmp / name, obj)
        if directory.exists() and _exchange_paths(tmp, directory):
            shutil.rmtree(tmp)  # now the old checkpoint
        elif directory.exists():
            # two renames: a kill between them leaves only the old copy, which loading finds
            # (resolve_checkpoint_dir) and a locked run restores (remove_stale_temps)
            old = previous_copy(directory)
            if old.exists():
                shutil.rmtree(old)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old)
        else:
            os.replace(tmp, directory)
        _fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _or_previous_copy(directory: Path) -> Path:
    """`directory`, or where a save killed between its two renames left its only copy."""
    if not directory.exists() and (previous_copy(directory) / CONFIG_FILE).is_file():
        return previous_copy(directory)
    return directory


def read_checkpoint_header(directory: str | Path) -> dict[str, Any]:
    """Parse config.json of a checkpoint directory, with clear errors for what is wrong."""
    directory = _or_previous_copy(Path(directory))
    if not directory.exists():
        raise CheckpointError(f"{directory}: checkpoint directory not found")
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: expected a checkpoint directory, found a file")
    cfg = directory / CONFIG_FILE
    if not cfg.is_file():
        raise CheckpointError(f"{directory}: not a checkpoint (no {CONFIG_FILE})")
    try:
        header = json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg}: not valid JSON ({e})") from None
    if not isinstance(header, dict) or "kind" not in header or "config" not in header:
        raise CheckpointError(f"{cfg}: missing 'kind' or 'config'; not an audiolm checkpoint")
    return header


def load_checkpoint(
    directory: str | Path,
    kind: str | tuple[str, ...],
    config_cls: type | None = None,
    *,
    device: str | torch.device = "cpu",
) -> Checkpoint:
    """Read and check a checkpoint directory: kind, format version, then the tensors."""
    directory = _or_previous_copy(Path(directory))
    header = read_checkpoint_header(directory)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if header["kind"] not in kinds:
        raise CheckpointError(
            f"{directory}: checkpoint kind is '{header['kind']}', expected {' or '.join(repr(k) for k in kinds)}"
        )
    version = header.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(
            f"{directory}: checkpoint format_version is {json.dumps(version)}; this audiolm reads the integer "
            f"{FORMAT_VERSION}"
        )
    config = header["config"]
    if config_cls is not None:
        where = f"{directory / CONFIG_FILE}: config"
        missing = _missing_keys(config, getattr(config_cls, "SAVED_KEYS", ()))
        if missing:
            raise CheckpointError(
                f"{where} misses {', '.join(missing)} (a saved checkpoint states every field; "
                "a default could build a different model)"
            )
        config = config_from_dict(config_cls, config, where=where)
        check = getattr(config, "check_saved", None)
        if callable(check):
            try:
                check()
            except ValueError as e:
                raise CheckpointError(f"{where}: {e}") from None
    state = load_tensors(directory / MODEL_FILE, device=device)
    meta = {k: v for k, v in header.items() if k not in ("kind", "format_version", "config")}
    return Checkpoint(path=directory, kind=header["kind"], config=config, state_dict=state, meta=meta)


def _missing_keys(config: Any, keys: tuple[str, ...]) -> list[str]:
    """Dotted `keys` ("model.causal") absent from the JSON object `config`."""
    missing = []
    for key in keys:
        node = config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(key)
                break
            node = node[part]
    return missing


def load_state_dict_checked(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """`module.load_state_dict` that names every missing, unexpected or mis-shaped tensor."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mis_shaped = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected {_short(unexpected)}")
    if mis_shaped:
        problems.append(f"shape mismatch {_short(mis_shaped)}")
    if problems:
        raise CheckpointError(f"{where}: weights do not fit the model: {'; '.join(problems)}")
    module.load_state_dict(state_dict, strict=True)


def _short(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """Accept a checkpoint directory or a training run directory (its exported `model/`,
    else its latest step checkpoint) and return the checkpoint directory itself."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "model" / CONFIG_FILE).is_file():
        return path / "model"
    latest = path / "checkpoints" / "LATEST"
    if latest.is_file():
        step_dir = path / "checkpoints" / latest.read_text().strip()
        if (step_dir / CONFIG_FILE).is_file():
            return step_dir
    if not path.exists():
        recovered = _or_previous_copy(path)  # a save killed between its two renames
        if recovered != path:
            return recovered
        raise CheckpointError(f"{path}: checkpoint directory not found")
    raise CheckpointError(f"{path}: neither a checkpoint (no {CONFIG_FILE}) nor a training run with one")


def checkpoint_problem(directory: Path, kind: str | tuple[str, ...] | None = None) -> str | None:
    """Why `directory` is not an intact checkpoint (None if it is): its header, every JSON
    file and every safetensors file must parse (a run killed mid-write, a torn file)."""
    try:
        header = read_checkpoint_header(directory)
        kinds = (kind,) if isinstance(kind, str) else kind
        if kinds and header["kind"] not in kinds:
            return f"kind {header['kind']!r}"
        if not (directory / MODEL_FILE).is_file():
            return f"no {MODEL_FILE}"
        for path in sorted(directory.iterdir()):
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as f:
                    for key in f.keys():
                        f.get_slice(key)  # header and offsets; reading every byte is load's job
                if path.stat().st_size < _safetensors_end(path):
                    return f"{path.name} is truncated"
    except (CheckpointError, OSError, ValueError, UnicodeDecodeError, RuntimeError) as e:
        return " ".join(str(e).split())[:200]
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for torn files
        return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
    return None


def _safetensors_end(path: Path) -> int:
    """Bytes a safetensors file must have: 8 + header length + the largest data offset."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return 8 + n + max(ends, default=0)


def newest_intact_checkpoint(
    checkpoints: Path,
    kind: str | tuple[str, ...] | None = None,
    warn=None,
    required: tuple[str, ...] = ("trainer_state.json",),
) -> Path | None:
    """The step checkpoint to resume from: the one LATEST names if intact, else the newest
    intact `step-*` directory (a kill mid-save, a torn file); None if there is none.
    `required`: files a complete step checkpoint has (save_checkpoint writes the JSON extras
    last, so the trainer state's presence means the tensors before it were written).
    `warn(message)` is told about every checkpoint skipped."""
    candidates = sorted((p for p in checkpoints.glob("step-*") if p.is_dir()), reverse=True)
    latest = checkpoints / "LATEST"
    if latest.is_file():
        try:
            named = checkpoints / latest.read_text().strip()
        except (OSError, UnicodeDecodeError):
            named = None
        if named is not None and named.is_dir() and named.parent == checkpoints:
            candidates = [named] + [p for p in candidates if p != named]
    for path in candidates:
        absent = [name for name in required if not (path / name).is_file()]
        problem = f"no {', '.join(absent)}" if absent else checkpoint_problem(path, kind)
        if problem is None:
            return path
        if warn is not None:
            warn(f"{path}: skipped, not an intact checkpoint ({problem})")
    return None


def remove_stale_temps(directory: Path) -> list[Path]:
    """Remove what killed writers leave in `directory` (not recursive): hidden `.NAME.*.tmp`
    files and directories and `.NAME.old` directories (one whose NAME is missing is renamed
    back to NAME: the only copy of a checkpoint whose save was killed). Only call it while holding the
    directory's lock (core/outputs.RunLock): a live writer's temp files look the same."""
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        name = path.name
        if name.startswith(".") and name.endswith(".old") and path.is_dir():
            original = path.with_name(name[1 : -len(".old")])
            if not original.exists() and (path / CONFIG_FILE).is_file():  # a save killed between its renames
                os.replace(path, original)
                continue
        if name.startswith(".") and (name.endswith(".tmp") or name.endswith(".old")):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def copy_checkpoint(source: str | Path, target: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Copy a checkpoint directory (or a run's exported model) to `target`, keeping only what
    loading needs: config.json, model.safetensors and extra non-training files. With `dtype`
    (e.g. torch.float16, to ship weights at half the size), floating-point tensors are cast;
    loaders copy them into the model's own fp32 parameters."""
    source = resolve_checkpoint_dir(source)
    header = read_checkpoint_header(source)
    state = load_tensors(source / MODEL_FILE)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    training_only = ("optimizer-", "part-", "rng.", "trainer_state.")
    extra_tensors, extra_json = {}, {}
    for path in sorted(source.iterdir()):
        if path.name in (CONFIG_FILE, MODEL_FILE) or path.name.startswith(training_only):
            continue
        if path.suffix == ".safetensors":
            extra_tensors[path.name] = load_tensors(path)
        elif path.suffix == ".json":
            extra_json[path.name] = json.loads(path.read_text())
    meta = {k: v for k, v in header.items() if k not in ("kind", "format_version", "config")}
    return save_checkpoint(
        target, header["kind"], header["config"], state, extra_tensors=extra_tensors, extra_json=extra_json, meta=meta
    )
