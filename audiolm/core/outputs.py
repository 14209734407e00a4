"""Outputs claimed when a command starts, published atomically when it ends.

A command that writes files claims every one of them before any work (`OutputSet.claim`):

- the target must not exist (unless `overwrite`), must not be a directory, and its folder must
  exist and take new files — checked by really creating files there, not by `os.access`;
- a claim file `.NAME.audiolm-claim` beside the target is created and locked (`flock`), so a
  second audiolm process writing the same path fails at once with one line naming the holder;
  the lock dies with its process, so a claim left by a killed run is taken over, and the temp
  file that run left behind is removed;
- the writer writes to `claim.temp` (`.NAME.audiolm-PID.SUFFIX`, hidden, same folder);
- `publish()` moves the temp file into place without replacing anything (renameat2
  RENAME_NOREPLACE, else link + unlink): a file that appeared at the target meanwhile is never
  overwritten — the command fails with one line and keeps its result under a visible name
  (`NAME.audiolm-PID.SUFFIX`). With `overwrite` the move replaces the target atomically.

Every failure is an `OutputError` (a user error: one line, exit code 2).

    with OutputSet() as outputs:
        wav = outputs.claim("out.wav", overwrite=False, flag="-o")
        plot = outputs.claim("out.png", flag="--plot")
        ... write wav.temp and plot.temp ...
        outputs.publish()        # all or, on the first failure, an OutputError
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
from pathlib import Path

from audiolm.core.errors import AudiolmError

CLAIM_SUFFIX = ".audiolm-claim"


class OutputError(AudiolmError):
    """An output that cannot be claimed or published (exists, busy, unwritable folder)."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(getattr(error, "strerror", None) or error).split())


class ClaimedOutput:
    """One reserved output path. Write `temp`, then `publish()` (or let OutputSet do it)."""

    def __init__(self, path: Path, overwrite: bool, flag: str):
        self.path = path
        self.overwrite = overwrite
        self.flag = flag
        self.claim_path = path.with_name(f".{path.name}{CLAIM_SUFFIX}")
        self.temp = path.with_name(f".{path.name}.audiolm-{os.getpid()}{path.suffix}")
        self.published = False
        self._fd: int | None = None

    # -- claiming -----------------------------------------------------------------------------
    def acquire(self) -> None:
        where = f"{self.path}"
        if self.path.is_dir():
            raise OutputError(f"{where}: is a directory")
        parent = self.path.parent
        if not parent.exists():
            raise OutputError(f"{where}: folder {parent} does not exist")
        if not parent.is_dir():
            raise OutputError(f"{where}: {parent} is not a folder")
        if os.path.lexists(self.path) and not self.overwrite:
            raise OutputError(f"{where}: already exists; pass --overwrite to replace it")
        for _ in range(5):
            try:
                fd = os.open(self.claim_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise OutputError(f"{where}: cannot create files in {parent} ({_one_line(e)})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_claim(fd).get("pid", "?")
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(f"{where}: another audiolm process (pid {holder}) is writing it") from None
                raise OutputError(f"{where}: cannot lock {self.claim_path} ({_one_line(e)})") from None
            # the file we locked must still be the one at claim_path (a finishing holder unlinks it)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.claim_path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:  # pragma: no cover - needs five lost races in a row
            raise OutputError(f"{where}: the claim keeps changing under us; is another process writing it?")
        self._fd = fd
        stale = _read_claim(fd)
        if stale.get("temp"):
            _remove(self.path.with_name(stale["temp"]))  # left by a killed run of this command
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "temp": self.temp.name}).encode(), 0)
        _remove(self.temp)
        try:  # prove the folder takes the file we will write
            os.close(os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
        except OSError as e:
            self.release()
            raise OutputError(f"{where}: cannot write in {parent} ({_one_line(e)})") from None

    # -- publishing -----------------------------------------------------------------------------
    def publish(self) -> Path:
        """Move `temp` to `path`. May be called again after writing `temp` anew (periodic
        saves): the target is then our own earlier publish and is replaced. Keeps the claim
        until `release()`."""
        try:
            return self._publish()
        except OSError as e:
            raise OutputError(f"{self.path}: cannot publish ({_one_line(e)})") from None

    def _publish(self) -> Path:
        if not self.temp.is_file():
            raise OutputError(f"{self.path}: nothing was written to publish")
        if self.overwrite or self.published:
            if self.path.is_dir():
                raise OutputError(f"{self.path}: is a directory")
            _fsync_file(self.temp)
            os.replace(self.temp, self.path)
        else:
            _fsync_file(self.temp)
            if not _move_no_replace(self.temp, self.path):
                kept = self.path.with_name(f"{self.path.stem}.audiolm-{os.getpid()}{self.path.suffix}")
                try:
                    if not _move_no_replace(self.temp, kept):
                        kept = self.temp
                except OSError:
                    kept = self.temp
                raise OutputError(
                    f"{self.path}: a file appeared there while this command ran; "
                    f"left it untouched, this result is in {kept}"
                )
        _fsync_dir(self.path.parent)
        self.published = True
        return self.path

    def release(self) -> None:
        """Drop the claim; an unpublished temp file is removed."""
        _remove(self.temp)
        if self._fd is not None:
            _remove(self.claim_path)
            os.close(self._fd)
            self._fd = None


class OutputSet:
    """All outputs of one command: claim at start, publish together at the end."""

    def __init__(self) -> None:
        self.outputs: list[ClaimedOutput] = []

    def claim(self, path: str | os.PathLike, overwrite: bool = False, flag: str = "output") -> ClaimedOutput:
        path = Path(path)
        resolved = _resolved(path)
        for other in self.outputs:
            if _resolved(other.path) == resolved:
                raise OutputError(f"{path}: given twice ({other.flag} and {flag}); each output needs its own path")
        output = ClaimedOutput(path, overwrite, flag)
        output.acquire()
        self.outputs.append(output)
        return output

    def publish(self) -> list[Path]:
        return [o.publish() for o in self.outputs if not o.published or o.temp.is_file()]

    def release(self) -> None:
        for output in self.outputs:
            output.release()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path.absolute())


def _read_claim(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        value = json.loads(data.decode()) if data else {}
        if isinstance(value, dict) and isinstance(value.get("temp"), str) and "/" not in value["temp"]:
            return value
        return {"pid": value.get("pid")} if isinstance(value, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _renameat2 = getattr(_libc, "renameat2", None)
except OSError:  # pragma: no cover - no libc to load
    _renameat2 = None


def _move_no_replace(source: Path, target: Path) -> bool:
    """Rename `source` to `target` unless `target` exists (atomically). False if it exists."""
    if _renameat2 is not None:
        result = _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE)
        if result == 0:
            return True
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            return False
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(target))
    try:  # no renameat2 here: a hard link fails if the target exists
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(target):  # no hard links either: check, then rename (a small window)
            return False
        os.rename(source, target)
        return True
    os.unlink(source)
    return True


# -- run directories ------------------------------------------------------------------------------

LOCK_FILE = ".audiolm.lock"


class RunLock:
    """An exclusive lock on a run directory (`RUN/.audiolm.lock`, flock: released when the
    process ends, however it ends). A second `train --out RUN` fails at once with one line.

    Held per process, not per object: a RunLock on a directory this process already locks
    (`audiolm train` holds one, the Trainer inside it takes one too) shares that lock, which is
    released when the last holder releases it (flock itself would refuse a second open file).

    Creates RUN (and parents) if needed; RUN being a file is an OutputError.
    """

    _held: dict[str, list[int]] = {}  # resolved RUN -> [fd, holders] in this process

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._fd: int | None = None
        self._key = ""

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        d = self.directory
        if d.exists() and not d.is_dir():
            raise OutputError(f"{d}: is a file, not a run directory")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{d}: cannot create the run directory ({_one_line(e)})") from None
        key = str(d.resolve())
        held = RunLock._held.get(key)
        if held is not None:
            held[1] += 1
            self._fd, self._key = held[0], key
            return self
        try:
            fd = os.open(d / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OutputError(f"{d}: cannot create the run directory ({_one_line(e)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_claim(fd).get("pid", "?")
            os.close(fd)
            raise OutputError(f"{d}: another audiolm process (pid {holder}) is using this run directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid()}).encode(), 0)
        RunLock._held[key] = [fd, 1]
        self._fd, self._key = fd, key
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        held = RunLock._held.get(self._key)
        if held is not None and held[0] == self._fd:
            held[1] -= 1
            if held[1] == 0:
                del RunLock._held[self._key]
                os.close(self._fd)  # the file stays: unlinking it would race a process waiting on it
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
