"""The engine's error tree.

Every expected failure is one of these classes, and the class alone decides what the
caller does: the CLI turns it into one clear line and an exit code, the executor
decides between retrying, failing one operation and stopping the run. Anything else
is a bug and is allowed to show a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of the user contract (PRODUCT.md); never renumber."""

    OK = 0
    FAILED = 1
    USAGE = 2
    PARTIAL = 3
    GUARD = 4
    LOCKED = 5
    CHANGES_PENDING = 6
    """`plan --detailed-exitcode` only: the plan holds changes to review."""
    HELD = 7
    """The safe changes were applied; the risky ones are held for an explicit release."""


class SyncError(Exception):
    """Base of every expected error; carries the exit code the CLI should use."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(SyncError):
    """The configuration (or a mapping file) is wrong: nothing can run until a human fixes it."""

    exit_code = ExitCode.USAGE


class UsageError(SyncError):
    """A command was asked for something that does not exist (a ref with nothing held)."""

    exit_code = ExitCode.USAGE


class SourceError(SyncError):
    """A whole source is unusable (unreadable, empty, wrong columns): fail before any change."""

    exit_code = ExitCode.FAILED


class GuardError(SyncError):
    """A safety guard stopped the run before anything was applied."""

    exit_code = ExitCode.GUARD


class StalePlanError(GuardError):
    """A saved plan no longer matches what it was computed from (or was edited): it
    is refused before anything is applied, like a tripped guard."""


class LockedError(SyncError):
    """Another run holds the lock."""

    exit_code = ExitCode.LOCKED


class StateError(SyncError):
    """The state store is unreachable, not migrated, or unwritable."""

    exit_code = ExitCode.FAILED


class PluvoError(SyncError):
    """Base of errors raised while talking to Pluvo."""

    exit_code = ExitCode.FAILED


class TransientError(PluvoError):
    """Worth retrying with backoff: 5xx, 429, timeouts, dropped connections."""


class FatalError(PluvoError):
    """Retrying cannot help and the run must stop: bad credentials, 3xx, missing scope."""


class StoppedError(FatalError):
    """A stop was asked for (SIGTERM/SIGINT): what had not left is not sent."""


class RecordError(PluvoError):
    """Pluvo refused one operation (a GraphQL error on its alias); the others go on."""

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class ConflictError(RecordError):
    """Pluvo refused a creation because the object already exists (a unique ref,
    email or name); the executor takes an existing group over instead of failing."""
