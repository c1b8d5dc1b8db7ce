"""What every pipeline launch shares, whatever the runner: Beam options from the config and
the command line (checked strictly, before anything starts), the checks before a run (its
runner, its storage), running a pipeline, and reading the tool's counters back. Where
runners differ is `runners`, which imports Beam; this module does not.

Beam costs about 1.5 s of CPU to import, so it is imported where a function needs it.
Checking the options needs Beam's own parser; its verdict on a set of options is kept
(`_Verdicts`), so the next command with the same options, such as the `replicate
--until-caught-up` that ends a cutover, decides what runs where without Beam, and the
local follower on a local folder never imports it.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import hashlib
import importlib
import json
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

from pipeline.checks import buckets
from pipeline.checks.config import ConfigError, RunConfig

log = logging.getLogger(__name__)

# Runners whose options live in their own module; imported (when installed) so their
# options are known to the strict check below.
_RUNNER_OPTION_MODULES = ("apache_beam.runners.dask.dask_runner",)
LOCAL_RUNNER = "pipeline.checks.runners.LocalRunner"  # see `runners.LocalRunner`
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
_BEAM_DIRECT = "apache_beam.runners.direct.direct_runner."
# Runner names Beam does not resolve itself (its Dask runner is not among its known runners),
# and the DirectRunner's names, which the tool runs as `runners.LocalRunner` (no Prism).
RUNNER_ALIASES = {"dask": DASK_RUNNER, "daskrunner": DASK_RUNNER,
                  **{name: LOCAL_RUNNER for name in (
                      "direct", "directrunner", "switchingdirect", "switchingdirectrunner",
                      f"{_BEAM_DIRECT}directrunner", f"{_BEAM_DIRECT}switchingdirectrunner")}}
_LOCAL_RUNNERS = frozenset({"direct", "switchingdirect", "bundlebaseddirect", "fnapi"})  # as `kind_of` names them
# Options naming a file on this machine that Beam's stager reads when it builds the job.
_LOCAL_FILE_OPTIONS = ("setup_file", "requirements_file")


def kind_of(runner: str | None) -> str:
    """`direct` (also `LocalRunner`), `dataflow`, `dask`, or the runner's own name in lower case."""
    runner = runner or "DirectRunner"
    if runner == LOCAL_RUNNER:
        return "direct"
    name = str(runner).rsplit(".", 1)[-1].lower()
    return name[:-len("runner")] if name.endswith("runner") and name != "runner" else name


@dataclasses.dataclass(frozen=True)
class CheckedOptions:
    """What the launcher needs to know of a run's Beam options once Beam has checked them."""

    runner: str  # as `resolve_runner` gives it
    streaming: bool
    files: tuple[tuple[str, str], ...] = ()  # (option, path) of the local files the options name

    @property
    def kind(self) -> str:
        return kind_of(self.runner)

    @property
    def local(self) -> bool:
        """One of Beam's local runners (the default): its workers share this machine."""
        return self.kind in _LOCAL_RUNNERS


@functools.lru_cache(maxsize=1)
def _beam_parser() -> argparse.ArgumentParser:
    """Beam's own parser of every known pipeline option, as `PipelineOptions` builds it, that
    raises instead of exiting on a bad value.

    Beam silently drops what this parser does not know, and takes a keyword option's value
    as it is, unchecked; we use it to refuse both instead.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser  # noqa: PLC0415

    for module in _RUNNER_OPTION_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    parser = _BeamArgumentParser(allow_abbrev=False, exit_on_error=False)
    for cls in {str(cls): cls for cls in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's documented way to extend its parser
    return parser


def known_option_names() -> set[str]:
    """The names (dests) of every Beam pipeline option."""
    return {action.dest for action in _beam_parser()._actions  # noqa: SLF001 - argparse keeps no public list
            if action.option_strings and action.default is not argparse.SUPPRESS}  # not --help


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
        return LOCAL_RUNNER
    return RUNNER_ALIASES.get(name.lower(), name) if isinstance(name, str) else name


def check_options(config: RunConfig, beam_args: Sequence[str]) -> CheckedOptions:
    """Refuse, before anything starts, Beam options that Beam would silently ignore or fail on
    later: unknown names (after `--` on the command line, and the keys of `pipeline_options`,
    an option's name or its flag name as Beam's docs spell it), values of the wrong type, a
    runner Beam does not have. Raises ConfigError naming the option; returns what the
    launcher needs to know of them. A verdict Beam gave before on the same options (at the
    same versions of Beam and of this check) is reused without importing Beam."""
    key = _verdict_key(config, beam_args)
    checked = _VERDICTS.get(key)
    if checked is None:
        checked = _check_with_beam(config, beam_args)
        _VERDICTS.put(key, checked)
    for option, path in checked.files:  # not part of the verdict: files come and go
        if not os.path.isfile(path):
            raise ConfigError(f"{option} {path} does not exist (a relative path is taken from the current folder, "
                              f"{os.getcwd()}); run from the folder that holds it, or give its full path")
    return checked


def _check_with_beam(config: RunConfig, beam_args: Sequence[str]) -> CheckedOptions:
    from apache_beam.options.pipeline_options import StandardOptions  # noqa: PLC0415

    parser, dests = _beam_parser(), _flag_dests()
    known = known_option_names() | set(dests)
    for key, value in config.pipeline_options.items():
        if key not in known:
            raise ConfigError(f"pipeline_options.{key} is not a Beam pipeline option"
                              f"{_closest(key, known)}")
        _check_value(parser, dests.get(key, key), key, value)
    try:
        _, unknown = parser.parse_known_args(list(beam_args))
    except argparse.ArgumentError as exc:
        raise ConfigError(f"after `--`: {exc}") from None
    flags = [arg for arg in unknown if arg.startswith("-")] or unknown
    if flags:
        name = flags[0].split("=", 1)[0]
        hint = _closest(name, (f"--{k}" for k in known))
        raise ConfigError(f"unknown Beam option {flags[0]!r} after `--`{hint}")
    options = pipeline_options(config, beam_args)
    standard = options.view_as(StandardOptions)
    _check_runner(standard.runner)
    setup = options.get_all_options()
    files = tuple((option, setup[option]) for option in _LOCAL_FILE_OPTIONS if isinstance(setup.get(option), str))
    return CheckedOptions(standard.runner, bool(standard.streaming), files)


def _check_value(parser: argparse.ArgumentParser, dest: str, key: str, value: Any) -> None:
    """A `pipeline_options` value as Beam's parser would take it from the command line:
    a flag takes true or false, an option its type (and one of its choices)."""
    action = next(a for a in parser._actions if a.dest == dest and a.option_strings)  # noqa: SLF001
    if action.nargs == 0:  # a flag (store_true, store_false, ...)
        if not isinstance(value, bool):
            raise ConfigError(f"pipeline_options.{key} is a flag: true or false, got {value!r}")
        return
    flag = next((f for f in action.option_strings if f.startswith("--")), action.option_strings[0])
    for one in value if isinstance(value, list) else [value]:
        if isinstance(one, (dict, list)):
            text = json.dumps(one)  # Beam's JSON-valued options
        else:
            text = str(one).lower() if isinstance(one, bool) else str(one)
        try:
            parser.parse_known_args([f"{flag}={text}"])
        except argparse.ArgumentError as exc:
            raise ConfigError(f"pipeline_options.{key}: {exc.message}") from None


def _check_runner(runner: Any) -> None:
    """A runner Beam can make: one of its own names, or a class path that imports (with its
    extra installed)."""
    if not isinstance(runner, str):
        return
    from apache_beam.runners.runner import create_runner  # noqa: PLC0415

    try:
        create_runner(runner)
    except ImportError as exc:
        extra = {"dask": "dask", "dataflow": "dataflow"}.get(kind_of(runner))
        fix = f"pip install 'alternator-migrate[{extra}]'" if extra else "check the runner's class path"
        raise ConfigError(f"runner {runner} cannot be loaded ({exc}); {fix}") from None
    except (ValueError, AttributeError):
        raise ConfigError(f"runner {runner} is not a Beam runner; use DirectRunner (the default), DataflowRunner or "
                          f"dask") from None


class _Verdicts:
    """Options Beam found good, kept by a digest of what decides the verdict: the options,
    the versions of Beam and of its Dask runner, and this module's own source. Kept in the
    user's cache folder ($XDG_CACHE_HOME, else ~/.cache), one small JSON file; a cache that
    cannot be read or written only means Beam checks again."""

    LIMIT = 64  # option sets kept, the latest

    def __init__(self) -> None:
        self._here: dict[str, CheckedOptions] = {}

    @staticmethod
    def _path() -> Path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "alternator-migrate" / "checked-options.json"

    def _read(self) -> dict:
        try:
            found = json.loads(self._path().read_text(encoding="utf-8"))
            return found if isinstance(found, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key: str) -> CheckedOptions | None:
        if key not in self._here:
            found = self._read().get(key)
            if not isinstance(found, dict):
                return None
            try:
                self._here[key] = CheckedOptions(str(found["runner"]), bool(found["streaming"]),
                                                 tuple((str(option), str(path)) for option, path in found["files"]))
            except (KeyError, TypeError, ValueError):
                return None
        return self._here[key]

    def put(self, key: str, checked: CheckedOptions) -> None:
        self._here[key] = checked
        kept = {k: v for k, v in self._read().items() if k != key}
        kept[key] = dataclasses.asdict(checked)
        path = self._path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
            temporary.write_text(json.dumps(dict(list(kept.items())[-self.LIMIT:])), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            log.debug("cannot keep the options' verdict in %s: %s", path, exc)


_VERDICTS = _Verdicts()


def _verdict_key(config: RunConfig, beam_args: Sequence[str]) -> str:
    """A digest of everything the verdict of `_check_with_beam` depends on (never the values
    themselves: options may hold keys)."""
    def version(distribution: str) -> str | None:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return None

    decided_by = {"options": config.pipeline_options, "args": list(beam_args),
                  "beam": version("apache-beam"), "dask": version("dask"),
                  "check": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()}
    return hashlib.sha256(json.dumps(decided_by, sort_keys=True, default=repr).encode()).hexdigest()


def pipeline_options(config: RunConfig, beam_args: Sequence[str]):
    """The config's pipeline_options, overridden by command-line Beam flags: the job's Beam
    `PipelineOptions`, also those of the launcher's own storage access (Beam's filesystems
    read them too).

    Workers log at WARNING unless asked otherwise: their INFO lines would bury progress.
    Flag names become option names, a runner name Beam does not resolve (`dask`) its class
    path, and the DirectRunner (or no runner) the tool's `runners.LocalRunner`.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions  # noqa: PLC0415

    from pipeline.checks import runners  # noqa: PLC0415 - imports Beam

    dests = _flag_dests()
    options = {"default_sdk_harness_log_level": "WARNING",
               **{dests.get(key, key): value for key, value in config.pipeline_options.items()}}
    given = _given_on_the_command_line(beam_args)  # a keyword would win over its flag in `PipelineOptions`
    result = PipelineOptions(list(beam_args), **{dest: value for dest, value in options.items() if dest not in given})
    standard = result.view_as(StandardOptions)
    standard.runner = resolve_runner(standard.runner)
    runners.use_defaults(result)
    return result


def _given_on_the_command_line(beam_args: Sequence[str]) -> set[str]:
    """The options (dests) that Beam flags after `--` set: they override `pipeline_options`."""
    actions = _beam_parser()._option_string_actions  # noqa: SLF001 - argparse keeps no public map
    flags = (arg.split("=", 1)[0] for arg in beam_args if arg.startswith("--"))
    return {actions[flag].dest for flag in flags if flag in actions}


def prepare(config: RunConfig, beam_args: Sequence[str], *, follow_streams: bool = False,
            pipelines: bool = True) -> RunConfig:
    """What is checked before a run writes anything, after its options (`check_options`): the
    runner (a Dask cluster is checked, and its worker count returned in the config) and the
    storage.

    `follow_streams`: the run will follow the streams, in one streaming pipeline where the
    options say `streaming`. `pipelines` False: the command runs no pipeline on a local
    runner (the local follower, `capture`); then with local state and no export to read,
    there is nothing of Beam's to set up, and Beam is not imported.
    """
    checked = check_options(config, beam_args)
    if not pipelines and checked.local and not buckets.uses_object_storage(config):
        return config
    from apache_beam.options.pipeline_options import StandardOptions  # noqa: PLC0415

    from pipeline.checks import runners  # noqa: PLC0415 - imports Beam

    options = pipeline_options(config, beam_args)
    if follow_streams and options.view_as(StandardOptions).streaming:
        runners.refuse_streaming(options)
    if checked.kind == "dask":
        config = dataclasses.replace(config, cluster_workers=runners.check_cluster(options))
        local = [key for key, path in buckets.storage_keys(config).items() if "://" not in path]
        if local and not runners.cluster_is_here(options):
            log.warning("%s is a local folder, but the Dask scheduler is on another machine: every worker must see "
                        "the same folder (a shared file system), or use s3:// or gs://", " and ".join(local))
    buckets.open_storage(config, options, remote_workers=checked.kind == "dataflow")
    return config


def runs_locally(options) -> bool:
    """Whether the runner of these `PipelineOptions` is one of Beam's local runners (the
    default): its workers share this machine, and it holds a grouping's data in memory
    instead of spilling it."""
    from apache_beam.options.pipeline_options import StandardOptions  # noqa: PLC0415

    return kind_of(options.view_as(StandardOptions).runner) in _LOCAL_RUNNERS


def read_counters(result) -> dict[str, dict[str, int]]:
    """This tool's Beam counters as {table: {figure: value}} (committed where the runner has them)."""
    from apache_beam.metrics import MetricsFilter  # noqa: PLC0415

    from transforms import metrics  # noqa: PLC0415 - imports Beam

    figures: dict[str, dict[str, int]] = {}
    query = result.metrics().query(MetricsFilter().with_namespace(metrics.NAMESPACE))
    for counter in query["counters"]:
        table, name = metrics.parse(counter.key.metric.name)
        value = counter.committed if counter.committed is not None else counter.attempted
        figures.setdefault(table, {}).setdefault(name, 0)
        figures[table][name] += int(value or 0)
    return figures


def run_pipeline(pipeline) -> dict[str, dict[str, int]] | None:
    """Run a built Beam pipeline to the end; its counters, or None where the runner keeps none (Dask)."""
    from pipeline.checks import runners  # noqa: PLC0415 - imports Beam

    result = pipeline.run()
    runners.wait(result, pipeline.options)
    try:
        return read_counters(result)
    except NotImplementedError:
        return None
