"""The tool's Beam metric names: one namespace, `<table>.<figure>` per counter.

Validation scans a source and a target table that may share a name, so a scan's
counters can carry a side prefix (`source:` / `target:`). The launcher reads the
counters back with `parse`, which undoes `counter_name`.
"""
from __future__ import annotations

from apache_beam.metrics import Metrics

NAMESPACE = "alternator-migrate"


def counter_name(table: str, figure: str, side: str = "") -> str:
    return f"{side}{table}.{figure}"


def counter(table: str, figure: str, side: str = ""):
    """The Beam counter of one figure of one table (call it on Beam's own thread)."""
    return Metrics.counter(NAMESPACE, counter_name(table, figure, side))


def parse(name: str) -> tuple[str, str]:
    """(table with any side prefix, figure) of a counter name."""
    table, _, figure = name.rpartition(".")
    return table, figure
