"""`ScanTables`: a table's items come out as `Page`s, read over several segments."""
from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.checks.runners import LOCAL_RUNNER
from tests.transforms.items import ITEMS, page_texts, texts
from transforms.scan import ScanSettings, ScanTables, SegmentSpec

pytestmark = pytest.mark.integration

SEGMENTS = 4
PAGE_SIZE = 25


def _chain(segment_pages) -> tuple[int, bool, bool]:
    """(segment, whether its pages are numbered 0, 1, ... each starting where the one before ended,
    whether it took more than one page)."""
    segment, pages = segment_pages
    pages = sorted(pages, key=lambda page: page.index)
    starts = [page.start_key for page in pages]
    ends = [None] + [page.next_key for page in pages]
    chained = [page.index for page in pages] == list(range(len(pages))) and starts == ends[:-1] and ends[-1] is None
    return segment, chained, len(pages) > 1


def test_every_item_comes_out_once_in_chained_pages_of_every_segment(source, source_table):
    segments = [SegmentSpec(source_table, s, SEGMENTS) for s in range(SEGMENTS)]
    settings = ScanSettings(page_size=PAGE_SIZE, pages_in_flight=2)  # two groups of two segments

    with test_pipeline.TestPipeline(runner=LOCAL_RUNNER) as p:
        pages = p | ScanTables(source, segments, settings)
        assert_that(pages | beam.FlatMap(page_texts), equal_to(texts(ITEMS)), label="Items")
        assert_that(pages | beam.Map(lambda page: page.batch.num_rows > PAGE_SIZE) | beam.Distinct(),
                    equal_to([False]), label="PageSize")
        chains = (pages | beam.Map(lambda page: (page.segment, page)) | beam.GroupByKey() | beam.Map(_chain))
        assert_that(chains, equal_to([(s, True, True) for s in range(SEGMENTS)]), label="Segments")
