"""Small file-system helpers: output paths checked before any work, atomic writes (temp file +
rename, the umask's mode), one writer per output (an advisory lock), write failures in the
user's terms, printable file names.

Output rules (README "Reliability"):
- `check_output` runs before any work: a folder, an input, or an existing file that docextract
  did not write (unless --force) is refused (exit 2); a missing folder, a read-only or full disk
  are `cannot write NAME: REASON` (exit 3).
- A symbolic link given as the output is followed on purpose: the file it points to is written
  (atomically, in that file's folder) and the link stays a link.
- A character device or FIFO (/dev/null, /dev/stdout) is written directly: never replaced,
  locked or read back.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .errors import OutputError, UsageError

# A temp file's name is "." + at most this much of the target's name + ".XXXXXXXX.tmp", so that a
# target name near the file system's limit (255 bytes) still gets a temp name that fits.
_TEMP_NAME_CHARS = 64
_REASONS = {
    errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
    errno.EPERM: "permission denied", errno.ENAMETOOLONG: "file name too long",
    errno.EISDIR: "it is a folder", errno.ENOTDIR: "a part of the path is not a folder",
    errno.ELOOP: "a symbolic link loop", errno.EPIPE: "the reading end of the pipe was closed",
    errno.EFBIG: "file too large", errno.EIO: "input/output error (a failing disk?)",
    errno.ENXIO: "no reader on the other end",
}
_HINTS = {
    errno.ENOSPC: "free some disk space, or choose another --out",
    errno.EDQUOT: "free some space, or choose another --out",
    errno.EROFS: "choose an --out in a folder you can write to",
    errno.EACCES: "choose an --out in a folder you can write to",
    errno.EPERM: "choose an --out in a folder you can write to",
    errno.ENAMETOOLONG: "choose a shorter --out file name",
}


def umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_error(path: str | os.PathLike, exc: OSError) -> OutputError:
    """`cannot write NAME: REASON` (exit 3) for an OSError met while writing an output."""
    name = display_name(path)
    if exc.errno == errno.ENOENT:
        folder = display_name(Path(os.fspath(path)).parent)
        return OutputError(f"cannot write {name}: the folder {folder} does not exist",
                           hint="create the folder first, or choose another --out")
    reason = _REASONS.get(exc.errno) or (exc.strerror or type(exc).__name__).lower()
    return OutputError(f"cannot write {name}: {reason}", hint=_HINTS.get(exc.errno))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one. The
    file gets the umask's mode (as `>` in a shell would); a symbolic link is followed (the file
    it points to is replaced, the link kept); a device or FIFO is written directly. A failure
    raises OutputError naming `path` and the reason."""
    given = path
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise output_error(given, exc) from None
        return
    path = _resolve_link(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:_TEMP_NAME_CHARS]}.", suffix=".tmp",
                                   dir=path.parent)
    except OSError as exc:
        raise output_error(given, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise output_error(given, exc) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _resolve_link(path: str | os.PathLike) -> Path:
    """A symbolic link followed to the file it names (that file is written, the link kept)."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)


@dataclass
class OutputTarget:
    """An output path once checked: `real` is the file written (a symbolic link followed);
    `special` is a character device or FIFO, written directly (no lock, no resume, no rename)."""

    given: str
    real: Path
    exists: bool
    special: bool = False


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                 force: bool = False,
                 ours: Callable[[Path], bool] | None = None) -> OutputTarget:
    """Check an output file before any work. Refused with UsageError (exit 2): a folder, one of
    `inputs`, a socket or block device, an existing file that `ours` does not recognise as
    docextract's own output (unless `force`). OutputError (exit 3): the folder is missing or
    cannot be written, the name is too long, a symbolic link loop."""
    given = os.fspath(path)
    name = display_name(given)
    try:
        st = os.stat(given)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise output_error(given, exc) from None
    # A device or FIFO is written as named (/dev/stdout is a link to a pipe that has no folder).
    real = Path(given) if st is not None and not stat.S_ISREG(st.st_mode) else _resolve_link(given)
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"--out {name} is a folder",
                             hint=f"--out takes a file name, e.g. {name.rstrip('/')}/results.jsonl")
        if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            return OutputTarget(given, real, True, special=True)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"--out {name} is not a regular file",
                             hint="choose a file name for --out")
        for inp in inputs:
            try:
                other = os.stat(inp)
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                raise UsageError(f"--out {name} is also an input; writing it would replace the "
                                 "document", hint="choose another --out file")
        if not force and ours is not None and not ours(real):
            raise UsageError(f"--out {name} exists and was not written by docextract; refusing "
                             "to replace it", hint="choose another --out, or add --force to "
                             "replace that file")
    _probe_folder(given, real.parent)
    return OutputTarget(given, real, st is not None)


def _probe_folder(given: str, folder: Path) -> None:
    """Create and remove a temp file where the output will be written: a missing folder, a
    read-only file system or missing permissions show here, before any work."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".docextract-probe.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise output_error(given, exc) from None
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass


def is_record(obj) -> bool:
    """A docextract record (run or batch): a JSON object with source, valid and errors."""
    return (isinstance(obj, dict) and {"source", "valid", "errors"} <= obj.keys()
            and isinstance(obj["errors"], list))


def written_by_docextract(path: Path) -> bool:
    """Whether an existing file is docextract's own output: empty, one record (run, pretty or
    not), or JSON Lines of records whose last line may be cut short by a crash (it then starts as
    every record does, with `{"source":`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if not head.strip():
                return not (head + f.read(1 << 16)).strip()
            if not head.lstrip().startswith(b"{"):
                return False
            data = head + f.read()
    except OSError:
        return False
    try:
        return is_record(json.loads(data))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
        pass
    lines = data.split(b"\n")
    last = lines.pop()
    if last and not last.startswith(b'{"source":'):
        return False
    for line in lines:
        try:
            if not is_record(json.loads(line)):
                return False
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
            return False
    return True


class OutputLock:
    """One writer per output file: an advisory lock (fcntl.flock) on a hidden file next to it,
    `.NAME.lock`, holding the writer's pid. A second writer is refused (exit 2) with that pid."""

    def __init__(self, target: Path, shown: str | None = None):
        self.path = target.parent / f".{target.name[:200]}.lock"
        self.shown = shown or display_name(target)
        self.fd: int | None = None

    def __enter__(self) -> "OutputLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
            except OSError as exc:
                raise output_error(self.shown, exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise UsageError(f"{self.shown} is being written by another docextract process "
                                 f"(pid {holder})", hint="wait for it to finish (or stop it), or "
                                 "choose another --out") from None
            # The previous holder removes the lock file when done: make sure ours is the one
            # at the path, else take the new one.
            try:
                same = os.path.samestat(os.stat(self.path), os.fstat(fd))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def display_name(path: str | os.PathLike | bytes) -> str:
    """A printable, single-line rendering of a file name, whatever bytes it holds."""
    if isinstance(path, bytes):
        text = path.decode("utf-8", errors="backslashreplace")
    else:
        text = os.fspath(path)
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="backslashreplace")
        # Undecodable bytes arrive as lone surrogates (surrogateescape): show them as \xNN.
        text = text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
