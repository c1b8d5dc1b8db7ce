"""`--metrics-port`: a run's figures as Prometheus text at /metrics, and its health at /healthz.

The launcher serves them (workers of a remote runner cannot be scraped from here) from
what it already sees: the bulk copy's checkpoints and dead-letter files while it runs and
Beam's counters at its end, the local follower's table status while it replicates, a
round's figures after each round. Figures are per table (label `table`, the source
table's name); a figure not known yet (a lag before the first read) has no sample.

/healthz answers 200 while the run is healthy and 503 once a shard stopped or the run
failed (with the reason as text), until the process ends.

`prometheus_client` writes the exposition format; this module only holds the latest
figures (a custom collector reads them at scrape time, so counters are the launcher's
own totals and never drift from the summary it prints).
"""
from __future__ import annotations

import contextlib
import errno
import threading
from typing import Iterator, Sequence
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer

from transforms.errors import ExitCode, MigrateError

__all__ = ["COUNTERS", "GAUGES", "RunMetrics", "serve_metrics"]

PREFIX = "alternator_migrate_"
#: Counters (exposed with `_total`): figure -> help text.
COUNTERS = {
    "items_written": "Items the bulk copy wrote (while it runs: items its checkpoints record done, "
                     "less dead letters; at its end Beam's count).",
    "changes_applied": "Stream changes applied to the target by this process.",
    "write_retries": "Write requests retried (bulk: known at the end of the copy).",
    "dead_letters": "Writes that failed after every retry and went to the dead-letter folder.",
}
#: Gauges: figure -> help text.
GAUGES = {
    "replication_lag_seconds": "Seconds since every change older than it was applied (absent while unknown).",
    "open_shards": "Stream shards still open.",
}


def _blank() -> dict[str, float | None]:
    """A table's figures before any is known: counters at 0, gauges without a sample."""
    return {**dict.fromkeys(COUNTERS, 0), **dict.fromkeys(GAUGES)}


class RunMetrics:
    """The latest figures of a run, per table, and its health; safe to update from any thread.

    Args:
        tables: source tables that get a sample of every counter from the start (others get
            theirs with their first figures).
    """

    def __init__(self, tables: Sequence[str] = ()):
        self._lock = threading.Lock()
        self._figures: dict[str, dict[str, float | None]] = {table: _blank() for table in tables}
        self._problem: str | None = None

    def set(self, table: str, **figures: float | None) -> None:
        """Replace some of a table's figures (names from COUNTERS and GAUGES; None: unknown)."""
        unknown = set(figures) - set(COUNTERS) - set(GAUGES)
        if unknown:
            raise ValueError(f"no such figure: {', '.join(sorted(unknown))}")
        with self._lock:
            self._figures.setdefault(table, _blank()).update(figures)

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
        for kind, names in ((CounterMetricFamily, COUNTERS), (GaugeMetricFamily, GAUGES)):
            for name, help_text in names.items():
                family = kind(PREFIX + name, help_text, labels=["table"])
                for table, values in figures.items():
                    if values[name] is not None:
                        family.add_metric([table], values[name])
                yield family


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name; scrapes are not news
        pass


def _app(metrics: RunMetrics):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    prometheus = make_wsgi_app(registry)

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


@contextlib.contextmanager
def serve_metrics(host: str, port: int | None, tables: Sequence[str] = ()) -> Iterator[RunMetrics | None]:
    """Serve a run's metrics on host:port for the duration of the block (None: no port, nothing
    served, yields None). The port is bound on entry, before the run starts: a port in use is
    a `MigrateError` (exit 2). An error leaving the block marks the run failed."""
    if port is None:
        yield None
        return
    metrics = RunMetrics(tables)
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
        yield metrics
    except BaseException as exc:
        metrics.fail(f"the run ended with {type(exc).__name__}")
        raise
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
