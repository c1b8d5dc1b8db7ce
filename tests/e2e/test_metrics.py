"""`--metrics-port`: Prometheus text at /metrics and health at /healthz, scraped while real runs
go on (the installed console script against DynamoDB Local and the Alternator front)."""
from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.output.metrics_server import serve_metrics
from testbed import seed
from testbed.ports import free_port
from tests.support.cli_runs import alternator_target, run_cli, run_script, start_script, unique, write_config

pytestmark = pytest.mark.integration

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with _DIRECT.open(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _scrape(port: int) -> dict[tuple[str, str], float]:
    """(sample name, table label) -> value, parsed with prometheus_client's own parser."""
    _, text = _get(port, "/metrics")
    return {(sample.name, sample.labels.get("table", "")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _wait_for(condition, process, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (urllib.error.URLError, ConnectionError):  # not serving yet
            value = None
        if value:
            return value
        assert process.poll() is None, f"the run ended early: {process.communicate()}"
        assert time.monotonic() < deadline, "the figures never showed it"
        time.sleep(0.2)


def _stop(process) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def test_a_follow_run_serves_its_figures_while_it_runs(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("metered")
    seed.create_table(source, table, **seed.STREAMED_TABLE)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [table],
                          write={"max_attempts": 50})
    assert run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress").exit_code == 0
    port = free_port()
    process = start_script("replicate", "--config", str(config), "--follow", "--metrics-port", str(port),
                           cwd=tmp_path)
    try:
        first = _wait_for(lambda: (m := _scrape(port)) and ("alternator_migrate_open_shards", table) in m and m,
                          process)
        assert first[("alternator_migrate_changes_applied_total", table)] == 0
        assert first[("alternator_migrate_open_shards", table)] >= 1
        assert _get(port, "/healthz") == (200, "ok\n")
        # Some writes are retried; seed 2 throttles the first BatchWriteItem for certain (its third
        # draw is 0.06), since the 60 changes may go out in as few as one or two requests.
        alternator_clean.front.set_faults(throttle=0.5, ops=["BatchWriteItem"], seed=2)
        changes = seed.stream_changes(source, table, 0, 60)

        later = _wait_for(lambda: (m := _scrape(port))[("alternator_migrate_changes_applied_total", table)]
                          == changes and m, process)
        lag = _wait_for(lambda: _scrape(port).get(("alternator_migrate_replication_lag_seconds", table)), process)
        health = _get(port, "/healthz")
    finally:
        alternator_clean.front.set_faults()
        code, err = _stop(process)

    assert later[("alternator_migrate_write_retries_total", table)] > 0
    assert later[("alternator_migrate_dead_letters_total", table)] == 0
    assert later[("alternator_migrate_items_written_total", table)] == 0  # no bulk copy in this run
    assert 0 <= lag < 60
    assert health[0] == 200
    assert code == 130, err
    assert len(seed.scan_all(alternator_clean.url, table)) == 60


def test_a_bulk_copy_serves_items_written_as_it_goes(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("metered_bulk")
    seed.seed_all_types(source, table, count=600)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [table],
                          scan={"page_size": 50, "segments": 1}, write={"concurrency": 1, "max_items_per_batch": 25})
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.2, ops=["BatchWriteItem"])
    port = free_port()
    process = start_script("migrate", "--config", str(config), "--no-progress", "--metrics-port", str(port),
                           cwd=tmp_path)
    try:
        partial = _wait_for(lambda: 0 < _scrape(port).get(("alternator_migrate_items_written_total", table), 0)
                            < 600 and _scrape(port), process)
    finally:
        alternator_clean.front.set_faults()
        _, err = process.communicate(timeout=300)

    assert process.returncode == 0, err
    assert partial[("alternator_migrate_dead_letters_total", table)] == 0
    assert partial[("alternator_migrate_items_read_total", table)] >= partial[
        ("alternator_migrate_items_written_total", table)]
    assert partial[("alternator_migrate_segments_total", table)] == 1
    assert partial[("alternator_migrate_segments_done", table)] == 0
    assert len(seed.scan_all(alternator_clean.url, table)) == 600


def test_a_port_in_use_stops_the_run_before_it_starts(dynamodb_local, alternator_clean, tmp_path):
    table = unique("port_taken")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=10)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [table])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("migrate", "--config", str(config), "--no-progress", "--metrics-port", str(port))

    assert result.exit_code == 2, result.output
    assert f"error: --metrics-port {port}: 127.0.0.1:{port} is already in use; choose another port" in result.output
    assert table not in seed.table_names(alternator_clean.url)  # nothing started
    assert not (tmp_path / "checkpoints").exists()


def test_healthz_turns_503_once_the_run_failed():
    port = free_port()
    with serve_metrics("127.0.0.1", port, ["t"]) as metrics:
        healthy = _get(port, "/healthz")
        metrics.set("t", changes_applied=5, replication_lag_seconds=None)
        metrics.fail("t: replication of shard s-1 stopped")
        failing = _get(port, "/healthz")
        figures = _scrape(port)
        missing = _get(port, "/nothing")

    assert healthy == (200, "ok\n")
    assert failing == (503, "failing: t: replication of shard s-1 stopped\n")
    assert figures[("alternator_migrate_changes_applied_total", "t")] == 5
    assert ("alternator_migrate_replication_lag_seconds", "t") not in figures  # unknown: no sample
    assert missing[0] == 404


def _textfile(path: Path) -> dict[tuple[str, str, str], float]:
    """(sample name, table label, kind label) -> value of a node-exporter textfile, parsed with
    prometheus_client's own parser; the target label is checked to be the same for every table."""
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            samples[(sample.name, sample.labels.get("table", ""), sample.labels.get("kind", ""))] = sample.value
            if "target" in sample.labels:
                samples[("target of", sample.labels["table"], "")] = sample.labels["target"]
    return samples


def test_a_batch_run_writes_its_final_figures_to_the_metrics_file(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("textfile")
    seed.seed_all_types(source, table, count=120)
    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "target": table + "_copy"}], scan={"segments": 2})
    started = time.time()

    migrated = run_script("migrate", "--config", str(config), "--metrics-file", str(tmp_path / "migrate.prom"),
                          cwd=tmp_path)
    client = seed.client_for(alternator_clean.url)
    gone = seed.scan_all(alternator_clean.url, table + "_copy")[0]
    client.delete_item(TableName=table + "_copy", Key={"pk": gone["pk"], "sk": gone["sk"]})
    validated = run_script("validate", "--config", str(config), "--metrics-file", str(tmp_path / "validate.prom"),
                           cwd=tmp_path)

    assert migrated.returncode == 0, migrated.stderr
    figures = _textfile(tmp_path / "migrate.prom")
    assert figures[("target of", table, "")] == table + "_copy"
    for name, value in (("items_read_total", 120), ("items_written_total", 120), ("dead_letters_total", 0),
                        ("segments_done", 2), ("segments_total", 2)):
        assert figures[("alternator_migrate_" + name, table, "")] == value, name
    assert figures[("alternator_migrate_bytes_read_total", table, "")] > 0
    assert figures[("alternator_migrate_bytes_written_total", table, "")] == figures[
        ("alternator_migrate_bytes_read_total", table, "")]
    assert figures[("alternator_migrate_build_info", "", "")] == 1
    assert started <= figures[("alternator_migrate_start_time_seconds", "", "")] <= time.time()
    assert figures[("alternator_migrate_healthy", "", "")] == 1
    assert 'alternator_migrate_build_info{version="0.1.0"} 1.0' in (tmp_path / "migrate.prom").read_text()

    assert validated.returncode == 1, validated.stderr
    findings = _textfile(tmp_path / "validate.prom")
    assert findings[("alternator_migrate_validation_items", table, "missing")] == 1
    assert findings[("alternator_migrate_validation_items", table, "matched")] == 119
    assert findings[("alternator_migrate_validation_items", table, "different")] == 0
    assert findings[("alternator_migrate_healthy", "", "")] == 1  # differences are a verdict, not a failure


def test_a_metrics_file_in_a_missing_folder_stops_the_run_before_it_starts(dynamodb_local, alternator_clean,
                                                                           tmp_path):
    table = unique("textfile_nowhere")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=10)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [table])
    missing = tmp_path / "no-such-folder" / "run.prom"

    completed = run_script("migrate", "--config", str(config), "--metrics-file", str(missing), cwd=tmp_path)

    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [f"error: --metrics-file {missing}: the folder {missing.parent} does not "
                                             f"exist"]
    assert table not in seed.table_names(alternator_clean.url)  # nothing started
