"""The tool's Beam metric names: one namespace, `<table>.<figure>` per counter, each figure
named once by `Figure`, which the launcher's report and Prometheus metrics use too.

Validation scans a source and a target table that may share a name, so a scan's
counters can carry a side prefix (`source:` / `target:`). The launcher reads the
counters back with `parse`, which undoes `counter_name`.
"""
from __future__ import annotations

from enum import Enum

from apache_beam.metrics import Metrics

NAMESPACE = "alternator-migrate"


class Figure(str, Enum):
    """A figure, with what `--metrics-port` serves it as: its counter's name (without the
    prefix and `_total`) and help text; a figure without help text is not served."""

    # In the order the metrics are served.
    ITEMS_READ = ("items_read", "Items the bulk copy read (while it runs: items its checkpoints record done; at its "
                                "end Beam's count).")
    BYTES_READ = ("bytes_read", "Bytes of items the bulk copy read, as Arrow data (while it runs: from its "
                                "checkpoints).")
    BYTES_WRITTEN = ("bytes_written", "Bytes of items the bulk copy wrote or dead-lettered, as Arrow data (known at "
                                      "its end).")
    ITEMS_WRITTEN = ("items_written", "Items the bulk copy wrote (while it runs: items its checkpoints record done, "
                                      "less dead letters; at its end Beam's count).")
    CHANGES_APPLIED = ("changes_applied", "Stream changes applied to the target by this process.")
    WRITE_RETRIES = ("write_retries", "Write requests retried (bulk: known at the end of the copy).")
    ITEMS_DEAD_LETTERED = ("items_dead_lettered", "Writes that failed after every retry and went to the dead-letter "
                                                  "folder.", "dead_letters")
    READ_RETRIES = "read_retries"
    CHECKPOINT_WRITES = "checkpoint_writes"
    ITEMS_EXPIRED = "items_expired"
    CHANGES_READ = "changes_read"  # an incremental export's changes

    def __new__(cls, value: str, metric_help: str | None = None, metric: str | None = None):
        figure = str.__new__(cls, value)
        figure._value_ = value
        figure.metric_help = metric_help
        figure.metric = metric or value
        return figure


def counter_name(table: str, figure: Figure, side: str = "") -> str:
    return f"{side}{table}.{figure.value}"


def counter(table: str, figure: Figure, side: str = ""):
    """The Beam counter of one figure of one table (call it on Beam's own thread)."""
    return Metrics.counter(NAMESPACE, counter_name(table, figure, side))


def parse(name: str) -> tuple[str, str]:
    """(table with any side prefix, figure) of a counter name."""
    table, _, figure = name.rpartition(".")
    return table, figure
