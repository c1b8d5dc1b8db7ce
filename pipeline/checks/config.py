"""Load and validate a run config (YAML) into plain, picklable objects.

This is the only module that reads the YAML. Everything downstream gets the frozen
dataclasses below, so Beam transforms never see the config file. Errors are
`ConfigError` with a message that names the key and the fix; the CLI turns them into
exit code 2.
"""
from __future__ import annotations

import difflib
import os
import re
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from transforms.dynamo.rate_limit import share_of
from transforms.dynamo.specs import Credentials, SourceSpec, TargetSpec, TlsSettings
from transforms.errors import MigrateError
from transforms.settings import MAX_ITEM_BYTES, ScanSettings, WriterSettings


MAX_PAGES_IN_FLIGHT = 1000


class ConfigError(MigrateError):
    """A user mistake in the config: the message says what and how to fix it."""


@dataclass(frozen=True)
class TableSpec:
    source: str
    target: str
    renames: Mapping[str, str] = field(default_factory=dict)
    create: str = "if_missing"
    export: str | None = None  # a FULL DynamoDB export's folder: read instead of scanning the table
    incremental_exports: tuple[str, ...] = ()  # applied after `export`, in this order
    parquet: str | None = None  # a folder of `alternator-migrate export` (one table's): read instead of scanning
    skip_expired: bool = False  # leave out items the source's TTL would delete (transforms.items.expiry)
    kinesis_stream_arn: str | None = None  # follow this Kinesis data stream instead of the DynamoDB stream


@dataclass(frozen=True)
class ScanConfig:
    """The `scan:` section as the user wrote it: job-wide figures. Each worker gets a
    `ScanSettings` from it (`RunConfig.scan_settings`: the read rate split over the workers,
    `segments` used by the launcher only); the defaults are the workers' own. Fields are
    named as the YAML keys."""

    segments: int | None = None  # None = auto
    page_size: int = ScanSettings.page_size
    consistent_read: bool = ScanSettings.consistent_read
    max_read_units_per_second: float | None = None
    max_attempts: int = ScanSettings.max_attempts
    pages_in_flight: int = ScanSettings.pages_in_flight  # per worker


@dataclass(frozen=True)
class WriteConfig:
    """The `write:` section as the user wrote it: job-wide figures. Each worker gets a
    `WriterSettings` from it (`RunConfig.writer_settings`: the batch size settled for the
    target, the write rate split over the workers); the defaults are the workers' own.
    Fields are named as the YAML keys."""

    max_items_per_batch: int | None = None  # None = 25 (endpoint) / 100 (alternator)
    concurrency: int = WriterSettings.concurrency
    max_items_per_second: float | None = None
    max_attempts: int = WriterSettings.max_attempts


@dataclass(frozen=True)
class RunConfig:
    source: SourceSpec
    target: TargetSpec
    tables: tuple[TableSpec, ...]
    scan: ScanConfig
    write: WriteConfig
    checkpoint_dir: str
    dead_letter_dir: str
    pipeline_options: Mapping[str, Any]
    checkpoint_interval_seconds: float = 5.0
    cluster_workers: int | None = None  # worker threads found on the cluster (Dask), not in the YAML

    @property
    def workers(self) -> int:
        """The most workers the job may run on (`pipeline_options`, else the cluster's), which
        job-wide rates are split over."""
        for key in ("max_num_workers", "num_workers", "direct_num_workers"):
            value = self.pipeline_options.get(key)
            if isinstance(value, int) and value > 0:
                return value
        return self.cluster_workers or 1

    @property
    def task_holds_output(self) -> bool:
        """Whether a task's output is held in memory until the task ends: on Dask (the only
        runner with `cluster_workers`), which hands a partition's output on as a list."""
        return self.cluster_workers is not None

    @property
    def files_in_flight(self) -> int:
        """Export data files a worker copies at once: its pages in flight, or one file where a
        task holds its output (a group of whole files would be in memory at once)."""
        return 1 if self.task_holds_output else self.scan.pages_in_flight

    def scan_settings(self) -> ScanSettings:
        """What each worker's scans use: the read rate is its share of the job's."""
        return ScanSettings(page_size=self.scan.page_size, consistent_read=self.scan.consistent_read,
                            max_read_units_per_second=share_of(self.scan.max_read_units_per_second, self.workers),
                            max_attempts=self.scan.max_attempts, pages_in_flight=self.scan.pages_in_flight,
                            workers=self.workers)

    def writer_settings(self) -> WriterSettings:
        """What each worker's writer uses: the write rate is its share of the job's, and the
        batch size, unless the config sets it, the target's limit (DynamoDB 25, Alternator 100)."""
        batch = self.write.max_items_per_batch or (100 if self.target.alternator_seeds else 25)
        return WriterSettings(max_items_per_batch=batch, concurrency=self.write.concurrency,
                              max_attempts=self.write.max_attempts,
                              max_items_per_second=share_of(self.write.max_items_per_second, self.workers),
                              max_item_bytes=MAX_ITEM_BYTES if self.target.is_dynamodb else None)


_SECRET_KEYS = frozenset({"secret_access_key", "session_token", "external_id"})
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: Any, where: str) -> Any:
    """Replace ${VAR} with the environment's value, recursively; a missing VAR is an error."""
    if isinstance(value, str):
        def lookup(match: re.Match) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where}: environment variable {name} is not set; "
                                  f"export it or write the value in the config")
            return os.environ[name]
        return _ENV_REF.sub(lookup, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


class _Section:
    """Reads one mapping of the YAML, remembering which keys were used.

    `done()` rejects any key not read, so a typo is an error that names it.
    """

    def __init__(self, raw: Any, where: str):
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{where or 'the config'} must be a mapping of keys, got {type(raw).__name__}")
        self.raw, self.where, self.used = raw, where, set()

    def get(self, key: str, default: Any = None, *, required: bool = False, kind: type | tuple = object) -> Any:
        self.used.add(key)
        if key not in self.raw or self.raw[key] is None:
            if required:
                raise ConfigError(f"missing required key {self._path(key)}; see configs/local.yaml for an example")
            return default
        value = self.raw[key]
        if kind is not object and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
            shown = f"a hidden {type(value).__name__}" if key in _SECRET_KEYS else repr(value)  # never echo a secret
            raise ConfigError(f"{self._path(key)} must be {names}, got {shown}")
        return value

    def positive(self, key: str, default: Any, kind: type | tuple = int) -> Any:
        value = self.get(key, default, kind=kind)
        if value is not None and value <= 0:
            raise ConfigError(f"{self._path(key)} must be greater than 0, got {value!r}")
        return value

    def section(self, key: str, *, required: bool = False) -> "_Section":
        return _Section(self.get(key, required=required), self._path(key))

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise ConfigError(f"unknown key {self._path(unknown[0])}; check its spelling "
                              f"(known keys here: {', '.join(sorted(self.used))})")

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key


_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


def _credentials(section: _Section) -> Credentials | None:
    if not section.raw:
        section.done()
        return None
    key_id = section.get("access_key_id", kind=str)
    secret = section.get("secret_access_key", kind=str)
    session_token = section.get("session_token", kind=str)
    profile = section.get("profile", kind=str)
    role_arn = section.get("role_arn", kind=str)
    external_id = section.get("external_id", kind=str)
    session_name = section.get("session_name", "alternator-migrate", kind=str)
    duration = section.get("duration_seconds", 3600, kind=int)
    section.done()
    if not 900 <= duration <= 43200:
        raise ConfigError(f"{section.where}.duration_seconds must be 900..43200 (STS's limits), got {duration}")
    if profile and (key_id or secret):
        raise ConfigError(f"{section.where}: give either profile or access_key_id/secret_access_key, not both")
    if bool(key_id) != bool(secret):
        raise ConfigError(f"{section.where}: access_key_id and secret_access_key go together; set both")
    if role_arn and not _ROLE_ARN.match(role_arn):
        raise ConfigError(f"{section.where}.role_arn must be a role's ARN like "
                          f"arn:aws:iam::123456789012:role/migration, got {role_arn!r}")
    if (external_id or {"session_name", "duration_seconds"} & set(section.raw)) and not role_arn:
        raise ConfigError(f"{section.where}: external_id, session_name and duration_seconds go with role_arn")
    if not (profile or key_id or role_arn):
        without = ("to use the AWS default chain" if section.where.startswith("source") else
                   "for unsigned requests (the AWS default chain at an AWS DynamoDB endpoint)")
        raise ConfigError(f"{section.where}: set access_key_id and secret_access_key, or profile, or role_arn, "
                          f"or remove credentials {without}")
    return Credentials(key_id, secret, session_token, profile, role_arn, external_id, session_name, duration)


def _endpoint(section: _Section, key: str) -> str | None:
    url = section.get(key, kind=str)
    if url is not None and not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"{section._path(key)} must be a URL like http://127.0.0.1:8000, got {url!r}")
    return url


def _tls(section: _Section, base_dir: Path | None) -> TlsSettings:
    """`ca_file` (a PEM bundle, read now so remote workers get its text) and `insecure_skip_verify`."""
    ca_file = section.get("ca_file", kind=str)
    skip = section.get("insecure_skip_verify", False, kind=bool)
    if ca_file and skip:
        raise ConfigError(f"{section.where}: give either ca_file or insecure_skip_verify, not both")
    if not ca_file:
        return TlsSettings(verify=not skip)
    path = Path(ca_file).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        pem = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{section._path('ca_file')}: cannot read {path}: "
                          f"{getattr(exc, 'strerror', None) or 'not a PEM text file'}") from None
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError):
        raise ConfigError(f"{section._path('ca_file')}: {path} holds no PEM certificate "
                          f"(-----BEGIN CERTIFICATE-----)") from None
    return TlsSettings(ca_pem=pem)


def _source(section: _Section, base_dir: Path | None) -> SourceSpec:
    spec = SourceSpec(
        region=section.get("region", "us-east-1", kind=str),
        endpoint=_endpoint(section, "endpoint"),
        credentials=_credentials(section.section("credentials")),
        streams_endpoint=_endpoint(section, "streams_endpoint"),
        tls=_tls(section, base_dir),
        stream_retention_hours=section.positive("stream_retention_hours", 24.0, (int, float)),
        kinesis_endpoint=_endpoint(section, "kinesis_endpoint"),
    )
    section.done()
    return spec


def _target(section: _Section, base_dir: Path | None) -> TargetSpec:
    region = section.get("region", "us-east-1", kind=str)
    endpoint = _endpoint(section, "endpoint")
    credentials = _credentials(section.section("credentials"))
    tls = _tls(section, base_dir)
    streams = section.get("streams", False, kind=bool)
    alt = section.section("alternator")
    section.done()
    if alt.raw and endpoint:
        raise ConfigError("target: give either target.alternator or target.endpoint, not both")
    if not alt.raw and not endpoint:
        raise ConfigError("target: set target.alternator (a ScyllaDB Alternator cluster) "
                          "or target.endpoint (one DynamoDB-API URL)")
    if not alt.raw:
        alt.done()
        return TargetSpec(region=region, endpoint=endpoint, credentials=credentials, tls=tls, streams=streams)
    if credentials and (credentials.profile or credentials.role_arn):
        raise ConfigError("target.credentials: Alternator takes access_key_id/secret_access_key, not a profile "
                          "or a role")
    seeds = alt.get("seeds", required=True, kind=list)
    if not seeds or not all(isinstance(s, str) and s for s in seeds):
        raise ConfigError("target.alternator.seeds must be a non-empty list of host names or IPs")
    port = alt.get("port", 8000, kind=int)
    if not 0 < port < 65536:
        raise ConfigError(f"target.alternator.port must be 1-65535, got {port}")
    scheme = alt.get("scheme", "http", kind=str)
    if scheme not in ("http", "https"):
        raise ConfigError(f"target.alternator.scheme must be http or https, got {scheme!r}")
    datacenter = alt.get("datacenter", kind=str)
    rack = alt.get("rack", kind=str)
    alt.done()
    if rack and not datacenter:
        raise ConfigError("target.alternator.rack needs target.alternator.datacenter: "
                          "a rack is only unique within its datacenter")
    return TargetSpec(region=region, credentials=credentials, alternator_seeds=tuple(seeds),
                      alternator_port=port, alternator_scheme=scheme,
                      datacenter=datacenter, rack=rack, tls=tls, streams=streams)


# A Kinesis data stream's ARN (Kinesis API reference, StreamARN: arn:aws.*:kinesis:.*:\d{12}:stream/\S+).
_KINESIS_STREAM_ARN = re.compile(r"^arn:aws[a-z-]*:kinesis:(?P<region>[a-z0-9-]+):\d{12}:stream/[A-Za-z0-9_.-]{1,128}$")


def _kinesis_stream_arn(section: _Section, region: str) -> str | None:
    """`kinesis_stream_arn`: a Kinesis data stream of the source's region, where DynamoDB can send a
    table's changes ("same AWS account and AWS Region as your table", the DynamoDB developer guide's
    Kinesis Data Streams chapter)."""
    arn = section.get("kinesis_stream_arn", kind=str)
    if arn is None:
        return None
    found = _KINESIS_STREAM_ARN.match(arn)
    if found is None:
        raise ConfigError(f"{section._path('kinesis_stream_arn')} must be a Kinesis data stream's ARN like "
                          f"arn:aws:kinesis:us-east-1:123456789012:stream/orders-changes, got {arn!r}")
    if found.group("region") != region:
        raise ConfigError(f"{section._path('kinesis_stream_arn')} is in {found.group('region')}, but the source is "
                          f"in {region}: DynamoDB sends a table's changes only to a Kinesis data stream of its own "
                          f"region; give that stream's ARN")
    return arn


def _tables(raw: Any, base_dir: Path | None, region: str) -> tuple[TableSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("tables must be a non-empty list, e.g. tables: [{source: MyTable}]")
    specs = []
    for i, entry in enumerate(raw):
        if isinstance(entry, str):
            entry = {"source": entry}
        section = _Section(entry, f"tables[{i}]")
        source = section.get("source", required=True, kind=str)
        renames = section.get("renames", {}, kind=dict)
        if not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in renames.items()):
            raise ConfigError(f"tables[{i}].renames must map attribute names to new names")
        if len(set(renames.values())) != len(renames):
            raise ConfigError(f"tables[{i}].renames maps two attributes to the same name")
        create = section.get("create", "if_missing", kind=str)
        if create not in ("if_missing", "never"):
            raise ConfigError(f"tables[{i}].create must be if_missing or never, got {create!r}")
        export = section.get("export", kind=str)
        incremental = section.get("incremental_exports", [], kind=list)
        if not all(isinstance(path, str) and path for path in incremental):
            raise ConfigError(f"tables[{i}].incremental_exports must be a list of export folders (s3://...)")
        parquet = section.get("parquet", kind=str)
        if parquet and export:
            raise ConfigError(f"tables[{i}]: give either export (a DynamoDB export) or parquet, not both")
        if incremental and not export:
            raise ConfigError(f"tables[{i}].incremental_exports go on top of a full export: set tables[{i}].export "
                              f"too")
        specs.append(TableSpec(source=source, target=section.get("target", source, kind=str),
                               renames=dict(renames), create=create,
                               export=_local_or_uri(export, base_dir) if export else None,
                               incremental_exports=tuple(_local_or_uri(path, base_dir) for path in incremental),
                               parquet=_local_or_uri(parquet, base_dir) if parquet else None,
                               skip_expired=section.get("skip_expired", False, kind=bool),
                               kinesis_stream_arn=_kinesis_stream_arn(section, region)))
        section.done()
    sources = [t.source for t in specs]
    targets = [t.target for t in specs]
    for names, what in ((sources, "source"), (targets, "target")):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"tables: {what} table {dupes[0]} is listed twice")
    return tuple(specs)


def _scan(section: _Section) -> ScanConfig:
    segments = section.get("segments", "auto", kind=(str, int))
    if segments == "auto":
        segments = None
    elif isinstance(segments, (str, bool)) or not 1 <= segments <= 1_000_000:
        raise ConfigError(f"scan.segments must be auto or an integer 1..1000000, got {segments!r}")
    page_size = section.positive("page_size", ScanConfig.page_size)
    settings = ScanConfig(
        segments=segments,
        page_size=page_size,
        consistent_read=section.get("consistent_read", ScanConfig.consistent_read, kind=bool),
        max_read_units_per_second=section.positive("max_read_units_per_second", None, (int, float)),
        max_attempts=section.positive("max_attempts", ScanConfig.max_attempts),
        pages_in_flight=section.positive("pages_in_flight", ScanConfig.pages_in_flight),
    )
    if settings.pages_in_flight > MAX_PAGES_IN_FLIGHT:
        raise ConfigError(f"scan.pages_in_flight is {settings.pages_in_flight}, at most {MAX_PAGES_IN_FLIGHT}: each "
                          f"page in flight is a connection and up to two pages held in memory per worker")
    section.done()
    return settings


def _write(section: _Section, alternator: bool) -> WriteConfig:
    batch = section.positive("max_items_per_batch", None)
    limit = 100 if alternator else 25
    if batch is not None and batch > limit:
        raise ConfigError(f"write.max_items_per_batch is {batch}, but this target accepts at most {limit} "
                          f"items per BatchWriteItem")
    settings = WriteConfig(
        max_items_per_batch=batch,
        concurrency=section.positive("concurrency", WriteConfig.concurrency),
        max_items_per_second=section.positive("max_items_per_second", None, (int, float)),
        max_attempts=section.positive("max_attempts", WriteConfig.max_attempts),
    )
    section.done()
    return settings


def parse_config(raw: Any, *, base_dir: Path | None = None) -> RunConfig:
    """Validate a parsed YAML document; `base_dir` anchors relative local paths."""
    top = _Section(_expand_env(raw, "config"), "")
    source = _source(top.section("source", required=True), base_dir)
    target = _target(top.section("target", required=True), base_dir)
    tables = _tables(top.get("tables", required=True), base_dir, source.region)
    scan = _scan(top.section("scan"))
    write = _write(top.section("write"), bool(target.alternator_seeds))
    checkpoint_dir = _local_or_uri(top.get("checkpoint_dir", "./checkpoints", kind=str), base_dir)
    dead_letter_dir = _local_or_uri(top.get("dead_letter_dir", "./dead-letter", kind=str), base_dir)
    checkpoint_interval = top.positive("checkpoint_interval_seconds", 5.0, (int, float))
    options = top.get("pipeline_options", {}, kind=dict)
    top.done()
    return RunConfig(source, target, tables, scan, write, checkpoint_dir, dead_letter_dir, dict(options),
                     float(checkpoint_interval))


def select_tables(config: RunConfig, names: str) -> RunConfig:
    """The config with only the tables named in `names` (source names, comma-separated: the
    `--tables` option), in the config's order; a name the config does not list is a
    `ConfigError` with the closest listed one."""
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    if not chosen:
        raise ConfigError("--tables needs one or more source table names of the config, comma-separated")
    listed = [spec.source for spec in config.tables]
    for name in chosen:
        if name not in listed:
            close = difflib.get_close_matches(name, listed, n=1)
            hint = f"; did you mean {close[0]}?" if close else f" (it lists {', '.join(listed)})"
            raise ConfigError(f"--tables: the config has no source table {name}{hint}")
    return replace(config, tables=tuple(spec for spec in config.tables if spec.source in chosen))


def _local_or_uri(path: str, base_dir: Path | None) -> str:
    """Beam filesystem URIs (gs://, s3://) pass through; local paths become absolute."""
    if "://" in path:
        return path
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return str(p.resolve())


class _UniqueKeysLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that holds a key twice: PyYAML keeps the last
    one silently, so a second `source:` block would quietly replace the first."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class says what is wrong with it
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice (first at line "
                                                                    f"{first}); keep one", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML file; relative paths in it are relative to the current directory."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read config file {path}: it is not UTF-8 text (byte {e.start})") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeysLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as e:
        # Only the problem and its position: str(e) quotes the offending line, which may hold a secret.
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{at}: {getattr(e, 'problem', None) or 'cannot parse'}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping with source, target and tables")
    return parse_config(raw, base_dir=Path.cwd())
