"""`ReadExportFiles` over a DynamoDB export on local disk: its items come out as pages of lines."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.checks.runners import LOCAL_RUNNER
from testbed.exports import LocalBucket, write_full_export
from tests.transforms.items import ITEMS, page_texts, texts
from transforms.exports.manifest import read_manifest
from transforms.exports.read import ExportFileSpec, ReadExportFiles, line_key
from transforms.state.storage import StorageOptions

FILES = 3
PAGE_SIZE = 30


def test_the_items_of_an_export_come_out_as_pages_of_lines(tmp_path):
    export = write_full_export(LocalBucket(tmp_path / "s3"), "bucket", "exports", ITEMS, files=FILES)
    data_files = read_manifest(export).files
    specs = [ExportFileSpec("exported", n, len(data_files), data_file) for n, data_file in enumerate(data_files)]

    with test_pipeline.TestPipeline(runner=LOCAL_RUNNER) as p:
        pages = p | ReadExportFiles(specs, StorageOptions(), page_size=PAGE_SIZE)
        assert_that(pages | beam.FlatMap(page_texts), equal_to(texts(ITEMS)), label="Items")
        # Each file is one segment, its pages ranges of PAGE_SIZE lines keyed by line number.
        places = pages | beam.Map(lambda page: (page.segment, page.index, page.start_key, page.next_key))
        lines = len(ITEMS) // FILES  # write_full_export deals the items out evenly
        assert_that(places, equal_to([
            (segment, index, line_key(index * PAGE_SIZE),
             line_key((index + 1) * PAGE_SIZE) if (index + 1) * PAGE_SIZE < lines else None)
            for segment in range(FILES) for index in range(-(-lines // PAGE_SIZE))]), label="Places")
