"""What each Beam runner can do, and how the launcher drives it (`launch` is what all share).

Every runner gets the same pipelines; where runners differ, it is decided here:

- DirectRunner (the default): Beam's `DirectRunner` first tries its Prism runner, which
  downloads a binary from GitHub at run time, and falls back to the FnApiRunner when that
  fails. The tool runs `LocalRunner` instead, that FnApiRunner chosen outright: the runner
  the tests run, no download, no fallback.
- DirectRunner and Dataflow: run, wait, read Beam's counters.
- Dataflow: the workers are other machines, so a local `checkpoint_dir` cannot work.
- Dask (Beam's `DaskRunner`, on a dask.distributed cluster): Beam hands its workers no
  pipeline options (DoFns install their storage settings themselves), turns each `Create`
  into partitions of 128 elements and `Reshuffle` into nothing, so one partition per
  element is the default here (segments and shards spread over the workers); it keeps no
  metrics (`None`: the launcher counts from the run's files) and cannot run the streaming
  `--follow` pipeline. A worker that cannot import this package dies and the job then
  waits for ever, so the cluster is checked first (scheduler, workers, versions) and the
  wait is watched: it ends with an error when every worker is gone.
"""
from __future__ import annotations

import contextlib
import time

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner

from pipeline.checks.launch import LOCAL_RUNNER, kind_of
from transforms.errors import ExitCode, MigrateError

__all__ = ["RunnerError", "LocalRunner", "LOCAL_RUNNER", "runner_kind", "use_defaults", "check_cluster",
           "cluster_is_here", "wait", "refuse_streaming"]

DASK_CONNECT_SECONDS = 10
WAIT_SLICE_SECONDS = 5.0
# How long a Dask job may have no worker at all before the launcher gives up on it.
NO_WORKERS_GRACE_SECONDS = 60.0
# What the scheduler and every worker must have, at the launcher's versions.
_DISTRIBUTIONS = ("alternator-migrate", "apache-beam", "dask", "distributed", "pyarrow")


class RunnerError(MigrateError):
    """The Beam runner cannot run this job (exit 2), or lost it while it ran (exit 4)."""


class LocalRunner(PipelineRunner):
    """Beam's DirectRunner without its try of Prism: the FnApiRunner it falls back to, given
    the job's options for its workers as the DirectRunner gives them (worker processes of
    `multi_processing` read them: log level, storage settings).

    Our own class because Beam (2.77) has no option to skip Prism: `prism_location` only
    says where to download it from.
    """

    def run_pipeline(self, pipeline, options):
        from apache_beam.portability.api import beam_provision_api_pb2  # noqa: PLC0415 - as Beam's runner does
        from apache_beam.runners.portability.fn_api_runner import fn_runner  # noqa: PLC0415
        from apache_beam.runners.portability.portable_runner import JobServiceHandle  # noqa: PLC0415

        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        return fn_runner.FnApiRunner(provision_info=provision).run_pipeline(pipeline, options)


def runner_kind(options: PipelineOptions) -> str:
    """`direct` (also `LocalRunner`), `dataflow`, `dask`, or the runner's own name in lower case."""
    return kind_of(options.view_as(StandardOptions).runner)


def use_defaults(options: PipelineOptions) -> None:
    """Dask: one partition per element of each `Create` (segments, shards) unless the
    config chose a partitioning, so the work spreads over the workers."""
    if runner_kind(options) != "dask":
        return
    from apache_beam.runners.dask.dask_runner import DaskOptions  # noqa: PLC0415 - Dask only

    dask = options.view_as(DaskOptions)
    if not dask.npartitions and not dask.partition_size:
        dask.partition_size = 1


def refuse_streaming(options: PipelineOptions) -> None:
    """The long-lived streaming `--follow` pipeline needs a streaming runner."""
    kind = runner_kind(options)
    if kind == "dask":
        raise RunnerError("the Dask runner cannot run the streaming --follow pipeline (no state, no "
                          "self-checkpointing reads); drop `streaming` from pipeline_options to follow the streams "
                          "in rounds, which work on Dask")


# --- Dask -----------------------------------------------------------------------------

def _dask_address(options: PipelineOptions) -> tuple[dict, str]:
    from apache_beam.runners.dask.dask_runner import DaskOptions  # noqa: PLC0415

    dask = options.view_as(DaskOptions)
    if not dask.address and not dask.scheduler_file:
        raise RunnerError("the Dask runner needs a cluster: set pipeline_options.dask_client_address "
                          "(e.g. tcp://scheduler:8786) or dask_scheduler_file")
    where = dask.address or f"the scheduler in {dask.scheduler_file}"
    return {"address": dask.address, "scheduler_file": dask.scheduler_file,
            "timeout": dask.timeout if isinstance(dask.timeout, int) else DASK_CONNECT_SECONDS}, where


def _versions_probe():
    """A function to run on the scheduler and every worker: the versions it has of what a job
    needs. Defined inside a function so that cloudpickle sends it by value: a worker that
    cannot import this package must still be able to run it and say so."""
    def probe(distributions):
        import importlib
        import sys
        from importlib import metadata

        found = {"python": "%d.%d" % sys.version_info[:2]}
        for name in distributions:
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = "missing"
        for module in ("pipeline", "transforms.write"):
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - reported to the launcher
                found[f"import {module}"] = f"{type(exc).__name__}: {exc}"
        return found
    return probe


def check_cluster(options: PipelineOptions) -> int:
    """Check a Dask cluster before the run: reachable, with workers, and every process able to
    run this package at the launcher's versions. Returns the cluster's worker threads."""
    try:
        from distributed import Client  # noqa: PLC0415 - Dask only
    except ImportError:
        raise RunnerError("the Dask runner is not installed: pip install 'alternator-migrate[dask]'") from None
    settings, where = _dask_address(options)
    try:
        client = Client(**settings, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise RunnerError(f"cannot reach the Dask scheduler at {where}: {exc}") from None
    with client:
        threads = client.nthreads()
        if not threads:
            raise RunnerError(f"the Dask cluster at {where} has no workers; start some with "
                              f"`dask worker {settings['address'] or '--scheduler-file ...'}`")
        probe = _versions_probe()
        expected = probe(list(_DISTRIBUTIONS))  # this launcher's
        names = {address: info.get("name", address) for address, info in client.scheduler_info()["workers"].items()}
        found = {"scheduler": client.run_on_scheduler(probe, list(_DISTRIBUTIONS))}
        found.update((f"worker {names.get(address, address)}", versions)
                     for address, versions in client.run(probe, list(_DISTRIBUTIONS)).items())
    for process, versions in found.items():
        wrong = {name: value for name, value in versions.items() if expected.get(name) != value}
        if wrong:
            details = ", ".join(f"{name} {value} (here: {expected.get(name, 'ok')})" for name, value in wrong.items())
            raise RunnerError(f"Dask {process} at {where} cannot run this job: {details}; install "
                              f"alternator-migrate[dask] at the launcher's versions on the scheduler and every "
                              f"worker")
    return sum(threads.values())


def cluster_is_here(options: PipelineOptions) -> bool:
    """Whether the Dask scheduler runs on this machine (then its workers may share local folders)."""
    from apache_beam.runners.dask.dask_runner import DaskOptions  # noqa: PLC0415

    address = options.view_as(DaskOptions).address or ""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host.startswith("127.") or host in ("localhost", "::1")


def wait(result, options: PipelineOptions) -> None:
    """Wait for a job to end. On Dask, watch the cluster while waiting, cancel the job's
    tasks if the launcher stops early, and always close the runner's client."""
    if runner_kind(options) != "dask":
        result.wait_until_finish()
        return
    _, where = _dask_address(options)
    no_workers_since = None
    try:
        while True:
            try:
                result.wait_until_finish(duration=WAIT_SLICE_SECONDS * 1000)
                return
            except TimeoutError:
                pass
            if result.client.nthreads():
                no_workers_since = None
                continue
            no_workers_since = no_workers_since or time.monotonic()
            if time.monotonic() - no_workers_since > NO_WORKERS_GRACE_SECONDS:
                raise RunnerError(f"every worker of the Dask cluster at {where} is gone (see the workers' logs: "
                                  f"a worker that cannot import this package dies); the checkpoints are "
                                  f"consistent: start workers and run again with --resume", ExitCode.FAILED)
    except BaseException:
        with contextlib.suppress(Exception):  # the error that ended the wait is the one to report
            result.cancel()  # tasks not yet started are dropped; running ones end on their own
        raise
    finally:
        result.client.close()
