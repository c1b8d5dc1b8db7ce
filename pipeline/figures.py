"""The figures a run counts per table, each named once.

A figure's value is the name its Beam counter has in `transforms/` (see transforms/metrics.py)
and its key in the bulk copy's figures; the end-of-run report (pipeline/report.py) and the
Prometheus metrics (pipeline/metrics_server.py) show it under their own, unchanged, names.
"""
from __future__ import annotations

from enum import Enum


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

    def __new__(cls, value: str, metric_help: str | None = None, metric: str | None = None):
        figure = str.__new__(cls, value)
        figure._value_ = value
        figure.metric_help = metric_help
        figure.metric = metric or value
        return figure


#: The figures served as Prometheus counters.
SERVED = tuple(figure for figure in Figure if figure.metric_help is not None)
#: The bulk copy's figures (replication's own is the changes applied).
BULK = tuple(figure for figure in Figure if figure is not Figure.CHANGES_APPLIED)
