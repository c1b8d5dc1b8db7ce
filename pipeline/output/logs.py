"""Where a run's messages go: the tool's own to the terminal, the runner's chatter to a file.

By default the terminal shows only what the user needs: the tool's progress, its
warnings about the data or the setup, and the summary. Beam, the SDK harness and any
worker processes write their own lines (start-up notes, "discarding unparseable args",
per-bundle warnings); those go to a log file under the run's checkpoint folder, which an
error message names. `-v` sends everything to the terminal instead, at debug level.

Worker processes of the local runner (`multi_processing`) inherit file descriptor 2, so
catching their lines means pointing that descriptor at the log file while the tool keeps
writing to the terminal through a copy of the original. That is done only when stderr
is a real file descriptor (a console run), never under a test runner's captured streams.
"""
from __future__ import annotations

import io
import logging
import os
import sys
import tempfile
import threading
import time

_OWN_LOGGERS = ("alternator_migrate", "pipeline", "transforms")
# The AWS SDK's debug log shows request parameters (item values) and headers: never on.
_NEVER_DEBUG = ("botocore", "aiobotocore", "urllib3")


class _OwnRecords(logging.Filter):
    """The tool's own records; warnings and errors from elsewhere only with -v."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in _OWN_LOGGERS


class _UserFormatter(logging.Formatter):
    """`message` for information, `warning: message` for warnings."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


class RunLog:
    """The logging set-up of one CLI invocation (see the module docstring)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self._verbose = False
        self._terminal: logging.Handler | None = None

    def start(self, verbose: bool) -> None:
        """Terminal logging, before anything else runs; the file comes with `to_folder`."""
        self._verbose = verbose
        self.path = None  # a new invocation (tests run many in one process) gets its own file
        root = logging.getLogger()
        for handler in list(root.handlers):
            if _is_plain_console(handler) or getattr(handler, "_alternator_migrate", False):
                root.removeHandler(handler)  # e.g. the one Beam's import-time logging.warning() installed
                handler.close()
        root.setLevel(logging.DEBUG if verbose else logging.INFO)
        self._terminal = logging.StreamHandler(_TerminalStream())
        self._terminal._alternator_migrate = True
        if verbose:
            self._terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        else:
            self._terminal.setFormatter(_UserFormatter())
            self._terminal.addFilter(_OwnRecords())
        root.addHandler(self._terminal)
        for name in _NEVER_DEBUG:
            logging.getLogger(name).setLevel(logging.WARNING)

    def to_folder(self, checkpoint_dir: str, command: str) -> None:
        """Send everything not the tool's own to `<checkpoint_dir>/logs/<command>-<time>.log`
        (a local temporary folder when the checkpoints are on an object store)."""
        if self._verbose or self.path is not None:
            return
        folder = os.path.join(checkpoint_dir, "logs") if "://" not in checkpoint_dir else os.path.join(
            tempfile.gettempdir(), "alternator-migrate-logs")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.path = os.path.join(folder, f"{command}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log")
        handler = logging.FileHandler(self.path, encoding="utf-8")
        handler._alternator_migrate = True
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        _redirect_descriptor_2(self.path)
        threading.excepthook = _log_thread_failure

    def record_failure(self, exc: BaseException) -> str | None:
        """The full traceback of a failed run, for the log file (the terminal gets a summary);
        the line that sends the user there."""
        logging.getLogger("beam_failure").error("the run failed", exc_info=exc)
        return self._see_the_log()

    def record_worker_failure(self, error: str, details: str) -> str | None:
        """A worker's error that reached the launcher as text (a shard's stop note, written
        where the worker ran), with its traceback, for the log file; the line that sends the
        user there."""
        logging.getLogger("worker_failure").error("%s\n%s", error, details.rstrip())
        return self._see_the_log()

    def _see_the_log(self) -> str | None:
        return f"  the full error is in {self.path}" if self.path else None  # None with -v: on the terminal


def _log_thread_failure(args: threading.ExceptHookArgs) -> None:
    """A thread's uncaught exception goes to the log file, not the terminal: on Ctrl-C the
    runner's own threads fail as its worker processes die (`read_grpc_client_inputs`,
    "Worker subprocess exited with return code -2"), and the user is told once, by the CLI."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("thread_failure").error("uncaught in %s", name,
                                              exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def _is_plain_console(handler: logging.Handler) -> bool:
    """A handler like `logging.basicConfig()` installs: straight to the process's stderr/stdout."""
    return type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.stdout, sys.__stderr__,
                                                                        sys.__stdout__)


class _TerminalStream(io.TextIOBase):
    """Writes to whatever `sys.stderr` is now (click's test runner swaps it per invocation)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _redirect_descriptor_2(path: str) -> None:
    """Point fd 2 (inherited by worker processes) at the log file; keep the terminal for us."""
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, io.UnsupportedOperation):
        return  # a captured stream (tests): the logging handlers alone route the records
    sys.stderr.flush()
    terminal = os.dup(2)
    log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stderr = io.TextIOWrapper(os.fdopen(terminal, "wb", buffering=0), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True, write_through=True)


RUN_LOG = RunLog()  # the one of this process: the CLI sets it up, the launchers record failures in it
