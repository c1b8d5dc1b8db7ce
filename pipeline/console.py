"""The `alternator-migrate` console script: quiet logging first, then the CLI.

Importing Beam logs a warning through the module-level `logging.warning()` when optional
Google Cloud libraries are absent, and that call installs a root handler on stderr as a
side effect. Giving the root logger a handler before anything imports Beam keeps such
lines off the terminal; `pipeline.logs` then decides where every record goes.
"""
import logging


def main() -> None:
    logging.getLogger().addHandler(logging.NullHandler())
    from pipeline.cli import main as cli  # imports Beam

    cli()
