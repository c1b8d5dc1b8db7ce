"""Which of the figures (`transforms.metrics.Figure`, named once there) a bulk copy reports
and which `--metrics-port` serves as Prometheus counters."""
from __future__ import annotations

from transforms.metrics import Figure

#: The figures served as Prometheus counters.
SERVED = tuple(figure for figure in Figure if figure.metric_help is not None)
#: The bulk copy's figures (replication's own is the changes applied).
BULK = tuple(figure for figure in Figure if figure not in (Figure.CHANGES_APPLIED, Figure.CHANGES_READ))
