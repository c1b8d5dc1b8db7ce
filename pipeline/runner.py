"""What every pipeline launcher shares: Beam options from the config and the command
line (checked strictly), running a pipeline, and reading the tool's counters back."""
from __future__ import annotations

import difflib
import importlib
from typing import Iterable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

from pipeline.config import ConfigError, RunConfig
from transforms import metrics

# Runners whose options live in their own module; imported (when installed) so their
# options are known to the strict check below.
_RUNNER_OPTION_MODULES = ("apache_beam.runners.dask.dask_runner",)


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


def check_options(config: RunConfig, beam_args: Sequence[str]) -> None:
    """Refuse Beam options that Beam would silently ignore: after `--` on the command line,
    and the keys of `pipeline_options` in the config. Raises ConfigError naming the option."""
    known = known_option_names()
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
    """The config's pipeline_options, overridden by command-line Beam flags.

    Workers log at WARNING unless asked otherwise: their INFO lines would bury progress.
    """
    options = {"default_sdk_harness_log_level": "WARNING", **dict(config.pipeline_options)}
    return PipelineOptions(list(beam_args), **options)


_LOCAL_RUNNERS = frozenset({"direct", "directrunner", "switchingdirectrunner", "bundlebaseddirectrunner",
                            "fnapirunner"})


def runs_locally(options: PipelineOptions) -> bool:
    """Whether the runner is one of Beam's local runners (the default): its workers share this
    machine, and it holds a grouping's data in memory instead of spilling it."""
    runner = options.view_as(StandardOptions).runner
    if runner is None:
        return True
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1].lower() in _LOCAL_RUNNERS


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
