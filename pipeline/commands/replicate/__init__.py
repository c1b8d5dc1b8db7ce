"""`replicate`: changes from DynamoDB Streams (or Kinesis data streams) applied to the
target; where it runs, and what the user sees of it.

One module a way of running, `replicate` here chooses between them: on the local runner
(the default) the launcher is the follower (`follower`); other runners run Beam pipelines
on the same engine and checkpoints (`beam_jobs`): one streaming job with `--follow` on a
streaming runner, rounds otherwise. Both report alike (`reporting`). Which stream each
table is read from, and the streams switched on, are settled before (`checks.source_streams`).

A table that names a Kinesis data stream (`tables[].kinesis_stream_arn`) is followed there
instead of its DynamoDB stream, by the same engine, in the launcher only: the check that no
older change of a key lands over a newer one (`streams.change_order`) holds within one
process, so other runners are refused for it (exit 2) before anything is copied.

A shard that cannot go on (changes trimmed away, writes failing) leaves a stop note
under its table's checkpoints; the launcher ends with that note's exit code, whatever
ran the shard. Ctrl-C ends a run with what was acknowledged checkpointed; the caller
(the CLI) turns it into exit 130.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Sequence

from pipeline.checks.config import RunConfig
from pipeline.checks.launch import check_options
from pipeline.checks.source_streams import Stream, replication_settings
from pipeline.checks.tables import TablePlan
from pipeline.commands.replicate.beam_jobs import describe_dry_run, follow_streaming, replicate_in_rounds
from pipeline.commands.replicate.follower import follow_locally
from transforms.errors import ExitCode
from transforms.state.dead_letters import count_dead_letters, run_folder
from transforms.streams.engine import ReplicationSettings

if TYPE_CHECKING:
    from pipeline.output.metrics_server import RunMetrics  # served only with --metrics-port

__all__ = ["replicate", "follow_locally", "replicate_in_rounds", "follow_streaming", "describe_dry_run"]


def replicate(config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream], *, follow: bool,
              until_caught_up: bool, max_lag: float, beam_args: Sequence[str] = (),
              echo: Callable[[str], None] = print, metrics: RunMetrics | None = None,
              apply_first: Callable[[ReplicationSettings], None] | None = None) -> ExitCode:
    """Replicate as the flags say; the exit code (OK caught up or done, INCOMPLETE some changes
    dead-lettered, CHANGES_LOST). Dead letters go to this run's own folder. KeyboardInterrupt
    (Ctrl-C) leaves consistent checkpoints behind. `metrics`: where the figures are served
    (`--metrics-port`): the local follower's as they change, a round's after it. `apply_first`:
    what is applied before the streams are followed, given this run's engine settings (the
    spool of the capture beside a snapshot: `capture.drain`); replication then goes on from
    where it got to."""
    config = dataclasses.replace(config, dead_letter_dir=run_folder(config.dead_letter_dir))
    if metrics is not None:
        metrics.add_tables({plan.spec.source: plan.spec.target for plan in plans})
    if apply_first is not None:
        apply_first(replication_settings(config, plans))
    options = check_options(config, beam_args)
    if options.local:
        code = follow_locally(config, plans, streams, follow=follow, until_caught_up=until_caught_up,
                              max_lag=max_lag, echo=echo, metrics=metrics)
    elif follow and options.streaming:
        code = follow_streaming(config, plans, streams, beam_args, echo=echo)
    else:
        code = replicate_in_rounds(config, plans, streams, follow=follow, until_caught_up=until_caught_up,
                                   max_lag=max_lag, beam_args=beam_args, echo=echo, metrics=metrics)
    dead = sum(count_dead_letters(config.dead_letter_dir).values())
    if dead:
        echo(f"error: {dead} changes could not be applied; they are in {config.dead_letter_dir}")
        return max(code, ExitCode.INCOMPLETE)
    return code
