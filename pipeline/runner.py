"""What every pipeline launcher shares: Beam options from the config, running a
pipeline, and reading the tool's counters back."""
from __future__ import annotations

from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.config import RunConfig
from transforms import metrics


def pipeline_options(config: RunConfig, beam_args: Sequence[str]) -> PipelineOptions:
    """The config's pipeline_options, overridden by command-line Beam flags.

    Workers log at WARNING unless asked otherwise: their INFO lines would bury progress.
    """
    options = {"default_sdk_harness_log_level": "WARNING", **dict(config.pipeline_options)}
    return PipelineOptions(list(beam_args), **options)


def read_counters(result) -> dict[str, dict[str, int]]:
    """This tool's Beam counters as {table: {figure: value}} (committed where the runner has them)."""
    figures: dict[str, dict[str, int]] = {}
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(metrics.NAMESPACE))
    for counter in query["counters"]:
        table, name = metrics.parse(counter.key.metric.name)
        value = counter.committed if counter.committed is not None else counter.attempted
        figures.setdefault(table, {}).setdefault(name, 0)
        figures[table][name] += int(value or 0)
    return figures


def run_pipeline(pipeline: beam.Pipeline) -> dict[str, dict[str, int]]:
    """Run a built pipeline to the end; its counters."""
    result = pipeline.run()
    result.wait_until_finish()
    return read_counters(result)
