"""What every pipeline launcher shares: Beam options from the config and the command
line (checked strictly), the checks before a run (its runner, its storage), running a
pipeline, and reading the tool's counters back."""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
from typing import Any, Iterable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

from pipeline import engines, storage
from pipeline.config import ConfigError, RunConfig
from transforms import metrics
from transforms.state.storage import bucket_of

log = logging.getLogger(__name__)

# Runners whose options live in their own module; imported (when installed) so their
# options are known to the strict check below.
_RUNNER_OPTION_MODULES = ("apache_beam.runners.dask.dask_runner",)
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
_BEAM_DIRECT = "apache_beam.runners.direct.direct_runner."
# Runner names Beam does not resolve itself (its Dask runner is not among its known runners),
# and the DirectRunner's names, which the tool runs as `engines.LocalRunner` (no Prism).
RUNNER_ALIASES = {"dask": DASK_RUNNER, "daskrunner": DASK_RUNNER,
                  **{name: engines.LOCAL_RUNNER for name in (
                      "direct", "directrunner", "switchingdirect", "switchingdirectrunner",
                      f"{_BEAM_DIRECT}directrunner", f"{_BEAM_DIRECT}switchingdirectrunner")}}


def _beam_parser() -> _BeamArgumentParser:
    """Beam's own parser of every known pipeline option, as `PipelineOptions` builds it.

    Beam silently drops what this parser does not know; we use it to refuse instead.
    """
    for module in _RUNNER_OPTION_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(cls): cls for cls in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's documented way to extend its parser
    return parser


def known_option_names() -> set[str]:
    """The names (dests) of every Beam pipeline option."""
    return set(vars(_beam_parser().parse_known_args([])[0]))


def _closest(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {match[0]}?" if match else ""


def _flag_dests() -> dict[str, str]:
    """Beam option flag names (without `--`) that differ from their dests, e.g.
    `dask_client_address` -> `address`: as a keyword, Beam would silently ignore the flag name."""
    dests = {}
    for action in _beam_parser()._actions:  # noqa: SLF001 - argparse keeps no public list
        for flag in action.option_strings:
            if flag.startswith("--") and flag[2:] != action.dest:
                dests[flag[2:]] = action.dest
    return dests


def resolve_runner(name: Any) -> Any:
    """The runner's class path where Beam knows only that (`dask` -> Beam's Dask runner), and
    the tool's local runner for the DirectRunner and for no runner at all (Beam's default)."""
    if name is None:
        return engines.LOCAL_RUNNER
    return RUNNER_ALIASES.get(name.lower(), name) if isinstance(name, str) else name


def check_options(config: RunConfig, beam_args: Sequence[str]) -> None:
    """Refuse Beam options that Beam would silently ignore: after `--` on the command line,
    and the keys of `pipeline_options` in the config (an option's name, or its flag name as
    Beam's docs spell it). Raises ConfigError naming the option."""
    known = known_option_names() | set(_flag_dests())
    for key in config.pipeline_options:
        if key not in known:
            raise ConfigError(f"pipeline_options.{key} is not a Beam pipeline option"
                              f"{_closest(key, known)}")
    _, unknown = _beam_parser().parse_known_args(list(beam_args))
    flags = [arg for arg in unknown if arg.startswith("-")] or unknown
    if flags:
        name = flags[0].split("=", 1)[0]
        hint = _closest(name, (f"--{k}" for k in known))
        raise ConfigError(f"unknown Beam option {flags[0]!r} after `--`{hint}")


def pipeline_options(config: RunConfig, beam_args: Sequence[str]) -> PipelineOptions:
    """The config's pipeline_options, overridden by command-line Beam flags: the options of
    the job, and of the launcher's own storage access (Beam's filesystems read them too).

    Workers log at WARNING unless asked otherwise: their INFO lines would bury progress.
    Flag names become option names, a runner name Beam does not resolve (`dask`) its class
    path, and the DirectRunner (or no runner) the tool's `engines.LocalRunner`.
    """
    dests = _flag_dests()
    options = {"default_sdk_harness_log_level": "WARNING",
               **{dests.get(key, key): value for key, value in config.pipeline_options.items()}}
    result = PipelineOptions(list(beam_args), **options)
    standard = result.view_as(StandardOptions)
    standard.runner = resolve_runner(standard.runner)
    engines.use_defaults(result)
    return result


def prepare(config: RunConfig, beam_args: Sequence[str], *, follow_streams: bool = False) -> RunConfig:
    """What is checked before a run writes anything, after its options (`check_options`): the
    runner (a Dask cluster is checked, and its worker count returned in the config) and the
    storage.

    `follow_streams`: the run will follow the streams, in one streaming pipeline where the
    options say `streaming`.
    """
    options = pipeline_options(config, beam_args)
    kind = engines.runner_kind(options)
    if follow_streams and options.view_as(StandardOptions).streaming:
        engines.refuse_streaming(options)
    if kind == "dask":
        config = dataclasses.replace(config, cluster_workers=engines.check_cluster(options))
        local = [key for key, path in storage.storage_keys(config).items() if bucket_of(path) is None]
        if local and not engines.cluster_is_here(options):
            log.warning("%s is a local folder, but the Dask scheduler is on another machine: every worker must see "
                        "the same folder (a shared file system), or use s3:// or gs://", " and ".join(local))
    storage.open_storage(config, options, remote_workers=kind == "dataflow")
    return config


_LOCAL_RUNNERS = frozenset({"direct", "switchingdirect", "bundlebaseddirect", "fnapi"})  # as engines.runner_kind


def runs_locally(options: PipelineOptions) -> bool:
    """Whether the runner is one of Beam's local runners (the default): its workers share this
    machine, and it holds a grouping's data in memory instead of spilling it."""
    return engines.runner_kind(options) in _LOCAL_RUNNERS


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


def run_pipeline(pipeline: beam.Pipeline) -> dict[str, dict[str, int]] | None:
    """Run a built pipeline to the end; its counters, or None where the runner keeps none (Dask)."""
    result = pipeline.run()
    engines.wait(result, pipeline.options)
    try:
        return read_counters(result)
    except NotImplementedError:
        return None
