"""The read side alone: items/s and CPU per item of a segmented Scan of DynamoDB Local
against the data files of a DynamoDB export of the same items (a local folder in AWS's
layout), each into the same Arrow pages, nothing written.

`python -m bench.export_read scan ENDPOINT TABLE SEGMENTS` or `... export FOLDER` runs one
read in a Beam pipeline on the DirectRunner (one process); `main` seeds the table, writes
the export, and takes medians of `rounds` runs, each measured by `measure.run_counted` with an empty read (the pipeline's start-up) subtracted.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import apache_beam as beam

from bench.bulk import create_bench_table, seed_items
from bench.measure import median, per_item_us, run_counted
from testbed import seed
from testbed.exports import LocalBucket, write_full_export
from testbed.servers import REPO_ROOT, DynamoDBLocal

FILES = 8


def _read(pages) -> None:
    _ = pages | "Count" >> beam.Map(lambda page: page.batch.num_rows)


def _run(kind: str, *args: str) -> None:
    from apache_beam.options.pipeline_options import PipelineOptions  # noqa: PLC0415

    from pipeline.checks.runners import LOCAL_RUNNER  # noqa: PLC0415
    from transforms.dynamo.endpoints import Credentials, SourceSpec  # noqa: PLC0415
    from transforms.exports.manifest import read_manifest  # noqa: PLC0415
    from transforms.exports.read import ExportFileSpec, ReadExportFiles  # noqa: PLC0415
    from transforms.scan import ScanSettings, ScanTables, SegmentSpec  # noqa: PLC0415
    from transforms.state.storage import StorageOptions  # noqa: PLC0415

    p = beam.Pipeline(options=PipelineOptions([], runner=LOCAL_RUNNER))  # the tool's local runner
    if kind == "scan":
        endpoint, table, segments = args[0], args[1], int(args[2])
        spec = SourceSpec(endpoint=endpoint, credentials=Credentials("b", "b"))
        _read(p | ScanTables(spec, [SegmentSpec(table, s, segments) for s in range(segments)], ScanSettings()))
    else:
        manifest = read_manifest(args[0])
        files = [ExportFileSpec("t", i, len(manifest.files), f) for i, f in enumerate(manifest.files)]
        _read(p | ReadExportFiles(files, StorageOptions()))
    p.run().wait_until_finish()


def main(items: int = 100_000, rounds: int = 3) -> dict:
    with DynamoDBLocal() as source, tempfile.TemporaryDirectory() as tmp:
        for table in ("bench_read", "bench_read_empty"):
            create_bench_table(source.endpoint, table)
        seed_items(source.endpoint, "bench_read", items)
        bucket = LocalBucket(Path(tmp))
        exports = {name: write_full_export(bucket, "exports", name, seed.scan_all(source.endpoint, name), files=FILES)
                   for name in ("bench_read", "bench_read_empty")}
        runs = {"scan": [], "export": []}
        for _ in range(rounds):
            for kind in runs:
                measured = []
                for table in ("bench_read_empty", "bench_read"):
                    args = [source.endpoint, table, str(FILES)] if kind == "scan" else [exports[table]]
                    measured.append(run_counted([sys.executable, "-m", "bench.export_read", kind, *args], REPO_ROOT))
                runs[kind].append(measured)
    figures = {kind: {"items_per_s": median(items / max(1e-3, full.seconds - empty.seconds) for empty, full in r),
                      "cpu_us_per_item": median(per_item_us(full, empty, items) for empty, full in r)}
               for kind, r in runs.items()}
    print(f"reading {items:,} items (~0.5 KB) into Arrow pages, nothing written, {FILES} segments / data files, "
          f"one process (DirectRunner), medians of {rounds} rounds, start-up subtracted:")
    labels = {"scan": "segmented Scan of DynamoDB Local", "export": "DynamoDB export (local folder, gzipped JSON)"}
    for kind, f in figures.items():
        print(f"  {labels[kind]:<46} {f['items_per_s']:>9,.0f} items/s  {f['cpu_us_per_item']:>6.1f} us/item CPU")
    print(f"  export read rate vs scan rate: {figures['export']['items_per_s'] / figures['scan']['items_per_s']:.1f}x")
    return figures


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("scan", "export"):
        _run(sys.argv[1], *sys.argv[2:])
    else:
        main(*(int(arg) for arg in sys.argv[1:3]))
