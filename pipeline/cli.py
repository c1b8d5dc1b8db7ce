"""The `alternator-migrate` command line.

Every command ends with one `ExitCode` (see `transforms.errors`; the README lists them).
User mistakes print one `error:` line, never a traceback; `_run` is the one place that
turns errors into messages and exit codes.

Each command imports what it runs when it runs (Beam, Arrow, the AWS SDK: about 2 s of
CPU together), so `--help`, a usage error or a config error answer at once.
"""
from __future__ import annotations

import _thread
import json
import logging
import os
import re
import signal
import sys
import threading
from typing import Callable

import click
from botocore.exceptions import BotoCoreError

from pipeline.checks.config import ConfigError, RunConfig, load_config, select_tables
from pipeline.output.logs import RUN_LOG
from transforms.errors import ExitCode, MigrateError

log = logging.getLogger("alternator_migrate")


# What Beam appends to an error raised in one of its steps: the step's name, not for the user.
_BEAM_STEP = re.compile(r" \[while running '[^']*'\]$")


def _run(command: Callable[[], ExitCode | None], *, interrupted: str) -> None:
    """Run a command body and exit with its code. Errors a user can fix become one line;
    a failed run becomes a short readable block (the traceback goes to the log file); Ctrl-C
    becomes exit 130 with `interrupted`, the line that says how to go on."""
    stopped = threading.Event()

    def on_sigint(_signum, _frame):  # Beam may wrap the KeyboardInterrupt: remember it was us
        stopped.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        code = command() or ExitCode.OK
    except MigrateError as exc:
        click.echo(f"error: {_BEAM_STEP.sub('', str(exc))}", err=True)
        code = exc.code
    except click.UsageError as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        code = ExitCode.USAGE
    except BotoCoreError as exc:  # e.g. a profile that does not exist, no credentials at all
        click.echo(f"error: {exc}; check source.credentials / target.credentials", err=True)
        code = ExitCode.USAGE
    except (KeyboardInterrupt, click.exceptions.Abort):
        code = ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the run failed: say so readably, keep the details
        if stopped.is_set():
            code = ExitCode.INTERRUPTED
        else:
            see_the_log = RUN_LOG.record_failure(exc)
            click.echo(f"error: {_failure_summary(exc)}", err=True)
            if see_the_log:
                click.echo(see_the_log, err=True)
            code = ExitCode.FAILED
    finally:
        signal.signal(signal.SIGINT, previous)
    if code == ExitCode.INTERRUPTED:
        click.echo(f"interrupted: {interrupted}", err=True)
    sys.exit(int(code))


def _failure_summary(exc: BaseException) -> str:
    """One or two lines out of a runner's failure: the step that failed and its root error."""
    text = str(exc)
    errors = [line.strip() for line in text.splitlines()
              if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b: ", line.strip())]
    root = errors[-1] if errors else f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    steps = re.findall(r"\[while running '([^']+)'\]", text)
    return f"the run failed{f' in step {steps[-1]!r}' if steps else ''}: {root}"


def _read_config(config_path: str) -> RunConfig:
    """The config, with only the tables of `--tables` where it is given."""
    config = load_config(config_path)
    chosen = click.get_current_context().meta.get(_TABLES_KEY)
    return config if chosen is None else select_tables(config, chosen)


def _load(config_path: str, command: str, beam_args=()) -> RunConfig:
    """The run's config, its Beam options checked; from here on the runner's own log lines go
    to the run's log file."""
    from pipeline.checks import launch  # noqa: PLC0415 - see the module docstring

    config = _read_config(config_path)
    launch.check_options(config, beam_args)
    RUN_LOG.to_folder(config.checkpoint_dir, command)
    for side, spec in (("source", config.source), ("target", config.target)):
        if not spec.tls.verify:
            log.warning("%s.insecure_skip_verify is on: the TLS certificate of %s is not checked, so anyone on "
                        "the network path can read and change the data", side, spec.describe())
    return config


def _check_report_path(path: str | None) -> None:
    """Fail before the run, not after it, when the report cannot be written."""
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ConfigError(f"--report {path}: the folder {os.path.dirname(os.path.abspath(path))} does not exist")


_TABLES_KEY = "alternator_migrate.tables"


def _remember_tables(ctx: click.Context, _param, value: str | None) -> None:
    ctx.meta[_TABLES_KEY] = value


def config_option(command):
    """--config, and --tables to run the command on some of its tables (applied by `_load`,
    so every command that takes a config takes it, with no parameter of its own)."""
    command = click.option("--tables", metavar="A,B", expose_value=False, callback=_remember_tables,
                           help="Only these tables of the config (source names, comma-separated).")(command)
    return click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
                        help="YAML run config (see configs/local.yaml).")(command)


def _verbose_after_the_command(_ctx, _param, verbose: bool) -> None:
    if verbose:
        RUN_LOG.start(True)


class _Commands(click.Group):
    """Click's usage errors as one `error:` line (exit 2); no arguments at all as the help
    (exit 2, no `error:`); Ctrl-C as exit 130, not 'Aborted!'. Every command also takes
    `-v` after its name."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.append(click.Option(["-v", "--verbose"], is_flag=True, expose_value=False,
                                       callback=_verbose_after_the_command,
                                       help="As `alternator-migrate -v`: everything on the terminal."))
        super().add_command(cmd, name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help(), err=True)
            sys.exit(ExitCode.USAGE)
        except click.exceptions.NoSuchOption as exc:
            click.echo(f"error: {_unknown_option_message(exc)}", err=True)
            sys.exit(ExitCode.USAGE)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()} (see `alternator-migrate --help`)", err=True)
            sys.exit(ExitCode.USAGE if exc.exit_code == 2 else exc.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(ExitCode.INTERRUPTED)


def _unknown_option_message(exc: click.exceptions.NoSuchOption) -> str:
    from pipeline.checks import launch  # noqa: PLC0415 - Beam's option names, on this error only

    name = exc.option_name.split("=", 1)[0]
    if name.lstrip("-") in launch.known_option_names():
        return (f"{name} is a Beam option: put Beam options after `--`, e.g. "
                f"`alternator-migrate migrate --config F -- {exc.option_name}`")
    hint = f"; did you mean {exc.possibilities[0]}?" if exc.possibilities else ""
    return f"no such option {name}{hint}"


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True,
              help="Show everything on the terminal, Beam's and the workers' logs too, at debug level.")
@click.version_option(package_name="alternator-migrate", prog_name="alternator-migrate")
def main(verbose: bool) -> None:
    """Move DynamoDB tables into ScyllaDB Alternator."""
    # Dead letters, findings, reports and logs hold customer data: files 0600, folders 0700.
    os.umask(0o077)
    RUN_LOG.start(verbose)


@main.command()
@config_option
@click.option("--sample-seconds", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Sample each table's stream this long to estimate the change spool of migrate --streams "
                   "(0: do not sample).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the same as one JSON document on stdout.")
def plan(config_path: str, sample_seconds: float, output: str) -> None:
    """Show what a run would do, without writing anything: the preflight. It refuses (exit 2,
    with the same message) whatever `migrate` would refuse before it starts."""
    _run(lambda: _plan(config_path, sample_seconds, output), interrupted="nothing was changed")


def _plan(config_path: str, sample_seconds: float, output: str) -> None:
    config = _load(config_path, "plan")
    from pipeline.commands import bulk, capture  # noqa: PLC0415
    from pipeline.checks import dynamodb_exports, launch, rollback, tables  # noqa: PLC0415
    from pipeline.output import report  # noqa: PLC0415

    config = launch.prepare(config, (), pipelines=False)
    for line in bulk.check_earlier_runs(config, resume=False, restart=False, streams=False):
        click.echo(line, err=True)
    found = dynamodb_exports.read_exports(config)
    planned = tables.plan_tables(config, create=False, measure_latency=True, check_target=True)
    plans = dynamodb_exports.with_exports(planned, found)
    samples = capture.sample_streams(config, [plan.spec.source for plan in plans],
                                     sample_seconds) if sample_seconds else None
    warnings = rollback.stream_warnings(config)
    if output == "json":
        click.echo(json.dumps(report.plan_json(plans, config, samples, warnings), indent=2))
        return
    click.echo(f"source: {config.source.describe()}\ntarget: {config.target.describe()}")
    click.echo(report.plan_table(plans, config, samples, sample_seconds))
    for warning in warnings:
        click.echo(f"warning: {warning}")


@main.command("create-tables")
@config_option
def create_tables(config_path: str) -> None:
    """Create the missing target tables (keys, indexes, TTL, tags), and nothing else."""
    _run(lambda: _create_tables(config_path), interrupted="run create-tables again to finish")


def _create_tables(config_path: str) -> None:
    config = _load(config_path, "create-tables")
    from pipeline.checks import tables  # noqa: PLC0415

    plans = tables.plan_tables(config, create=True)
    for plan in plans:
        state = "created" if plan.created else "already existed"
        click.echo(f"{plan.spec.target}: {state} (key {plan.target_key})")


def _replication_options(command):
    """--follow / --until-caught-up / --max-lag, shared by migrate --streams and replicate."""
    max_lag = click.option("--max-lag", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
                           help="With --until-caught-up: the lag (seconds) under which a table counts as caught up.")
    until_caught_up = click.option("--until-caught-up", is_flag=True,
                                   help="Stop (exit 0) once every table's lag stays under --max-lag: time to cut over.")
    command = until_caught_up(max_lag(command))
    return click.option("--follow", is_flag=True, help="Keep replicating until interrupted (Ctrl-C).")(command)


_METRICS_FILE_KEY = "alternator_migrate.metrics_file"


def _remember_metrics_file(ctx: click.Context, _param, value: str | None) -> None:
    ctx.meta[_METRICS_FILE_KEY] = value


def _metrics_options(command):
    """--metrics-port / --metrics-host / --metrics-file, shared by migrate, replicate and validate
    (--metrics-file is read by `_serving`)."""
    command = click.option("--metrics-file", type=click.Path(dir_okay=False), expose_value=False,
                           callback=_remember_metrics_file,
                           help="When the command ends, write its final metrics here (node-exporter textfile "
                                "collector format: name it *.prom in the collector's folder).")(command)
    command = click.option("--metrics-host", default="127.0.0.1", show_default=True,
                           help="With --metrics-port: the address to serve on.")(command)
    return click.option("--metrics-port", type=click.IntRange(1, 65535),
                        help="Serve Prometheus metrics at http://HOST:PORT/metrics and the run's health at "
                             "/healthz while it runs.")(command)


def _given(option: str) -> bool:
    """Whether the command line gave `--option` (not its default)."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(option.lstrip("-").replace("-", "_")) if ctx else None
    return source is click.core.ParameterSource.COMMANDLINE


def _goes_with(option: str, needed: str, present: bool) -> None:
    """An option that means nothing without another is a usage error, not silently ignored."""
    if _given(option) and not present:
        raise click.UsageError(f"{option} goes with {needed}")


def _serving(host: str, port: int | None, body: Callable[..., ExitCode | None]) -> ExitCode | None:
    """Run a command body with its metrics served (the port is bound first: in use = exit 2) and
    written to --metrics-file at its end."""
    _goes_with("--metrics-host", "--metrics-port", port is not None)
    textfile = click.get_current_context().meta.get(_METRICS_FILE_KEY)
    if port is None and textfile is None:
        return body(None)
    from pipeline.output.metrics_server import serve_metrics  # noqa: PLC0415

    with serve_metrics(host, port, textfile=textfile) as metrics:
        code = body(metrics)
        if metrics is not None and code not in (None, ExitCode.OK, ExitCode.INCOMPLETE):
            metrics.fail(f"the run ended with exit code {int(code)}")
        return code


dry_run_option = click.option(
    "--dry-run", is_flag=True,
    help="Build the Dataflow job on this machine (nothing submitted, nothing read or written) and describe it: "
         "its steps, worker settings and where state goes.")


def _run_replication(config, plans, streams, follow, until_caught_up, max_lag, beam_args, metrics,
                     running_capture=None) -> ExitCode:
    """Replication as the flags say; `running_capture`: the capture beside a snapshot, whose
    spool is applied first (replication then goes on from where it got to)."""
    from pipeline.commands import capture, replicate  # noqa: PLC0415

    def echo(line: str) -> None:
        click.echo(line, err=True)

    def apply_spool(settings) -> None:
        capture.drain(settings, running_capture.streams, running_capture, echo)

    return replicate.replicate(config, plans, streams, follow=follow, until_caught_up=until_caught_up,
                               max_lag=max_lag, beam_args=beam_args, echo=echo, metrics=metrics,
                               apply_first=apply_spool if running_capture is not None else None)


@main.command()
@config_option
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoints.")
@click.option("--restart", is_flag=True, help="Copy again from scratch, dropping an unfinished run's checkpoints.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write a JSON report here.")
@click.option("--no-progress", is_flag=True, help="Do not print live progress.")
@click.option("--streams", is_flag=True, help="Then replicate changes from DynamoDB Streams (--follow by default).")
@click.option("--enable-streams", is_flag=True, help="With --streams: turn a table's stream on (NEW_AND_OLD_IMAGES).")
@_replication_options
@_metrics_options
@dry_run_option
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def migrate(config_path: str, resume: bool, restart: bool, report_path: str | None, no_progress: bool,
            streams: bool, enable_streams: bool, follow: bool, until_caught_up: bool, max_lag: float,
            metrics_port: int | None, metrics_host: str, dry_run: bool, beam_args: tuple[str, ...]) -> None:
    """Copy every configured table to the target (and with --streams, keep it in sync).

    Extra arguments after `--` are Beam pipeline options, e.g.
    `-- --runner=DataflowRunner --project=my-project`.
    """
    _run(lambda: _serving(metrics_host, metrics_port, lambda metrics: _migrate(
            config_path, resume, restart, report_path, no_progress, streams, enable_streams, follow,
            until_caught_up, max_lag, dry_run, beam_args, metrics)),
         interrupted=f"the checkpoints are consistent; continue with `alternator-migrate migrate --config "
                     f"{config_path}{' --streams' if streams else ''} --resume` (pages in flight are copied again)")


def _migrate(config_path, resume, restart, report_path, no_progress, streams, enable_streams, follow,
             until_caught_up, max_lag, dry_run, beam_args, metrics=None) -> ExitCode:
    if (enable_streams or follow or until_caught_up) and not streams:
        raise click.UsageError("--enable-streams, --follow and --until-caught-up go with --streams")
    if resume and restart:
        raise click.UsageError("choose one of --resume and --restart")
    if follow and until_caught_up:
        raise click.UsageError("choose one of --follow and --until-caught-up")
    _goes_with("--max-lag", "--until-caught-up", until_caught_up)
    _check_report_path(report_path)
    config = _load(config_path, "migrate", beam_args)
    from pipeline.checks import dynamodb_exports, launch, source_streams, tables  # noqa: PLC0415 - see the docstring
    from pipeline.commands import bulk, capture  # noqa: PLC0415
    from pipeline.output import report  # noqa: PLC0415

    if dry_run:  # the bulk copy's job, then replication's
        from pipeline.commands import replicate  # noqa: PLC0415

        jobs = [bulk.describe_dry_run(config, beam_args)]
        if streams:
            jobs.append(replicate.describe_dry_run(config, beam_args, follow=follow or not until_caught_up))
        click.echo("\n\n".join(jobs))
        return ExitCode.OK
    if streams:
        source_streams.check_runner(config, beam_args)
    config = launch.prepare(config, beam_args, follow_streams=streams and not until_caught_up)
    for line in bulk.check_earlier_runs(config, resume=resume, restart=restart, streams=streams):
        click.echo(line, err=True)
    found = dynamodb_exports.read_exports(config, beam_args)
    if streams:
        names = [spec.source for spec in config.tables]
        dynamodb_exports.check_streams_follow(found, capture.covered_since(
            config, names, source_streams.retention_hours(config, names), restart=restart))
    plans = dynamodb_exports.with_exports(tables.plan_tables(config, create=True), found)
    running_capture = None
    if streams:  # changes are captured from before the snapshot's first read, or changes during it are lost
        table_streams = source_streams.ensure_streams(config, [plan.spec.source for plan in plans],
                                                      enable=enable_streams)
        source_streams.bind_checkpoints(config, table_streams, fresh=not resume)
        running_capture = capture.start(table_streams, source_streams.replication_settings(config, plans),
                                        restart=restart)
        # a failed capture stops the snapshot: it is in vain
        running_capture.on_failure = lambda _exc: _thread.interrupt_main(signal.SIGINT)
    for plan in plans:
        log.info("%s -> %s: ~%d items, %d segments", plan.spec.source, plan.spec.target, plan.item_count,
                 plan.segments)
    try:
        result = bulk.run_bulk(config, plans, resume=resume, beam_args=beam_args, show_progress=not no_progress,
                               run_metrics=metrics,
                               annotate=running_capture and (
                                   lambda table: capture.spool_line(running_capture.statuses(), table)))
    except BaseException:
        if running_capture is not None:
            running_capture.on_failure = None
            # raises the capture's own failure (lost changes) in place of the interruption it caused
            running_capture.stop()
        raise
    click.echo(report.summary_table(result))
    if report_path:
        report.write_json(report_path, report.report_json(result))
        click.echo(f"report written to {report_path}")
    code = ExitCode.OK
    if result.dead_lettered:
        click.echo(f"error: {result.dead_lettered} items could not be written; they are in "
                   f"{result.dead_letter_dir}, each with its reason", err=True)
        code = ExitCode.INCOMPLETE
    # the other items still need their changes: replication goes on, the code stays
    if running_capture is not None:
        running_capture.on_failure = None
        click.echo("snapshot copied; applying the changes captured meanwhile, then replicating", err=True)
        code = max(code, _run_replication(config, plans, running_capture.streams, follow or not until_caught_up,
                                          until_caught_up, max_lag, beam_args, metrics, running_capture))
    return code


@main.command("replicate")
@config_option
@_replication_options
@_metrics_options
@dry_run_option
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def replicate_command(config_path: str, follow: bool, until_caught_up: bool, max_lag: float,
                      metrics_port: int | None, metrics_host: str, dry_run: bool, beam_args: tuple[str, ...]) -> None:
    """Replicate changes from DynamoDB Streams, resuming from the checkpoints.

    With no checkpoint yet, a shard starts at its oldest record (TRIM_HORIZON), which is
    always safe: every change is applied as a full-item put or a delete. Without
    --follow or --until-caught-up, one round: apply what the streams hold now, then stop.
    Exit 0 done or caught up, 1 writes failed (see dead letters), 2 usage or stream
    problem, 3 changes were lost (a new snapshot is needed).
    """
    _run(lambda: _serving(metrics_host, metrics_port, lambda metrics: _replicate(
            config_path, follow, until_caught_up, max_lag, dry_run, beam_args, metrics)),
         interrupted=f"the checkpoints are consistent; `alternator-migrate replicate --config {config_path}` "
                     f"continues from them")


def _replicate(config_path, follow, until_caught_up, max_lag, dry_run, beam_args, metrics=None) -> ExitCode:
    if follow and until_caught_up:
        raise click.UsageError("choose one of --follow and --until-caught-up")
    _goes_with("--max-lag", "--until-caught-up", until_caught_up)
    config = _load(config_path, "replicate", beam_args)
    from pipeline.commands import capture  # noqa: PLC0415
    from pipeline.checks import launch, source_streams, tables  # noqa: PLC0415

    if dry_run:
        from pipeline.commands import replicate  # noqa: PLC0415

        click.echo(replicate.describe_dry_run(config, beam_args, follow=follow))
        return ExitCode.OK
    source_streams.check_runner(config, beam_args)
    config = launch.prepare(config, beam_args, follow_streams=follow, pipelines=False)
    plans = tables.plan_tables(config, create=False, check_target=True)
    table_streams = source_streams.streams_of(config, plans)
    source_streams.bind_checkpoints(config, table_streams, fresh=False)
    captured, running_capture = capture.pending(config, table_streams), None
    if captured:  # a snapshot copied under a capture whose spool is not applied yet: apply it first
        capture.check_snapshot_copied(config, captured)
        running_capture = capture.start(captured, source_streams.replication_settings(config, plans))
    return _run_replication(config, plans, table_streams, follow, until_caught_up, max_lag, beam_args, metrics,
                            running_capture)


@main.command("capture")
@config_option
@click.option("--enable-streams", is_flag=True, help="Turn a table's stream on (NEW_AND_OLD_IMAGES) if it is off.")
@click.option("--restart", is_flag=True, help="Drop an earlier capture's spool and start a new one.")
def capture_command(config_path: str, enable_streams: bool, restart: bool) -> None:
    """Capture every table's stream changes into the spool, until interrupted (Ctrl-C).

    Start it before you request an export or start a long copy: a later `migrate --streams`
    continues this spool (stop the capture first) and applies it after the snapshot, so no
    change is lost however long the copy takes. Nothing is written to the target.
    """
    _run(lambda: _capture(config_path, enable_streams, restart),
         interrupted=f"the spool is consistent; `alternator-migrate migrate --config {config_path} --streams` "
                     f"continues it after the snapshot (or run capture again)")


def _capture(config_path: str, enable_streams: bool, restart: bool) -> ExitCode:
    config = _load(config_path, "capture")
    from pipeline.commands import capture  # noqa: PLC0415
    from pipeline.checks import launch, source_streams  # noqa: PLC0415

    config = launch.prepare(config, (), pipelines=False)
    names = [spec.source for spec in config.tables]
    capture.check_not_replicating(config, names)
    table_streams = source_streams.ensure_streams(config, names, enable=enable_streams)
    running = capture.start(table_streams, source_streams.settings_for(config, capture.unplanned_pairs(config)),
                            restart=restart)
    click.echo(f"capturing the changes of {len(table_streams)} table{'s' if len(table_streams) != 1 else ''} into "
               f"{config.checkpoint_dir}; Ctrl-C stops it", err=True)
    capture.follow(running, echo=lambda line: click.echo(line, err=True))
    return ExitCode.OK


@main.command("export")
@config_option
@click.option("--to", "to", required=True, help="Where the tables' folders go: a local folder, s3://... or gs://...")
@click.option("--from-target", is_flag=True, help="Export the target tables instead of the source tables.")
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def export_command(config_path: str, to: str, from_target: bool, beam_args: tuple[str, ...]) -> None:
    """Write every configured table as Parquet files (one folder per table, with a manifest.json).

    A table entry with `parquet: <to>/<table>` migrates such a folder to the target.
    """
    _run(lambda: _export(config_path, to, from_target, beam_args),
         interrupted="the export is incomplete; empty its folders and run it again")


def _export(config_path: str, to: str, from_target: bool, beam_args) -> None:
    config = _load(config_path, "export", beam_args)
    from pipeline.commands import parquet_export  # noqa: PLC0415
    from pipeline.checks import launch  # noqa: PLC0415

    config = launch.prepare(config, beam_args)
    folder = to if "://" in to else os.path.abspath(to)
    for table in parquet_export.run_export(config, folder, from_target=from_target, beam_args=beam_args):
        click.echo(f"{table.table}: {table.items:,} items in {table.files} Parquet files under {table.folder}")


@main.command()
@config_option
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write a JSON report here.")
@click.option("--sample-rate", type=click.FloatRange(0, 1, min_open=True),
              help="Spot check: point-read this share of the source's keys in the target (no target scan).")
@click.option("--recheck-seconds", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Read a differing key again after this delay; equal by then counts as lag, not a difference.")
@click.option("--max-examples", type=click.IntRange(min=0), default=20, show_default=True,
              help="Example keys shown per table and kind.")
@click.option("--repair", is_flag=True, help="Write the source version of every differing key, then validate again.")
@click.option("--yes", is_flag=True, help="Confirm --repair.")
@click.option("--no-progress", is_flag=True, help="Do not print the scans' live progress.")
@_metrics_options
@dry_run_option
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def validate(config_path, report_path, sample_rate, recheck_seconds, max_examples, repair, yes, no_progress,
             metrics_port, metrics_host, dry_run, beam_args) -> None:
    """Check that the target equals the source, both ways.

    Finds items missing from the target, extra in the target, and different (with the
    attribute paths that differ). Exit 0 when every table matches, 1 when any
    difference was found, 2 for a usage or connection error.
    """
    _run(lambda: _serving(metrics_host, metrics_port, lambda metrics: _validate(
            config_path, report_path, sample_rate, recheck_seconds, max_examples, repair, yes, dry_run, beam_args,
            metrics, show_progress=not no_progress)),
         interrupted=f"no verdict; run `alternator-migrate validate --config {config_path}` again")


def _validate(config_path, report_path, sample_rate, recheck_seconds, max_examples, repair_target, yes,
              dry_run, beam_args, metrics=None, show_progress=True) -> ExitCode:
    if repair_target and sample_rate is not None:
        raise click.UsageError("--repair needs a full comparison; drop --sample-rate")
    _goes_with("--yes", "--repair", repair_target)
    _check_report_path(report_path)
    config = _load(config_path, "validate", beam_args)
    from pipeline.commands import repair  # noqa: PLC0415
    from pipeline.output import report  # noqa: PLC0415
    from pipeline.checks import launch, tables  # noqa: PLC0415
    from pipeline.commands.validate import describe_dry_run, run_validate  # noqa: PLC0415

    if dry_run:
        click.echo(describe_dry_run(config, beam_args, sample_rate=sample_rate, recheck_seconds=recheck_seconds))
        return ExitCode.OK
    config = launch.prepare(config, beam_args)
    plans = tables.plan_tables(config, create=False, check_target=True)

    if metrics is not None:
        metrics.add_tables({plan.spec.source: plan.spec.target for plan in plans})

    def validate_once():
        result = run_validate(config, plans, sample_rate=sample_rate, recheck_seconds=recheck_seconds,
                              max_examples=max_examples, beam_args=beam_args, show_progress=show_progress)
        click.echo(report.validation_table(result))
        if metrics is not None:
            for name, table in result.tables.items():
                metrics.set_findings(name, table.counts)
        return result

    result = validate_once()
    if repair_target and not result.equal:
        click.echo(repair.announce(result))
        if not yes:
            click.echo("repair: not done; run again with --repair --yes to apply it", err=True)
        else:
            repair.repair(config, plans, result, echo=click.echo, metrics=metrics)
            result = validate_once()
    if report_path:
        report.write_json(report_path, report.validation_json(result))
        click.echo(f"report written to {report_path}")
    return ExitCode.OK if result.equal else ExitCode.INCOMPLETE


@main.command("status")
@config_option
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, json for scripts.")
def status_command(config_path: str, output: str) -> None:
    """Show where every table stands, from the checkpoints and dead letters alone.

    Reads only checkpoint_dir and dead_letter_dir (a folder, s3:// or gs://), never the
    source or the target: it works from any machine that can read them, during a run or
    after it. Exit 0, or 1 when a table has unresolved dead letters or a stopped shard.
    """
    _run(lambda: _status(config_path, output), interrupted="nothing was changed")


def _status(config_path: str, output: str) -> ExitCode:
    config = _read_config(config_path)  # no run log: it only reads, and may run every minute
    from pipeline.checks import buckets, launch  # noqa: PLC0415 - see the module docstring
    from pipeline.commands import status  # noqa: PLC0415 - see the module docstring

    buckets.open_storage(config, launch.pipeline_options(config, ()))
    found = status.read_status(config)
    click.echo(json.dumps(found, indent=2) if output == "json" else status.status_text(found))
    return ExitCode.INCOMPLETE if status.needs_attention(found) else ExitCode.OK


@main.command("retry-dead-letter")
@config_option
@click.option("--run", "run", metavar="run-<timestamp>",
              help="Only this run's dead letters (a folder in dead_letter_dir); default: every run's.")
def retry_dead_letter(config_path: str, run: str | None) -> None:
    """Resolve dead letters once their cause is fixed.

    Each letter's key is read from the source again and the source's current item written
    (or the key deleted if the source no longer has it): a letter's own, possibly stale,
    value is never replayed. Resolved letters are marked and skipped next time. Exit 0 when
    no letter is left unresolved, 1 otherwise.
    """
    _run(lambda: _retry_dead_letter(config_path, run),
         interrupted="letters already resolved are marked; run retry-dead-letter again for the rest")


def _retry_dead_letter(config_path: str, run: str | None) -> ExitCode:
    config = _load(config_path, "retry-dead-letter")
    from pipeline.checks import launch, tables  # noqa: PLC0415
    from pipeline.commands.retry_dead_letters import retry_dead_letters  # noqa: PLC0415

    config = launch.prepare(config, ())
    plans = tables.plan_tables(config, create=False, check_target=True)
    return retry_dead_letters(config, plans, run, echo=click.echo)


if __name__ == "__main__":
    main()
