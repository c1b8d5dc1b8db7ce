"""Which change of a key counts when incremental exports overlap: the latest write, then the
later export, then the later line (run through Beam's combine, on the tool's local runner)."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.checks.runners import LOCAL_RUNNER
from transforms.exports.changes import _LatestChange


def _change(micros: int, export: int, line: int, image: bytes | None) -> tuple:
    return micros, export, 0, line, {"pk": {"S": "k"}}, image


def test_the_latest_write_wins_then_the_later_export_then_the_later_line():
    changes = [
        (("t", "a"), _change(200, 0, 5, b"a: newest write, earlier export")),
        (("t", "a"), _change(100, 1, 0, b"a: older write, later export")),
        (("t", "b"), _change(100, 0, 0, b"b: earlier export")),
        (("t", "b"), _change(100, 1, 0, None)),  # deleted in the later export, same time
        (("t", "c"), _change(100, 0, 1, b"c: first line")),
        (("t", "c"), _change(100, 0, 2, b"c: second line")),
        (("u", "a"), _change(1, 0, 0, b"another table's key a")),
    ]
    with test_pipeline.TestPipeline(runner=LOCAL_RUNNER) as p:
        latest = (p | beam.Create(changes) | beam.CombinePerKey(_LatestChange())
                  | beam.MapTuple(lambda key, change: (key, change[5])))
        assert_that(latest, equal_to([(("t", "a"), b"a: newest write, earlier export"), (("t", "b"), None),
                                      (("t", "c"), b"c: second line"), (("u", "a"), b"another table's key a")]))
