"""`--metrics-port`: a run's figures as Prometheus text at /metrics, and its health at /healthz.

The launcher serves them (workers of a remote runner cannot be scraped from here) from
what it already sees: the bulk copy's checkpoints and dead-letter files while it runs and
Beam's counters at its end, the local follower's table status while it replicates, a
round's figures after each round. Figures are per table (label `table`, the source
table's name); a figure not known yet (a lag before the first read) has no sample.

/healthz answers 200 while the run is healthy and 503 once a shard stopped or the run
failed (with the reason as text), until the process ends.

`--metrics-file PATH` writes the same figures, as they are when the command ends (also
when it fails), to PATH in the node-exporter textfile collector's format: a batch run
often ends before a scrape would see its last figures.

`prometheus_client` writes the exposition format (and the textfile, atomically); this
module only holds the latest figures (a custom collector reads them at scrape time, so
counters are the launcher's own totals and never drift from the summary it prints).
"""
from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import os
import threading
import time
from typing import Iterator, Mapping, Sequence
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer

from pipeline.output.figures import SERVED
from transforms.errors import ExitCode, MigrateError

__all__ = ["GAUGES", "RunMetrics", "check_metrics_file", "serve_metrics"]

PREFIX = "alternator_migrate_"
#: Gauges: figure -> help text.
GAUGES = {
    "replication_lag_seconds": "Seconds since every change older than it was applied (absent while unknown).",
    "open_shards": "Stream shards still open.",
    "segments_done": "Scan segments (or export data files) of the bulk copy whose every page is written.",
    "segments_total": "Scan segments (or export data files) of the bulk copy.",
}
#: validate's counts per table (label `kind`), as gauges: a run's latest verdict.
FINDING_KINDS = ("matched", "missing", "extra", "different", "lagging", "expired", "over_400kb")


def _version() -> str:
    try:
        return importlib.metadata.version("alternator-migrate")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def _blank() -> dict[str, float | None]:
    """A table's figures before any is known: counters at 0, gauges without a sample."""
    return {**dict.fromkeys(SERVED, 0), **dict.fromkeys(GAUGES)}


class RunMetrics:
    """The latest figures of a run, per table, and its health; safe to update from any thread.

    Args:
        tables: source tables that get a sample of every counter from the start (others get
            theirs with their first figures).
    """

    def __init__(self, tables: Sequence[str] = ()):
        self._lock = threading.Lock()
        self._figures: dict[str, dict[str, float | None]] = {table: _blank() for table in tables}
        self._targets: dict[str, str] = {}
        self._findings: dict[str, dict[str, int]] = {}
        self._problem: str | None = None
        self.started = time.time()

    def add_tables(self, targets: Mapping[str, str]) -> None:
        """The run's tables (source -> target): each gets every counter from the start, and
        its samples the label `target`."""
        with self._lock:
            self._targets.update(targets)
            for table in targets:
                self._figures.setdefault(table, _blank())

    def set(self, table: str, **figures: float | None) -> None:
        """Replace some of a table's figures (a served `Figure`'s value or a name from GAUGES; None: unknown)."""
        unknown = set(figures) - set(SERVED) - set(GAUGES)
        if unknown:
            raise ValueError(f"no such figure: {', '.join(sorted(unknown))}")
        with self._lock:
            self._figures.setdefault(table, _blank()).update(figures)

    def set_findings(self, table: str, counts: Mapping[str, int | None]) -> None:
        """validate's counts of a table (FINDING_KINDS; None: not counted, no sample)."""
        with self._lock:
            self._findings[table] = {kind: counts[kind] for kind in FINDING_KINDS if counts.get(kind) is not None}

    def fail(self, reason: str) -> None:
        """From now on /healthz answers 503 with `reason` (the first reason stays)."""
        with self._lock:
            self._problem = self._problem or reason

    @property
    def problem(self) -> str | None:
        return self._problem

    def collect(self):
        """The figures as metric families (prometheus_client's collector interface)."""
        with self._lock:
            figures = {table: dict(values) for table, values in self._figures.items()}
            findings = {table: dict(counts) for table, counts in self._findings.items()}
            targets = dict(self._targets)
            problem = self._problem
        info = GaugeMetricFamily(PREFIX + "build_info", "The tool's version (value 1).", labels=["version"])
        info.add_metric([_version()], 1)
        yield info
        yield GaugeMetricFamily(PREFIX + "start_time_seconds", "When the command started, in Unix seconds.",
                                value=self.started)
        yield GaugeMetricFamily(PREFIX + "healthy", "1 while the run is healthy, 0 once it failed (as /healthz).",
                                value=0 if problem else 1)
        families = [(CounterMetricFamily, figure, figure.metric, figure.metric_help) for figure in SERVED]
        families += [(GaugeMetricFamily, name, name, help_text) for name, help_text in GAUGES.items()]
        for kind, key, name, help_text in families:
            family = kind(PREFIX + name, help_text, labels=["table", "target"])
            for table, values in figures.items():
                if values[key] is not None:
                    family.add_metric([table, targets.get(table, table)], values[key])
            yield family
        family = GaugeMetricFamily(PREFIX + "validation_items", "Items of validate's latest verdict, per kind "
                                   "(matched, missing, extra, different, lagging, expired, over_400kb).",
                                   labels=["table", "target", "kind"])
        for table, counts in findings.items():
            for kind, value in counts.items():
                family.add_metric([table, targets.get(table, table), kind], value)
        yield family

    def write_textfile(self, path: str) -> None:
        """The figures as they are now, to `path` in the node-exporter textfile format (whole or not at all)."""
        write_to_textfile(path, _registry(self))


def _registry(metrics: RunMetrics) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return registry


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name; scrapes are not news
        pass


def _app(metrics: RunMetrics):
    prometheus = make_wsgi_app(_registry(metrics))

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return prometheus(environ, start_response)
        if path == "/healthz":
            problem = metrics.problem
            start_response("503 Service Unavailable" if problem else "200 OK",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [(f"failing: {problem}\n" if problem else "ok\n").encode("utf-8")]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /healthz\n"]

    return app


def check_metrics_file(path: str | None) -> None:
    """Fail before the run, not after it, when `--metrics-file` cannot be written."""
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise MigrateError(f"--metrics-file {path}: the folder {os.path.dirname(os.path.abspath(path))} does not "
                           f"exist", ExitCode.USAGE)


@contextlib.contextmanager
def serve_metrics(host: str, port: int | None, tables: Sequence[str] = (), *,
                  textfile: str | None = None) -> Iterator[RunMetrics | None]:
    """Serve a run's metrics on host:port for the duration of the block, and write them to
    `textfile` when it ends (neither: nothing is kept, yields None). The port is bound on
    entry, before the run starts: a port in use is a `MigrateError` (exit 2). An error
    leaving the block marks the run failed."""
    if port is None and textfile is None:
        yield None
        return
    check_metrics_file(textfile)
    metrics = RunMetrics(tables)
    with contextlib.ExitStack() as stack:
        if port is not None:
            stack.enter_context(_serving(metrics, host, port))
        if textfile is not None:  # once the port is bound: a run that never started writes nothing
            stack.callback(lambda: metrics.write_textfile(textfile))
        try:
            yield metrics
        except BaseException as exc:
            metrics.fail(f"the run ended with {type(exc).__name__}")
            raise


@contextlib.contextmanager
def _serving(metrics: RunMetrics, host: str, port: int) -> Iterator[None]:
    try:
        server = make_server(host, port, _app(metrics), server_class=ThreadingWSGIServer,
                             handler_class=_QuietHandler)
    except OSError as exc:
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc.strerror}"
        raise MigrateError(f"--metrics-port {port}: {host}:{port} {reason}; choose another port "
                           f"(or --metrics-host)", ExitCode.USAGE) from None
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
