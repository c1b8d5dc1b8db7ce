"""The `alternator-migrate` command line.

Exit codes: 0 done; 1 the run finished but some items could not be written (see the
dead-letter files); 2 a usage, config, table or connection problem found before
writing. User mistakes print one `error:` line, never a traceback.
"""
from __future__ import annotations

import functools
import logging
import sys

import click

from pipeline import bulk, report, tables
from pipeline.config import ConfigError, RunConfig, load_config

log = logging.getLogger("alternator_migrate")

EXIT_FAILED_WRITES = 1
EXIT_USAGE = 2


def _user_errors(command):
    """Turn the errors a user can fix into one clear line and exit code 2."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ConfigError, tables.TableStepError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
    return wrapper


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Beam and the AWS SDK are chatty at INFO; their warnings still show.
    for name in ("apache_beam", "botocore", "aiobotocore", "alternator", "urllib3"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


config_option = click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
                             help="YAML run config (see configs/local.yaml).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Move DynamoDB tables into ScyllaDB Alternator."""
    _setup_logging(verbose)


def _load(config_path: str) -> RunConfig:
    return load_config(config_path)


@main.command()
@config_option
def plan(config_path: str) -> None:
    """Show what a run would do, without writing anything."""
    _user_errors(_plan)(config_path)


def _plan(config_path: str) -> None:
    config = _load(config_path)
    plans = tables.plan_tables(config, create=False)
    click.echo(f"source: {config.source.describe()}\ntarget: {config.target.describe()}")
    click.echo(report.plan_table(plans))


@main.command("create-tables")
@config_option
def create_tables(config_path: str) -> None:
    """Create the missing target tables (keys, indexes, TTL, tags), and nothing else."""
    _user_errors(_create_tables)(config_path)


def _create_tables(config_path: str) -> None:
    config = _load(config_path)
    plans = tables.plan_tables(config, create=True)
    for plan in plans:
        state = "created" if plan.created else "already existed"
        click.echo(f"{plan.spec.target}: {state} (key {plan.target_key})")


@main.command(context_settings={"ignore_unknown_options": True})
@config_option
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoints.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write a JSON report here.")
@click.option("--no-progress", is_flag=True, help="Do not print live progress.")
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def migrate(config_path: str, resume: bool, report_path: str | None, no_progress: bool,
            beam_args: tuple[str, ...]) -> None:
    """Copy every configured table to the target.

    Extra arguments after `--` are Beam pipeline options, e.g.
    `-- --runner=DataflowRunner --project=my-project`.
    """
    _user_errors(_migrate)(config_path, resume, report_path, no_progress, beam_args)


def _migrate(config_path, resume, report_path, no_progress, beam_args) -> None:
    config = _load(config_path)
    plans = tables.plan_tables(config, create=True)
    for plan in plans:
        log.info("%s -> %s: ~%d items, %d segments", plan.spec.source, plan.spec.target, plan.item_count,
                 plan.segments)
    result = bulk.run_bulk(config, plans, resume=resume, beam_args=beam_args, show_progress=not no_progress)
    click.echo(report.summary_table(result))
    if report_path:
        report.write_report(report_path, result)
        click.echo(f"report written to {report_path}")
    if result.dead_lettered:
        click.echo(f"error: {result.dead_lettered} items could not be written after "
                   f"{config.write.max_attempts} attempts; they are in {result.dead_letter_dir}", err=True)
        sys.exit(EXIT_FAILED_WRITES)


if __name__ == "__main__":
    main()
