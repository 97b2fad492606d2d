"""Small file-system helpers: atomic writes (temp file + rename), printable file names."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


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
