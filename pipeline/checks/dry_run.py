"""`--dry-run`: build a command's real Dataflow job on this machine, and describe it.

DataflowRunner's `dry_run` test option does everything a submission does here
(translation to Dataflow's form, pickling every DoFn, building the `setup_file`
package) and stops before staging and the service call. So a pickling or translation
error shows on the user's machine, not in their cloud project: a check before a run,
like the others here.

A dry run talks to nothing: no DescribeTable, no stream, no bucket. Each command builds
its own job (`describe_dry_run` in `bulk`, `replicate`, `validate`) from the config with
the placeholder tables of `offline_plans` (the key and the stream of each table are found
at run time; `auto` segments count as four per worker), which gives the same steps and the
same DoFns as the run; only the elements of `Create` differ. This module builds and
describes the job it is given.
"""
from __future__ import annotations

import importlib
from typing import Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import (GoogleCloudOptions, PipelineOptions, StandardOptions,
                                                  TestOptions)

from pipeline.checks import runners, schema
from pipeline.checks.buckets import refuse_local_state, storage_keys
from pipeline.checks.config import RunConfig
from pipeline.checks.launch import pipeline_options
from pipeline.checks.tables import TablePlan, auto_segments

__all__ = ["dataflow_job", "offline_plans", "state_lines"]

PLACEHOLDER_KEY = schema.KeySchema((("<key, found at run time>", "S"),))


def offline_plans(config: RunConfig) -> list[TablePlan]:
    """A plan per table without asking the source: placeholder key, the configured segments."""
    segments = config.scan.segments or auto_segments(0, 0, config.scan.page_size, config.workers,
                                                        config.scan.pages_in_flight)
    return [TablePlan(spec, PLACEHOLDER_KEY, PLACEHOLDER_KEY, 0, 0, segments, True, ()) for spec in config.tables]


def _check_dataflow(config: RunConfig, options: PipelineOptions) -> None:
    """What Beam would otherwise find only by going online (or not at all, offline)."""
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator  # noqa: PLC0415

    if runners.runner_kind(options) != "dataflow":
        raise runners.RunnerError("--dry-run builds a Dataflow job; set pipeline_options.runner: DataflowRunner "
                                  "(or add `-- --runner=DataflowRunner`)")
    try:
        importlib.import_module("apache_beam.runners.dataflow.internal.apiclient")
    except ImportError:
        raise runners.RunnerError("the Dataflow runner is not installed: pip install "
                                  "'alternator-migrate[dataflow]'") from None
    cloud = options.view_as(GoogleCloudOptions)
    validator = PipelineOptionsValidator(options, None)
    if validator.validate_gcs_path(cloud, "temp_location") and validator.validate_gcs_path(cloud,
                                                                                          "staging_location"):
        # Without one Beam would try to create a default bucket in the project, online.
        raise runners.RunnerError("Dataflow needs pipeline_options.temp_location: gs://bucket/path (a valid bucket "
                                  f"name), got {cloud.temp_location!r}")
    refuse_local_state(config)


def dataflow_job(config: RunConfig, beam_args: Sequence[str], build: Callable[[beam.Pipeline], None], *,
                 title: str, streaming: bool, state: Sequence[str]) -> str:
    """Build one Dataflow job offline with `build`; its description (steps, workers, state).

    Args:
        config, beam_args: the run's config and Beam options, as for a real run.
        build: adds the command's steps to the pipeline it is given.
        title: what the job is, e.g. "bulk copy".
        streaming: build it as a streaming job.
        state: lines saying where this job keeps its state.
    """
    options = pipeline_options(config, beam_args)
    _check_dataflow(config, options)
    options.view_as(StandardOptions).streaming = streaming
    options.view_as(TestOptions).dry_run = True
    try:
        p = beam.Pipeline(options=options)
        build(p)
        job = p.run().job  # stops before staging and the service call
    except ValueError as exc:  # Beam's option validation: missing project or region, bad values
        raise runners.RunnerError(f"Dataflow would refuse the job: {' '.join(str(exc).split())}") from None
    return "\n".join([f"{title}: Dataflow job {job.proto.name} ({'streaming' if streaming else 'batch'}), "
                      f"built offline, not submitted",
                      "steps:", *_steps(job), "workers:", *_workers(job), "state:", *state])


_KINDS = {"generic_composite": "composite", "pickled_python": "create", "pardo": "ParDo", "reshuffle": "Reshuffle",
          "group_by_key": "GroupByKey", "combine_per_key": "CombinePerKey", "flatten": "Flatten", "impulse": "Impulse"}


def _steps(job) -> list[str]:
    """The job's steps down to the tool's own (two levels), with the kind of each."""
    components = job.proto_pipeline.components
    lines = []

    def walk(transform_id: str, depth: int) -> None:
        transform = components.transforms[transform_id]
        kind = transform.spec.urn.split(":")[-2] if transform.spec.urn else ""
        if depth:
            lines.append(f"  {'  ' * (depth - 1)}{transform.unique_name} [{_KINDS.get(kind, kind)}]")
        if depth < 2:
            for child in transform.subtransforms:
                walk(child, depth + 1)

    for root in job.proto_pipeline.root_transform_ids:
        walk(root, 0)  # the pipeline itself
    return lines


def _workers(job) -> list[str]:
    """Worker settings as Dataflow would receive them (built offline, like the runner does)."""
    from apache_beam.portability.api import beam_runner_api_pb2  # noqa: PLC0415
    from apache_beam.runners.dataflow.internal import apiclient  # noqa: PLC0415

    cloud = job.options.view_as(GoogleCloudOptions)
    environment = apiclient.Environment(
        packages=[], options=job.options, environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,  # noqa: SLF001
        proto_pipeline_staged_url=f"{cloud.staging_location}/pipeline.pb", proto_pipeline=job.proto_pipeline).proto
    pool = environment.worker_pools[0]
    staged = sorted(beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dependency.role_payload).staged_name
                    for env in job.proto_pipeline.components.environments.values() for dependency in env.dependencies)
    return [f"  project {cloud.project}, region {cloud.region}",
            f"  machine type {pool.machine_type or 'Dataflow default'}, workers {pool.num_workers or 'auto'}, "
            f"at most {pool.autoscaling_settings.max_num_workers or 'Dataflow default'}, disk "
            f"{f'{pool.disk_size_gb} GB' if pool.disk_size_gb else 'Dataflow default'}",
            f"  container {pool.worker_harness_container_image}",
            f"  installed on each worker: {', '.join(staged) or 'nothing'}",
            f"  staging {cloud.staging_location}, temp {cloud.temp_location}"]


def state_lines(config: RunConfig, *folders: str) -> list[str]:
    """Where a job keeps its state: the given folders, then the run's dead letters."""
    keys = storage_keys(config)
    return [*(f"  {folder}" for folder in folders),
            f"  dead letters {keys['dead_letter_dir']}/run-<time>/<table>/",
            "  (not checked: a dry run talks to no endpoint and no bucket)"]
