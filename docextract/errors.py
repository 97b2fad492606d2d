"""One exception tree and the exit codes of the command line (contract: see README)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from enum import IntEnum
from typing import Iterator


class ExitCode(IntEnum):
    OK = 0
    VALIDATION_FAILED = 1
    USAGE = 2
    INPUT = 3
    MODEL = 4
    INTERRUPTED = 130
    # stdout's reader went away (`| head -1`): what a process killed by SIGPIPE reports.
    BROKEN_PIPE = 141
    # SIGTERM, handled as Ctrl-C is (128 + 15).
    TERMINATED = 143


class DocextractError(Exception):
    """Base of every error the command line reports as `error: ...` (+ `hint: ...`)."""

    exit_code: ExitCode = ExitCode.USAGE
    # The `type` of the error entry when this error becomes a record (batch, several inputs).
    record_type: str = "error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(DocextractError):
    """Bad flags or arguments, unknown schema name, bad page range."""

    exit_code = ExitCode.USAGE
    record_type = "usage"


class InputError(DocextractError):
    """An input document cannot be read (missing, empty, corrupt, encrypted, too large...)."""

    exit_code = ExitCode.INPUT
    record_type = "input"


class OutputError(DocextractError):
    """An output (a file or stdout) cannot be written: disk full, read-only folder..."""

    exit_code = ExitCode.INPUT
    record_type = "output"


class PageRangeError(InputError):
    """--pages names a page the document does not have: a bad page range (exit 2) for one
    document; an `input` error record in a batch."""

    exit_code = ExitCode.USAGE


class ModelError(DocextractError):
    """The model or engine cannot be loaded or fails while running."""

    exit_code = ExitCode.MODEL
    record_type = "model"


class NotAvailableError(UsageError):
    """A command whose feature has not landed yet."""


class Interrupted(DocextractError):
    exit_code = ExitCode.INTERRUPTED
    record_type = "interrupted"


class Terminated(Interrupted):
    """SIGTERM: handled as Ctrl-C, with its own exit code."""

    exit_code = ExitCode.TERMINATED


@contextmanager
def sigterm_as_error() -> Iterator[None]:
    """SIGTERM raises Terminated (exit 143, with an `error:` line) instead of ending the process
    silently; `batch` installs its own handler that first finishes the records in flight."""
    def handle(signum, frame):
        raise Terminated("terminated (SIGTERM)")

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, handle) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
