"""The `alternator-migrate` console script: quiet logging and Ctrl-C first, then the CLI.

Importing Beam logs a warning through the module-level `logging.warning()` when optional
Google Cloud libraries are absent, and that call installs a root handler on stderr as a
side effect. Giving the root logger a handler before anything imports Beam keeps such
lines off the terminal; `pipeline.output.logs` then decides where every record goes.

Ctrl-C before a command has taken it over (while Python imports the tool, or click reads
the command line) ends with one line and exit 130, not a traceback from the middle of an
import; each command then handles it itself (`pipeline.cli._run`).
"""
import logging
import signal
import sys

from transforms.errors import ExitCode


class _Interrupted(BaseException):
    """Ctrl-C before a command started (not a KeyboardInterrupt, which click would turn into
    its own message)."""


def _interrupted(_signum, _frame):
    raise _Interrupted


def main() -> None:
    logging.getLogger().addHandler(logging.NullHandler())
    signal.signal(signal.SIGINT, _interrupted)
    try:
        from pipeline.cli import main as cli  # noqa: PLC0415 - after the handlers above

        cli()
    except _Interrupted:
        sys.stderr.write("interrupted: nothing was started\n")
        sys.exit(ExitCode.INTERRUPTED)
