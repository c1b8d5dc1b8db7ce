"""`WriteTables` after `ScanTables`: the target table ends up holding the source's items."""
from __future__ import annotations

import pytest
from apache_beam.testing import test_pipeline

from pipeline.checks.runners import LOCAL_RUNNER
from testbed import seed
from tests.support.cli_runs import unique
from tests.transforms.items import COUNT, KEY_NAMES, KEYED_TABLE
from transforms.dynamo.writer import WriterSettings
from transforms.scan import ScanSettings, ScanTables, SegmentSpec
from transforms.state import bulk_checkpoints
from transforms.state.dead_letters import count_dead_letters
from transforms.state.storage import StorageOptions
from transforms.table_pair import TablePair
from transforms.write import WriteTables

pytestmark = pytest.mark.integration

SEGMENTS = 3


def test_the_target_holds_the_source_items_and_the_checkpoints_count_them(source, target, source_table,
                                                                          alternator_clean, tmp_path):
    target_table = unique("transforms_written")
    seed.create_table(alternator_clean.url, target_table, **KEYED_TABLE)
    checkpoints, dead_letters = str(tmp_path / "checkpoints"), str(tmp_path / "dead-letter")
    bulk_checkpoints.start_fresh(checkpoints, source_table, SEGMENTS)
    pairs = {source_table: TablePair(source_table, target_table, KEY_NAMES)}

    with test_pipeline.TestPipeline(runner=LOCAL_RUNNER) as p:
        _ = (p
             | ScanTables(source, [SegmentSpec(source_table, s, SEGMENTS) for s in range(SEGMENTS)],
                          ScanSettings(page_size=50))
             | WriteTables(target, pairs, WriterSettings(max_items_per_batch=25, concurrency=4),
                           checkpoint_dir=checkpoints, dead_letter_dir=dead_letters, storage=StorageOptions()))

    assert seed.assert_same_items(source.endpoint, alternator_clean.url, source_table, target_table) == COUNT
    copied = bulk_checkpoints.progress(checkpoints, source_table)
    assert (copied.segments_done, copied.items) == (SEGMENTS, COUNT)
    assert count_dead_letters(dead_letters) == {}
