"""One exception tree and the exit codes of the command line (contract: see README)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    VALIDATION_FAILED = 1
    USAGE = 2
    INPUT = 3
    MODEL = 4
    INTERRUPTED = 130


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


class ModelError(DocextractError):
    """The model or engine cannot be loaded or fails while running."""

    exit_code = ExitCode.MODEL
    record_type = "model"


class NotAvailableError(UsageError):
    """A command whose feature has not landed yet."""


class Interrupted(DocextractError):
    exit_code = ExitCode.INTERRUPTED
    record_type = "interrupted"
