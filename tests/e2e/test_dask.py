"""Beam's Dask runner on a local dask.distributed cluster (a scheduler and three
single-thread workers, from this venv): every pipeline of the tool gives the DirectRunner's
results, the work spreads over the workers, the report counts right without metrics, and
what the runner cannot do is refused (exit 2), never left to hang."""
from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import Counter

import pytest
from distributed import Client

from pipeline.checks import runners
from testbed import seed
from testbed.fake_streams import shard_id
from testbed.ports import free_port
from testbed.servers import DaskCluster
from tests.support.cli_runs import (alternator_target, error_lines, run_cli, run_script, start_script, unique,
                                    write_config)
from tests.support.controlled_streams import controlled_stream, image, key
from tests.support.stores import s3_store
from transforms.state import bulk_checkpoints, stream_checkpoints

pytestmark = pytest.mark.integration


def _on_dask(cluster, **options) -> dict:
    return {"pipeline_options": {"runner": "dask", "dask_client_address": cluster.address, **options}}


def _tasks_by_worker(client: Client, since: float) -> Counter:
    """Per worker name, how many of the job's DoFn tasks it ran since `since`."""
    names = {address: info["name"] for address, info in client.scheduler_info()["workers"].items()}
    return Counter(names.get(record["worker"], record["worker"]) for record in client.get_task_stream(start=since)
                   if "apply_dofn_to_bundle" in str(record["key"]))


def _report(path) -> dict:
    report = json.loads(path.read_text())
    report.pop("duration_seconds", None)
    report.pop("findings_dir", None)
    return report


def test_migrate_killed_and_resumed_on_dask_equals_the_direct_runner(dynamodb_local, alternator_clean,
                                                                     dask_cluster, tmp_path):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("dasked")
    seed.seed_all_types(source, table, count=1200)
    scan = {"segments": 12, "page_size": 25, "pages_in_flight": 2}  # 6 groups of 2: some still wait at the kill
    (tmp_path / "direct").mkdir()
    (tmp_path / "dask").mkdir()
    direct = write_config(tmp_path / "direct", source, alternator_target(alternator_clean),
                          [{"source": table, "target": f"{table}_direct"}], scan=scan)
    on_dask = write_config(tmp_path / "dask", source, alternator_target(alternator_clean),
                           [{"source": table, "target": f"{table}_dask"}], scan=scan, write={"concurrency": 1},
                           **_on_dask(dask_cluster))
    assert run_cli("migrate", "--config", str(direct), "--no-progress").exit_code == 0
    checkpoint_dir = str(tmp_path / "dask" / "checkpoints")
    client = Client(dask_cluster.address, set_as_default=False)
    client.get_task_stream()  # the scheduler records which worker runs what from now on
    started = time.time()
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.5, ops=["BatchWriteItem"])
    process = start_script("migrate", "--config", str(on_dask), "--no-progress", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 180
        while (bulk_checkpoints.progress(checkpoint_dir, table) or bulk_checkpoints.TableProgress(0, 0, 0)
               ).items < 200:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher; tasks already running finish on the workers
        process.communicate()
    recorded = bulk_checkpoints.progress(checkpoint_dir, table).items
    assert recorded < 1200
    alternator_clean.front.set_faults()

    resumed = run_script("migrate", "--config", str(on_dask), "--resume", "--report", str(tmp_path / "r.json"),
                         cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    assert seed.assert_same_items(source, target, table, f"{table}_dask") == 1200
    assert seed.assert_same_items(target, target, f"{table}_direct", f"{table}_dask") == 1200
    # No metrics on Dask: the figures come from the checkpoints and the dead-letter folder.
    figures = json.loads((tmp_path / "r.json").read_text())["tables"][table]
    assert 0 < figures["read"] <= 1200 - recorded and figures["written"] == figures["read"]
    assert figures["dead_lettered"] == 0 and figures["retried"] is None and figures["bytes"] is None
    before = re.search(rf"{table}: resuming; ([\d,]+) items were copied before this run", resumed.stderr)
    assert before and recorded <= int(before[1].replace(",", "")) < 1200  # tasks running at the kill went on
    assert f"  {table}: {figures['written']:,} items in " in resumed.stderr and "segments 12/12" in resumed.stderr
    # Every worker ran part of the copy (one partition per segment).
    spread = _tasks_by_worker(client, started)
    client.close()
    assert set(spread) == {"w1", "w2", "w3"}, spread


def test_replicate_and_validate_on_dask_with_s3_state(dynamodb_local, alternator_clean, dask_cluster, tmp_path,
                                                      monkeypatch):
    """State on S3: Dask workers get no pipeline options, the DoFns install them."""
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("dasked_streams")
    seed.create_table(source, table, **seed.STREAMED_TABLE)
    first = seed.stream_changes(source, table, 0, 40)
    store = s3_store(alternator_clean.moto.endpoint)
    store.use_here(monkeypatch)
    (tmp_path / "dask").mkdir()
    (tmp_path / "direct").mkdir()
    on_dask = write_config(tmp_path / "dask", source, alternator_target(alternator_clean), [{"source": table}],
                           **store.config_sections(runner="dask", dask_client_address=dask_cluster.address))
    direct = write_config(tmp_path / "direct", source, alternator_target(alternator_clean), [{"source": table}])

    copied = run_cli("migrate", "--config", str(on_dask), "--streams", "--until-caught-up", "--no-progress")
    assert copied.exit_code == 0, copied.output
    second = seed.stream_changes(source, table, 40, 30)
    replicated = run_cli("replicate", "--config", str(on_dask), "--until-caught-up")

    assert replicated.exit_code == 0, replicated.output
    assert "caught up" in replicated.output
    assert seed.assert_same_items(source, target, table) == 70
    shards = stream_checkpoints.all_shards(store.checkpoint_dir, table)
    assert sum(shard.applied for shard in shards.values()) == first + second

    client = seed.client_for(target)
    items = sorted(seed.scan_all(target, table), key=lambda item: item["id"]["S"])
    client.delete_item(TableName=table, Key={"id": items[0]["id"]})
    client.put_item(TableName=table, Item={**items[1], "n": {"N": "-1"}})
    client.put_item(TableName=table, Item={"id": {"S": "extra"}, "n": {"N": "0"}})
    variants = {"full": [], "full, recheck": ["--recheck-seconds", "1"], "sample": ["--sample-rate", "0.5"],
                "sample, recheck": ["--sample-rate", "0.5", "--recheck-seconds", "1"]}
    for name, flags in variants.items():
        reports = {}
        for runner, config in (("dask", on_dask), ("direct", direct)):
            path = tmp_path / runner / f"{name}.json"
            result = run_cli("validate", "--config", str(config), "--report", str(path), *flags)
            assert result.exit_code in (0, 1), result.output
            reports[runner] = _report(path)
        assert reports["dask"] == reports["direct"], name
        counts = reports["dask"]["tables"][table]
        if name.startswith("full"):
            assert (counts["matched"], counts["missing"], counts["extra"], counts["different"]) == (68, 1, 1, 1)
        else:
            assert counts["sampled"] > 0 and counts["matched"] + counts["missing"] + counts["different"] == \
                counts["sampled"]


def test_what_dask_cannot_do_is_refused_before_anything_starts(dynamodb_local, alternator_clean, dask_cluster,
                                                               tmp_path):
    table = unique("refused")
    seed.create_table(dynamodb_local.endpoint, table, **seed.STREAMED_TABLE)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                          [{"source": table}], **_on_dask(dask_cluster))

    started = time.monotonic()
    following = run_script("replicate", "--config", str(config), "--follow", "--", "--streaming", cwd=tmp_path,
                           timeout=120)
    snapshot = run_script("migrate", "--config", str(config), "--streams", "--", "--streaming", cwd=tmp_path,
                          timeout=120)

    for completed in (following, snapshot):
        line, = error_lines(completed.stderr)
        assert completed.returncode == 2 and "cannot run the streaming --follow pipeline" in line
    assert time.monotonic() - started < 100
    assert not (tmp_path / "checkpoints" / "bulk").exists()
    assert table not in seed.table_names(alternator_clean.url)


def test_a_cluster_that_cannot_run_the_job_is_refused(dynamodb_local, alternator_clean, tmp_path):
    table = unique("nocluster")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=5)
    with DaskCluster(workers=0) as idle:
        cases = {"no workers": {"dask_client_address": idle.address},
                 "cannot reach the Dask scheduler": {"dask_client_address": f"tcp://127.0.0.1:{free_port()}",
                                                     "dask_connection_timeout": 3},
                 "needs a cluster": {}}
        for expected, options in cases.items():
            config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                                  [{"source": table}], pipeline_options={"runner": "dask", **options})
            completed = run_script("migrate", "--config", str(config), cwd=tmp_path, timeout=120)
            line, = error_lines(completed.stderr)
            assert completed.returncode == 2 and expected in line, completed.stderr
    assert table not in seed.table_names(alternator_clean.url)


def test_a_worker_that_cannot_import_the_package_is_found_before_the_run(dynamodb_local, alternator_clean,
                                                                         tmp_path):
    """Such a worker would die on its first task and leave the job waiting for ever."""
    table = unique("broken_worker")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=5)
    shadow = tmp_path / "shadow" / "transforms"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('this worker has another transforms package')\n")
    cluster = DaskCluster(workers=1)
    cluster.workers[0].env = {"PYTHONPATH": str(shadow.parent)}
    with cluster:
        config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                              [{"source": table}], **_on_dask(cluster))
        completed = run_script("migrate", "--config", str(config), cwd=tmp_path, timeout=120)

    line, = error_lines(completed.stderr)
    assert completed.returncode == 2, completed.stderr
    assert "Dask worker w1 at" in line and "import transforms.write ImportError" in line
    assert table not in seed.table_names(alternator_clean.url)


def test_a_job_whose_workers_are_gone_ends_with_an_error(dynamodb_local, alternator_clean, tmp_path, monkeypatch):
    table = unique("workers_gone")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=400)
    monkeypatch.setattr(runners, "NO_WORKERS_GRACE_SECONDS", 3.0)
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.5, ops=["BatchWriteItem"])
    with DaskCluster(workers=1) as cluster:
        config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                              [{"source": table}], scan={"segments": 2, "page_size": 25}, write={"concurrency": 1},
                              **_on_dask(cluster))

        def stop_the_worker():
            while not (bulk_checkpoints.progress(str(tmp_path / "checkpoints"), table)
                       or bulk_checkpoints.TableProgress(0, 0, 0)).items:
                time.sleep(0.2)
            cluster.workers[0].stop()

        stopper = threading.Thread(target=stop_the_worker, daemon=True)
        stopper.start()
        started = time.monotonic()
        result = run_cli("migrate", "--config", str(config), "--no-progress")
        stopper.join(timeout=10)
    alternator_clean.front.set_faults()

    assert result.exit_code == 4, result.output
    assert f"every worker of the Dask cluster at {cluster.address} is gone" in result.output
    assert time.monotonic() - started < 120



def _edge_items() -> list[dict]:
    """Items the stream of DynamoDB Local 3.x sends with their empty maps untyped ({})."""
    deep: dict = {"S": "bottom"}
    for level in range(30):
        deep = {"M": {f"m{level}": deep, "empty": {"M": {}}}}
    return [{"pk": {"S": "edge-empty"}, "sk": {"N": "0"}, "nest": {"L": [{"M": {}}, {"L": []}, {"M": {}}]},
             "empty": {"M": {}}, "none": {"L": []}},
            {"pk": {"S": "edge-binary"}, "sk": {"N": "1"}, "blobs": {"BS": [b"\x00", b"\xff\x00", b"\x01"]},
             "blob": {"B": b""}, "in_list": {"L": [{"BS": [b"\x02"]}, {"B": b"\x00"}]}},
            {"pk": {"S": "edge-deep"}, "sk": {"N": "2"}, "deep": deep}]


def test_replicate_every_type_on_dask_equals_the_direct_runner(dynamodb_local, alternator_clean, dask_cluster,
                                                              tmp_path):
    """The inserts of every DynamoDB type in a NEW_AND_OLD_IMAGES stream, empty maps and
    lists nested in lists, binary sets and 30-deep maps among them (issue 20)."""
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("dasked_types")
    seed.create_table(source, table, **seed.ALL_TYPES_TABLE, StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    seed.put_items(source, table, [seed.all_types_item(i) for i in range(300)] + _edge_items())
    for runner, options in (("direct", {}), ("dask", _on_dask(dask_cluster))):
        (tmp_path / runner).mkdir()
        config = write_config(tmp_path / runner, source, alternator_target(alternator_clean),
                              [{"source": table, "target": f"{table}_{runner}"}], **options)
        assert run_cli("create-tables", "--config", str(config)).exit_code == 0

        replicated = run_script("replicate", "--config", str(config), "--until-caught-up", cwd=tmp_path / runner)

        assert replicated.returncode == 0, replicated.stderr
        assert seed.assert_same_items(source, target, table, f"{table}_{runner}") == 303


@pytest.mark.parametrize("runner", ["direct", "dask"])
def test_a_workers_unexpected_error_reaches_the_runs_log_with_its_traceback(dynamodb_local, alternator_clean,
                                                                            tmp_path, request, runner):
    """A shard that fails unexpectedly, wherever it ran: one error line, exit 4, and the
    traceback in the run's log file. The fault is a record whose key has a value without a
    type, which no Streams service sends, served by the test Streams server: a page that does
    not decode, retried as a damaged reply until the attempts run out."""
    options = _on_dask(request.getfixturevalue("dask_cluster")) if runner == "dask" else {}
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path, **options) as controlled:
        controlled.stream.add_shard(shard_id(1))
        controlled.stream.put_record(shard_id(1), "INSERT", key("a"), new_image=image("a", 1))
        controlled.stream.put_record(shard_id(1), "INSERT", {"id": {}}, new_image=image("b", 1))

        replicated = run_script("replicate", "--config", str(controlled.config), "--until-caught-up", cwd=tmp_path)

    assert replicated.returncode == 4, replicated.stderr
    error, = error_lines(replicated.stderr)
    assert f"replication of shard {shard_id(1)} stopped: CorruptResponse: " in error
    assert "(ValueError: not enough values to unpack" in error
    assert "Traceback" not in replicated.stderr
    log_file, = (tmp_path / "checkpoints" / "logs").glob("replicate-*.log")
    assert f"  the full error is in {log_file}" in replicated.stderr.splitlines()
    logged = log_file.read_text()
    assert "Traceback (most recent call last):" in logged and error[len("error: "):] in logged
    assert 'change["Keys"] = decode_item(change["Keys"])' in logged  # the frame where it failed, on the worker
