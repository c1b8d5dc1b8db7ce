"""A far source: many segments' Scan pages in flight at once, against `SlowSource` (DynamoDB
Local whose Scan answers each wait 0.3 s, any number at once, as a table in another region;
or moto's S3 whose GETs of export data files wait as long).

Scanned one page at a time, a copy has exactly 1 Scan in flight whenever any is; these
tests assert the concurrency the source itself saw, not wall time, so a loaded machine
does not make them flaky.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from testbed import seed
from testbed.exports import s3_client, write_full_export
from testbed.slow_source import SlowSource
from tests.support.cli_runs import (alternator_target, interrupt, items_copied, run_cli, start_script, unique,
                                    write_config)
from tests.support.stores import s3_store
from transforms.scan import SegmentSpec, segment_groups
from transforms.state import bulk_checkpoints

pytestmark = pytest.mark.integration

DELAY = 0.3


@pytest.fixture
def far_source(dynamodb_local):
    with SlowSource(dynamodb_local.endpoint, DELAY) as server:
        yield server


def test_segments_are_grouped_so_every_worker_keeps_its_pages_in_flight():
    specs = [SegmentSpec("t", s, 40) for s in range(40)]
    assert [len(g) for g in segment_groups(specs, pages_in_flight=16, workers=1)] == [16, 16, 8]
    assert [len(g) for g in segment_groups(specs[:16], pages_in_flight=16, workers=2)] == [8, 8]
    assert [len(g) for g in segment_groups(specs[:3], pages_in_flight=16, workers=8)] == [1, 1, 1]
    assert [s for g in segment_groups(specs, 16, 3) for s in g] == specs  # each segment once, in order


def test_a_copy_keeps_many_pages_in_flight_and_every_item_arrives(dynamodb_local, far_source, alternator_clean,
                                                                  tmp_path):
    table = unique("far")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=1600)
    config = write_config(tmp_path, far_source.url, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 16, "page_size": 10})

    result = run_cli("migrate", "--config", str(config), "--no-progress", "--report", str(tmp_path / "r.json"))

    assert result.exit_code == 0, result.output
    assert seed.assert_same_items(dynamodb_local.endpoint, alternator_clean.url, table) == 1600
    assert far_source.scans.answered >= 160  # pages of 10 items
    # One worker (the default runner's), 16 segments side by side: one page at a time would be 1.0.
    assert far_source.scans.concurrency() >= 4, far_source.scans.concurrency()
    assert far_source.scans.most() <= 16
    entry = json.loads((tmp_path / "r.json").read_text())["tables"][table]
    assert entry["read"] == entry["written"] == 1600
    assert len(list((tmp_path / "checkpoints" / "bulk" / table).glob("seg-*"))) == 16  # one range per segment


def test_pages_in_flight_caps_the_scans_of_a_validation(dynamodb_local, far_source, alternator_clean, tmp_path):
    table = unique("far_checked")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=600)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                          [{"source": table}], scan={"segments": 12, "page_size": 10})
    assert run_cli("migrate", "--config", str(config), "--no-progress").exit_code == 0
    far = write_config(tmp_path, far_source.url, alternator_target(alternator_clean), [{"source": table}],
                       scan={"segments": 12, "page_size": 10, "pages_in_flight": 4})
    far_source.reset()

    result = run_cli("validate", "--config", str(far))

    assert result.exit_code == 0, result.output
    assert far_source.scans.answered >= 60
    # Groups of 4 segments: up to 4 Scans in flight, never more, and more than one at a time.
    assert far_source.scans.most() == 4
    assert 2 <= far_source.scans.concurrency() <= 4, far_source.scans.concurrency()


def test_a_far_copy_killed_mid_way_resumes_from_its_checkpoints(dynamodb_local, far_source, alternator_clean,
                                                                tmp_path):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("far_resumed")
    seed.seed_all_types(source, table, count=1600)
    page_size, batch, concurrency = 10, 10, 2
    config = write_config(tmp_path, far_source.url, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 16, "page_size": page_size},
                          write={"concurrency": concurrency, "max_items_per_batch": batch},
                          checkpoint_interval_seconds=0.05)
    checkpoint_dir = tmp_path / "checkpoints"
    process = start_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path)

    interrupt(process, lambda: items_copied(checkpoint_dir, table) >= 300)
    time.sleep(0.5)  # writes the target took before the kill finish (they were in flight)

    assert far_source.scans.concurrency() >= 2, far_source.scans.concurrency()  # the killed run had pages in flight
    recorded = bulk_checkpoints.progress(str(checkpoint_dir), table)
    written_before_resume = len(seed.scan_all(target, table))
    assert recorded.items < 1600 and recorded.segments_done < 16
    result = run_cli("migrate", "--config", str(config), "--resume", "--report", str(tmp_path / "r.json"),
                     "--no-progress")

    assert result.exit_code == 0, result.output
    # Pages of many segments were written interleaved, and the checkpoints still chain: the resume
    # reads exactly what they do not hold, and what was written but not recorded is only what the
    # writer held (2 x concurrency x batch items, and the page being added).
    assert json.loads((tmp_path / "r.json").read_text())["tables"][table]["read"] == 1600 - recorded.items
    assert written_before_resume - recorded.items <= 2 * concurrency * batch + page_size
    assert seed.assert_same_items(source, target, table) == 1600


def test_plan_estimates_the_time_from_the_latency_it_measures(dynamodb_local, far_source, alternator_clean,
                                                              tmp_path):
    table = unique("far_planned")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=400)
    config = write_config(tmp_path, far_source.url, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 4, "page_size": 10})
    far_source.reset()

    result = run_cli("plan", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert far_source.scans.answered == 1  # one small Scan measures the latency
    found = re.search(r"reading at the source's Scan latency, (\d+) ms measured: ~(\d+) pages, 4 in flight "
                      r"\(16 a worker x 1 worker\): ~(\d+) s", result.output)
    assert found, result.output
    latency_ms, pages, seconds = map(int, found.groups())
    assert latency_ms >= DELAY * 1000
    assert pages == 400 // 10 + 4  # 10 items a page, and each segment's last page
    assert abs(seconds - pages * latency_ms / 1000 / 4) <= 1  # pages x latency / pages in flight
    assert f"the copy takes at least ~{seconds} s" in result.output
    assert "no read or write cap is set" in result.output


def test_a_worker_fetches_the_data_files_of_a_far_export_at_once(dynamodb_local, alternator, alternator_clean,
                                                                 tmp_path, monkeypatch):
    with SlowSource(alternator.moto.endpoint, get_delay=DELAY, get_path="/data/") as far_s3:
        store = s3_store(far_s3.url)
        store.use_here(monkeypatch)
        table = unique("far_export")
        seed.seed_all_types(dynamodb_local.endpoint, table, count=600)
        full = write_full_export(s3_client(far_s3.url), store.root.split("/")[2], "exports",
                                 seed.scan_all(dynamodb_local.endpoint, table), files=6)
        config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                              [{"source": table, "export": full}], **store.config_sections())
        far_s3.reset()

        result = run_cli("migrate", "--config", str(config), "--no-progress")

        assert result.exit_code == 0, result.output
        assert seed.assert_same_items(dynamodb_local.endpoint, alternator_clean.url, table) == 600
        assert far_s3.gets.answered >= 6  # each data file read through the far front
        # One worker, one group of the 6 files: they are fetched side by side, not one after another.
        assert far_s3.gets.most() >= 3, far_s3.gets.most()
