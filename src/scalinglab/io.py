"""Files that survive a crash, and one writer per directory.

Every stage writes its outputs through this module:

* ``atomic_write`` (and ``_bytes`` / ``_text`` / ``_json``): the data goes to a hidden temporary
  file in the same directory, which is flushed and fsynced, renamed over the target with
  ``os.replace`` and the directory fsynced, so after a crash (or a power cut) the target holds
  either its old or its new content, never a torn one. JSON is strict: non-finite floats are
  written as ``null`` (``allow_nan=False``), so every reader can parse it.
* ``replace_dir`` / ``remove_dir``: a directory (a sharded checkpoint, an index) is renamed in
  before the old one is deleted, and renamed aside before it is deleted, so a kill never leaves
  a partly deleted directory under a name that readers trust.
* ``JsonlWriter`` / ``read_jsonl``: append-only JSON lines (``metrics.jsonl``); reading
  tolerates only a torn *last* line (a kill mid-append) and names ``file:line`` otherwise.
* ``locked(directory)``: an exclusive ``fcntl.flock`` on ``DIR/.lock`` with the holder's PID
  inside. The kernel drops the lock when the holder exits, even on SIGKILL, so there is no
  stale lock to clean up; a second writer gets a one-line ``LockedError`` naming the PID.
  Locks are per open file, so one process cannot take the same lock twice either.

An ``OSError`` while writing (disk full, permissions) becomes a one-line ``StorageError``
naming the file; the CLI prints it with the stage and exits 2.

``fault_point`` is a test-only hook for the fault-injection suite (``tests/reliability``):
with ``SCALINGLAB_FAULT=<site>:<n>`` the process SIGKILLs itself at the n-th call of that
site; unset (always, outside the suite), it returns at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from scalinglab.errors import ScalinglabError

LOCK_NAME = ".lock"


class StorageError(ScalinglabError):
    """A file that could not be written (disk full, permissions); the message names it."""


class LockedError(ScalinglabError):
    """Another process is writing the same directory; the message names its PID."""


class JsonlError(ScalinglabError, ValueError):
    """A JSON-lines file with a malformed line; the message names ``file:line``."""


# ---------------------------------------------------------------------- fault injection

_FAULT = os.environ.get("SCALINGLAB_FAULT") or None
_FAULT_CALLS: dict[str, int] = {}


def fault_point(site: str, path: str | Path = "", torn: Callable[[], Any] | None = None) -> None:
    """Test-only: SIGKILL this process at the n-th call of ``site`` when
    ``SCALINGLAB_FAULT=<site>:<n>`` (``torn()`` first leaves what a kill halfway through the
    current write would); ``SCALINGLAB_FAULT=log:<file>`` appends ``pid site path`` per call
    to ``<file>`` instead, so the suite can choose kill points that exist. Sites: ``write`` (a
    temporary file half written), ``rename`` (a file or directory complete, not yet renamed
    in), ``renamed`` (renamed, directory not yet fsynced), ``line`` (a streamed file mid-way),
    ``append`` (a JSONL line half appended)."""
    if _FAULT is None:  # the only cost outside the suite
        return
    kind, _, arg = _FAULT.partition(":")
    if kind == "log":
        with open(arg, "a") as f:
            f.write(f"{os.getpid()} {site} {path}\n")
        return
    _FAULT_CALLS[site] = n = _FAULT_CALLS.get(site, 0) + 1
    if kind == site and n == int(arg):
        if torn is not None:
            torn()
        os.kill(os.getpid(), signal.SIGKILL)


def _cut_in_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _describe(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


# ---------------------------------------------------------------------- atomic writes


def fsync_dir(directory: str | Path) -> None:
    """Make a rename (or creation) inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """The hidden temporary name ``path`` is written under (unique per process)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_stale_temps(directory: str | Path) -> None:
    """Delete the temporary files (``temp_path``) that killed writers left in ``directory``.
    Only safe while holding its lock: a live writer's temporary would go too."""
    for tmp in Path(directory).glob(".*.tmp-*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file beside it, which is
    fsynced and renamed into place, then the directory is fsynced.

    Works for any writer that takes a file name (``torch.save``, safetensors, tokenizers).
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        fault_point("write", path, lambda: _cut_in_half(tmp))
        _fsync_file(tmp)  # the data is on disk before the name points at it
        fault_point("rename", path)
        os.replace(tmp, path)
        fault_point("renamed", path)
        fsync_dir(path.parent)  # the rename itself is on disk
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write: {_describe(e)}") from e
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def strict_json(value: Any) -> Any:
    """``value`` with NaN / +-Infinity replaced by None (strict JSON has no such tokens)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, without importing numpy
        return strict_json(value.tolist())
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars and 0-d tensors, without importing either
        return strict_json(value.item())
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(data: Any, indent: int | None = None, **kwargs: Any) -> str:
    """Strict JSON text of ``data``: non-finite floats become null, numpy scalars numbers, and
    anything non-finite that slips through fails (``allow_nan=False``) instead of writing a
    file that ``jq``, browsers and other languages reject."""
    return json.dumps(strict_json(data), indent=indent, allow_nan=False, default=_json_default,
                      **kwargs)


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as strict JSON (non-finite floats become null), atomically."""
    return atomic_write_text(path, dumps(data, indent) + "\n")


def replace_dir(tmp: str | Path, final: str | Path) -> Path:
    """Put the finished directory ``tmp`` in place of ``final`` (a directory cannot be renamed
    over a non-empty one): its files are fsynced, the old ``final`` is moved aside, ``tmp`` is
    renamed in, and only then is the old one deleted. A kill at any point leaves ``final``
    either absent, old and whole, or new and whole, never partly deleted."""
    tmp, final = Path(tmp), Path(final)
    trash = final.with_name(f".{final.name}.old-{os.getpid()}")
    try:
        for f in tmp.iterdir():
            if f.is_file():
                _fsync_file(f)
        fsync_dir(tmp)
        if final.exists():
            os.replace(final, trash)
        fault_point("rename", final)
        os.replace(tmp, final)
        fault_point("renamed", final)
        fsync_dir(final.parent)
    except OSError as e:
        raise StorageError(f"{final}: cannot write: {_describe(e)}") from e
    shutil.rmtree(trash, ignore_errors=True)
    return final


def remove_dir(path: str | Path) -> None:
    """Delete a directory without ever leaving it half-deleted under its own name: it is
    renamed to a hidden name first (one atomic step), then deleted."""
    path = Path(path)
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.old-{os.getpid()}")
    os.replace(path, trash)
    fsync_dir(path.parent)
    shutil.rmtree(trash, ignore_errors=True)


class AtomicLineWriter:
    """Streams lines into a hidden temporary file; ``commit`` fsyncs and renames it into place
    (for outputs too large to build in memory: corpus parts and documents)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        self.lines = 0
        try:
            self.f = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in commit
        except OSError as e:
            raise StorageError(f"{self.path}: cannot write: {_describe(e)}") from e

    def write(self, line: str) -> None:
        try:
            self.f.write(line + "\n")
        except OSError as e:
            raise StorageError(f"{self.path}: cannot write: {_describe(e)}") from e
        self.lines += 1
        fault_point("line", self.path)

    def commit(self) -> None:
        def finish(tmp: Path) -> None:
            self.f.close()  # flushes; atomic_write fsyncs and renames

        atomic_write(self.path, finish)


# ---------------------------------------------------------------------- JSON lines


class JsonlWriter:
    """Appends one strict-JSON object per line to ``path`` and flushes each line, so a kill
    loses at most the line being written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close
        except OSError as e:
            raise StorageError(f"{self.path}: cannot write: {_describe(e)}") from e

    def write(self, row: dict) -> None:
        text = dumps(row) + "\n"
        fault_point("append", self.path, lambda: self._write_flushed(text[:len(text) // 2]))
        try:
            self._fh.write(text)
            self._fh.flush()
        except OSError as e:
            raise StorageError(f"{self.path}: cannot write: {_describe(e)}") from e

    def _write_flushed(self, text: str) -> None:
        self._fh.write(text)
        self._fh.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # nothing useful to do about a failing close
            self._fh.close()


def read_json_or_none(path: str | Path) -> dict[str, Any] | None:
    """An earlier result file, if it is readable JSON holding an object; else None (a stage
    that resumes from it simply redoes what it cannot read)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_json_object(path: str | Path, what: str = "file",
                     error: type[ScalinglabError] = ScalinglabError) -> dict[str, Any]:
    """The JSON object in ``path``; one-line ``error`` for unreadable, torn or non-object
    files."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise error(f"{path}:{e.lineno}: {what} is not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: {what} is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


def require_fields(data: dict[str, Any], fields: dict[str, type | tuple[type, ...]],
                   where: str, error: type[ScalinglabError] = ScalinglabError) -> dict[str, Any]:
    """``data``, checked to hold each of ``fields`` with a value of its type."""
    for name, tp in fields.items():
        if name not in data:
            raise error(f"{where}: missing field {name!r}")
        value = data[name]
        types = tp if isinstance(tp, tuple) else (tp,)
        # bool is an int to isinstance; `true` where a count belongs is still a wrong type
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise error(f"{where}: field {name!r} has the wrong type "
                        f"({type(value).__name__} {value!r:.40})")
    return data


def read_jsonl(path: str | Path) -> list[dict]:
    """Every row of a JSON-lines file (``[]`` when it does not exist).

    A malformed last line without its newline is a torn append from a kill and is dropped;
    any other bad line is a ``JsonlError`` naming ``file:line``.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines):  # no newline after it: torn by a kill
                break
            raise JsonlError(f"{path}:{number}: not valid JSON ({e.msg})") from None
    return rows


# ---------------------------------------------------------------------- locks


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        pid = ""
    return pid or "unknown"


def _open_locked(lock_path: Path, directory: Path, what: str) -> int:
    """Open and flock ``lock_path``; retry when the file was unlinked (released) under us."""
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(f"{lock_path}: cannot create lock: {_describe(e)}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StorageError(f"{lock_path}: cannot lock: {_describe(e)}") from e
            raise LockedError(
                f"{directory}: {what} is being written by process {_holder(lock_path)} "
                f"(lock {lock_path}); wait for it to finish or stop it") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder released (and unlinked) the file between open and flock


@contextlib.contextmanager
def locked(directory: str | Path, what: str = "directory") -> Iterator[Path]:
    """Hold an exclusive lock on ``directory`` (created if missing) while the block runs.

    Raises ``LockedError`` at once, naming the holder's PID, when another process holds it.
    The lock file is removed on release (while still locked; a process that opened it just
    before sees that it was unlinked and opens the new one). After a kill it stays behind,
    unlocked, with the dead PID: the next writer simply takes it.
    """
    directory = Path(directory)
    lock_path = directory / LOCK_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"{directory}: cannot create: {_describe(e)}") from e
    fd = _open_locked(lock_path, directory, what)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock_path
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()
        os.close(fd)  # closing the descriptor releases the flock
