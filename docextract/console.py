"""The only writer to stdout and stderr.

stdout carries data only: one JSON document (pretty on a terminal, compact when piped) or JSON
Lines. Logs, warnings, errors, hints and progress bars go to stderr. Nothing here ever prints
document content in a log line; callers pass file names, page numbers, codes and timings.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any, Iterator

from .errors import DocextractError


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        # Exact: a Decimal never passes through float (pydantic's JSON mode does the same).
        return str(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any, *, pretty: bool = False) -> str:
    """JSON text of `obj`: UTF-8 kept as is (names in Devanagari stay readable)."""
    if pretty:
        return json.dumps(obj, ensure_ascii=False, indent=2, default=_json_default)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_json_default)


@dataclass
class Console:
    """Where everything the program says goes. Streams default to sys.stdout/sys.stderr, looked up
    at each write so that test runners that swap them are honoured."""

    quiet: bool = False
    verbose: bool = False
    progress_enabled: bool = True
    stdout: IO[str] | None = None
    stderr: IO[str] | None = None
    color: bool | None = None
    _progress_depth: int = field(default=0, repr=False)

    @property
    def out(self) -> IO[str]:
        return self.stdout if self.stdout is not None else sys.stdout

    @property
    def err(self) -> IO[str]:
        return self.stderr if self.stderr is not None else sys.stderr

    @staticmethod
    def _isatty(stream: IO[str]) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def use_color(self) -> bool:
        if self.color is not None:
            return self.color
        if "NO_COLOR" in os.environ:
            return False
        return self._isatty(self.err)

    # ---- data (stdout) ----
    def emit(self, obj: Any) -> None:
        """One JSON document: pretty on a terminal, compact when piped."""
        self.out.write(dumps(obj, pretty=self._isatty(self.out)) + "\n")
        self.out.flush()

    def emit_line(self, obj: Any) -> None:
        """One JSON Lines record, flushed at once."""
        self.out.write(dumps(obj) + "\n")
        self.out.flush()

    def drop_stdout(self) -> None:
        """stdout's reader went away (`| head -1`): later writes, and the flush at exit, go
        nowhere instead of raising BrokenPipeError again."""
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.out.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def emit_text(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    # ---- messages (stderr) ----
    def _say(self, prefix: str, style: str, message: str) -> None:
        if self.use_color:
            prefix = f"\x1b[{style}m{prefix}\x1b[0m"
        self.err.write(f"{prefix}{message}\n")
        self.err.flush()

    def info(self, message: str) -> None:
        if not self.quiet:
            self._say("", "0", message)

    def debug(self, message: str) -> None:
        if self.verbose:
            self._say("debug: ", "2", message)

    def warn(self, message: str) -> None:
        if not self.quiet:
            self._say("warning: ", "33", message)

    def error(self, message: str, hint: str | None = None) -> None:
        # Errors are printed even with -q: a failing command must say why.
        self._say("error: ", "1;31", _one_line(message))
        if hint:
            self._say("hint: ", "36", _one_line(hint))

    def report(self, exc: BaseException) -> None:
        """`error:` (+ `hint:`) for an exception; the traceback only with -v."""
        if self.verbose:
            self.err.write("".join(traceback.format_exception(exc)))
        if isinstance(exc, DocextractError):
            self.error(exc.message, exc.hint)
        else:
            self.error(f"internal error: {type(exc).__name__}: {exc}",
                       None if self.verbose else "run again with -v to see the traceback")

    def capture_library_output(self) -> None:
        """Python warnings and log records of the libraries become debug lines (-v), so that
        stderr carries only our own one-line messages."""
        import logging
        import warnings

        def show(message, category, filename, lineno, file=None, line=None):
            self.debug(f"{category.__name__}: {message}")

        warnings.showwarning = show
        console = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                console.debug(f"{record.name}: {record.getMessage()}")

        root = logging.getLogger()
        root.handlers = [_Handler()]
        root.setLevel(logging.DEBUG if self.verbose else logging.WARNING)

    # ---- progress (stderr) ----
    @contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator["Progress"]:
        show = self.progress_enabled and not self.quiet and self._progress_depth == 0
        bar = Progress(self, description, total, show, live=self._isatty(self.err))
        self._progress_depth += 1
        try:
            yield bar
        finally:
            self._progress_depth -= 1
            bar.close()


class Progress:
    """Progress on stderr, shown only once the work has taken over a second: a rich bar on a
    terminal, else (a log file, a pipe) a plain status line every few seconds."""

    DELAY_S = 1.0
    LINE_EVERY_S = 2.0

    def __init__(self, console: Console, description: str, total: int | None, show: bool,
                 live: bool = True):
        self.console = console
        self.live = live
        self._last_line = 0.0
        self._last_text = ""
        self.description = description
        self.total = total
        self.show = show
        self.completed = 0
        self.fields: dict[str, str] = {}
        self._start = time.monotonic()
        self._rich = None
        self._task = None

    def _plain_line(self, final: bool = False) -> None:
        now = time.monotonic()
        if now - self._start < self.DELAY_S or (not final and now - self._last_line < self.LINE_EVERY_S):
            return
        of = f"/{self.total}" if self.total is not None else ""
        extra = f" {self._extra()}" if self.fields else ""
        line = f"{self.description}: {self.completed}{of}{extra}\n"
        if final and line == self._last_text:
            return  # the last line already said it: `documents: 1/1` once
        self._last_line, self._last_text = now, line
        self.console.err.write(line)
        self.console.err.flush()

    def _ensure(self) -> None:
        if self._rich is not None or not self.show:
            return
        if not self.live:
            self._plain_line()
            return
        if time.monotonic() - self._start < self.DELAY_S:
            return
        from rich.console import Console as RichConsole
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        rc = RichConsole(file=self.console.err, no_color=not self.console.use_color)
        self._rich = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=rc, transient=True)
        self._rich.start()
        self._task = self._rich.add_task(self.description, total=self.total,
                                         completed=self.completed, extra=self._extra())

    def _extra(self) -> str:
        return " ".join(f"{k} {v}" for k, v in self.fields.items())

    def update(self, advance: int = 0, **fields: Any) -> None:
        self.completed += advance
        self.fields.update({k: str(v) for k, v in fields.items()})
        self._ensure()
        if self._rich is not None:
            self._rich.update(self._task, completed=self.completed, extra=self._extra())

    def set(self, completed: int, total: int | None = None) -> None:
        """Absolute progress (e.g. bytes downloaded of a total that may still grow)."""
        if total is not None:
            self.total = total
            if self._rich is not None:
                self._rich.update(self._task, total=total)
        self.update(completed - self.completed)

    def close(self) -> None:
        if self.show and not self.live and self._last_line:
            self._plain_line(final=True)
        if self._rich is not None:
            self._rich.stop()
            self._rich = None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
