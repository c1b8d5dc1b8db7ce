"""`CompareTables` and `SampleTables`: a target that differs from the source by known items
yields exactly those findings; a sample reads the share of keys it was asked for."""
from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import BeamAssertException, assert_that, equal_to

from pipeline.checks.runners import LOCAL_RUNNER
from testbed import seed
from tests.support.cli_runs import unique
from tests.transforms.items import COUNT, ITEMS, KEY_NAMES, KEYED_TABLE, key_of
from transforms.compare import CompareTables, SampleTables
from transforms.findings import Findings, Tally
from transforms.items.ddb_json import encode_item
from transforms.scan import ScanSettings, ScanTables, SegmentSpec
from transforms.table_pair import TablePair

pytestmark = pytest.mark.integration

SEGMENTS = 2
MISSING = [ITEMS[3], ITEMS[4]]       # deleted from the target
DIFFERENT = ITEMS[10]                # a nested value changed in the target
EXTRA = {"pk": {"S": "zz-extra"}, "sk": {"N": "0"}, "name": {"S": "only in the target"}}


def _finding(kind: str, item: dict, paths: tuple[str, ...] = ()) -> tuple:
    return kind, json.dumps(encode_item(key_of(item)), sort_keys=True), paths


@pytest.fixture(scope="module")
def damaged_target(alternator, source_table) -> str:
    """A target table holding the source's items but for the known differences."""
    table = unique("transforms_compared")
    seed.create_table(alternator.url, table, **KEYED_TABLE)
    changed = {**DIFFERENT, "doc": {"M": {**DIFFERENT["doc"]["M"], "city": {"S": "Marseille"}}}}
    kept = [changed if item is DIFFERENT else item for item in ITEMS if not any(item is m for m in MISSING)]
    seed.put_items(alternator.url, table, [*kept, EXTRA])
    return table


def _findings(records):
    """(kind, key as JSON, diff paths) of every finding."""
    return (records
            | "Findings" >> beam.FlatMap(lambda r: r.findings if isinstance(r, Findings) else ())
            | "KindKeyPaths" >> beam.Map(lambda f: (f["kind"], json.dumps(f["key"], sort_keys=True),
                                                   tuple(d["path"] for d in f.get("diff", ())))))


def _tallies(records):
    """(figure, total) of every figure tallied."""
    return (records
            | "Tallies" >> beam.Filter(lambda r: isinstance(r, Tally))
            | "FigureCount" >> beam.Map(lambda t: (t.figure, t.count))
            | "Sum" >> beam.CombinePerKey(sum))


def _scan(p, spec, table: str, label: str):
    segments = [SegmentSpec(table, s, SEGMENTS) for s in range(SEGMENTS)]
    return p | label >> ScanTables(spec, segments, ScanSettings(page_size=50), counter_side=f"{label}:")


@pytest.mark.parametrize("spilled", [False, True], ids=["cogroupbykey", "spilled"])
def test_a_comparison_finds_exactly_the_known_differences(source, target, source_table, damaged_target,
                                                          spilled, tmp_path):
    pairs = {source_table: TablePair(source_table, damaged_target, KEY_NAMES)}

    with test_pipeline.TestPipeline(runner=LOCAL_RUNNER) as p:
        pages = (_scan(p, source, source_table, "Source"), _scan(p, target, damaged_target, "Target"))
        records = pages | CompareTables(source, target, pairs, {source_table: 4},
                                        spill_dir=str(tmp_path / "spill") if spilled else None)
        assert_that(_findings(records), equal_to([
            *(_finding("missing", item) for item in MISSING), _finding("extra", EXTRA),
            _finding("different", DIFFERENT, ("doc.city",))]), label="FoundDifferences")
        assert_that(_tallies(records), equal_to([("matched", COUNT - len(MISSING) - 1)]), label="Matched")


def test_a_full_sample_reads_every_source_key(source, target, source_table, damaged_target):
    pairs = {source_table: TablePair(source_table, damaged_target, KEY_NAMES)}

    with test_pipeline.TestPipeline(runner=LOCAL_RUNNER) as p:
        records = _scan(p, source, source_table, "Source") | SampleTables(source, target, pairs, rate=1.0)
        # The extra item is not among the source's keys: a sample cannot see it.
        assert_that(_findings(records), equal_to([*(_finding("missing", item) for item in MISSING),
                                                  _finding("different", DIFFERENT, ("doc.city",))]),
                    label="FoundDifferences")
        assert_that(_tallies(records), equal_to([("sampled", COUNT), ("matched", COUNT - len(MISSING) - 1)]),
                    label="Sampled")


def _sample_of(rate: float):
    """A matcher: `rate` of the keys sampled (within three standard deviations of the binomial
    count), each of them matched or found different."""
    expected, slack = rate * COUNT, 3 * (COUNT * rate * (1 - rate)) ** 0.5

    def check(figures):
        totals = dict(figures)
        sampled, read = totals.get("sampled", 0), totals.get("matched", 0) + totals.get("found", 0)
        if not abs(sampled - expected) <= slack or read != sampled:
            raise BeamAssertException(f"{sampled} keys sampled (expected {expected:g} +- {slack:.0f}), "
                                      f"{read} read: {totals}")
    return check


def test_a_sample_reads_the_share_of_keys_asked_for(source, target, source_table, damaged_target):
    pairs = {source_table: TablePair(source_table, damaged_target, KEY_NAMES)}

    with test_pipeline.TestPipeline(runner=LOCAL_RUNNER) as p:
        records = _scan(p, source, source_table, "Source") | SampleTables(source, target, pairs, rate=0.25)
        found = _findings(records) | "CountFound" >> beam.combiners.Count.Globally()
        figures = (_tallies(records), found | beam.Map(lambda n: ("found", n))) | beam.Flatten()
        assert_that(figures, _sample_of(0.25), label="SampleSize")
