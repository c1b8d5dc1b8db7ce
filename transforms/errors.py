"""The errors that end a run, and the one exit code each stands for.

Every command maps its outcome to an `ExitCode`; every error a user can act on is a
`MigrateError` carrying its code and a message that names the problem and the fix.
Workers that cannot raise into the launcher (a shard reader on a remote runner) leave
a stop note holding the same code, so the launcher ends with the same exit code
whichever way the error travelled.
"""
from __future__ import annotations

import enum
import re


class ExitCode(enum.IntEnum):
    """What the process exit status means, for every command."""

    OK = 0
    #: The run finished but is not complete: items dead-lettered, or validation found differences.
    INCOMPLETE = 1
    #: A usage, config, table, endpoint or storage problem, found before anything was written.
    USAGE = 2
    #: Replication found that changes were lost (trimmed, or a new stream): copy the table again.
    CHANGES_LOST = 3
    #: The run stopped on an error after it started (storage, the runner, a worker); the
    #: message says which. Checkpoints are consistent: fix it and run again with --resume.
    FAILED = 4
    #: Interrupted (Ctrl-C); checkpoints are consistent and the same command resumes.
    INTERRUPTED = 130


class MigrateError(Exception):
    """An error the user can act on; `str()` is one line saying what is wrong and the fix."""

    code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, code: ExitCode | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class ChangesLost(MigrateError):
    """The stream no longer holds changes the target has not seen: a new snapshot is needed."""

    code = ExitCode.CHANGES_LOST


class WritesFailed(MigrateError):
    """Writes failed after every retry; they are in the dead-letter folder."""

    code = ExitCode.INCOMPLETE


class TargetRefusedError(MigrateError):
    """The target refuses every write to a table (credentials, permissions, the table gone):
    the run stops rather than send every item to the dead-letter folder."""

    code = ExitCode.FAILED


class StateFileError(MigrateError):
    """A checkpoint, dead-letter, spool or findings file could not be read, written or listed
    while the run went on (exit 4). A bucket found unusable before the run starts is
    `pipeline.checks.buckets.StorageCheckFailed` (exit 2)."""

    code = ExitCode.FAILED


class StreamDisabled(MigrateError):
    """The table's stream no longer records changes."""

    code = ExitCode.USAGE


def service_message(text: str, limit: int = 300) -> str:
    """A service's error message fit for one `error:` line. Something other than DynamoDB or
    Alternator answering (a proxy, a web server at a wrong port) sends an HTML page: its
    words are kept, tags and line breaks dropped, and it is cut at `limit` characters."""
    if "<" not in text or ">" not in text:
        return " ".join(text.split())
    words = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    return words if len(words) <= limit else words[:limit - 3] + "..."
