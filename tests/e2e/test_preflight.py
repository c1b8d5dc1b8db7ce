"""The preflight: everything a run would refuse is refused before anything is created,
cleared or written, with one `error:` line and exit 2, by `migrate` and by `plan` alike;
the command line's own rules; Ctrl-C wherever it lands. Every case runs the installed
console script, as a user does."""
from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from testbed import seed
from testbed.servers import REPO_ROOT
from tests.support.cli_runs import (CONSOLE_SCRIPT, alternator_target, items_copied, run_script, script_env,
                                    start_script, unique, write_config)
from transforms.state import bulk_checkpoints

HASH_PK = seed.keyed_by("pk")


def only_error(completed: subprocess.CompletedProcess) -> str:
    """Exit 2 and nothing on stderr but one `error:` line: that line."""
    assert completed.returncode == 2, (completed.stdout, completed.stderr)
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), completed.stderr
    return lines[0]


def offline_config(tmp_path: Path, **sections) -> Path:
    """A config whose endpoints nothing answers: what is refused here is refused before any call."""
    return write_config(tmp_path, "http://127.0.0.1:9", {"endpoint": "http://127.0.0.1:9"}, ["orders"], **sections)


def target_tables(alternator) -> list[str]:
    return seed.table_names(alternator.url)


# --- Beam options: runner names and value types, checked before anything starts --------------


def test_an_unknown_runner_stops_migrate_before_the_target_table_is_created(tmp_path, dynamodb_local,
                                                                            alternator_clean):
    table = unique("runner")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [table])

    completed = run_script("migrate", "--config", str(config), "--", "--runner=FooRunner", cwd=tmp_path)

    assert only_error(completed) == ("error: runner FooRunner is not a Beam runner; use DirectRunner (the default), "
                                     "DataflowRunner or dask")
    assert table not in target_tables(alternator_clean)
    completed = run_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr  # no "an earlier run did not finish"


def test_an_option_of_the_wrong_type_stops_restart_before_the_checkpoints_are_cleared(tmp_path):
    config = offline_config(tmp_path, pipeline_options={"runner": "DirectRunner", "direct_num_workers": "two"})
    bulk_checkpoints.start_fresh(str(tmp_path / "checkpoints"), "orders", total_segments=4)

    completed = run_script("migrate", "--config", str(config), "--restart", cwd=tmp_path)

    assert only_error(completed) == "error: pipeline_options.direct_num_workers: invalid int value: 'two'"
    assert bulk_checkpoints.recorded_segments(str(tmp_path / "checkpoints"), "orders") == 4


@pytest.mark.parametrize("options, line", [
    ({"streaming": "yes"}, "error: pipeline_options.streaming is a flag: true or false, got 'yes'"),
    ({"direct_running_mode": "threads"}, "error: pipeline_options.direct_running_mode: invalid choice: 'threads' "
                                         "(choose from 'in_memory', 'multi_threading', 'multi_processing')"),
])
def test_flags_and_choices_are_typed_by_beams_parser(tmp_path, options, line):
    completed = run_script("plan", "--config", str(offline_config(tmp_path, pipeline_options=options)), cwd=tmp_path)

    assert only_error(completed) == line


def test_a_setup_file_that_is_not_there_stops_a_dry_run(tmp_path):
    """configs/dataflow.yaml names ./setup.py, which is there only in a checkout."""
    completed = run_script("migrate", "--config", str(REPO_ROOT / "configs" / "dataflow.yaml"), "--dry-run",
                           cwd=tmp_path, env={"ALTERNATOR_USER": "u", "ALTERNATOR_SALTED_HASH": "h"})

    assert only_error(completed) == (f"error: setup_file ./setup.py does not exist (a relative path is taken from "
                                     f"the current folder, {tmp_path}); run from the folder that holds it, or give "
                                     f"its full path")


def test_a_verdict_on_options_is_kept_and_a_changed_option_is_checked_again(tmp_path):
    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    good = offline_config(tmp_path, pipeline_options={"runner": "DirectRunner", "direct_num_workers": 2})

    completed = run_script("plan", "--config", str(good), cwd=tmp_path, env=env)

    assert "cannot reach source" in completed.stderr  # past the options, at the first call
    kept_file = cache / "alternator-migrate" / "checked-options.json"
    (kept,) = json.loads(kept_file.read_text()).values()
    assert kept == {"runner": "pipeline.checks.runners.LocalRunner", "streaming": False, "files": []}
    assert "direct_num_workers" not in kept_file.read_text()  # kept by a digest, never the options themselves
    bad = offline_config(tmp_path, pipeline_options={"runner": "DirectRunner", "direct_num_workers": "2x"})
    completed = run_script("plan", "--config", str(bad), cwd=tmp_path, env=env)
    assert only_error(completed) == "error: pipeline_options.direct_num_workers: invalid int value: '2x'"


# --- plan refuses what migrate refuses ------------------------------------------------------


def _both(tmp_path: Path, config: Path) -> tuple[str, str]:
    """The error line of `plan`, then of `migrate`, on the same config."""
    return (only_error(run_script("plan", "--config", str(config), cwd=tmp_path)),
            only_error(run_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path)))


def test_plan_refuses_a_target_with_another_key_schema_as_migrate_does(tmp_path, dynamodb_local, alternator_clean):
    table = unique("other_key")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
    seed.create_table(alternator_clean.url, table, **seed.keyed_by("id", "N"))
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [table])

    plan, migrate = _both(tmp_path, config)

    assert plan == migrate == (f"error: target table {table} exists with key schema [id N (HASH)], but the source "
                               f"{table} needs [pk S (HASH)]; drop or rename the target table, or set tables[].target "
                               f"to another name")


def test_plan_refuses_an_unfinished_earlier_run_as_migrate_does(tmp_path, dynamodb_local, alternator_clean):
    table = unique("unfinished")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [table])
    bulk_checkpoints.start_fresh(str(tmp_path / "checkpoints"), table, total_segments=1)

    plan, migrate = _both(tmp_path, config)

    assert plan == migrate == (f"error: {table}: an earlier run copied 0 items (0 of 1 segment done) and did not "
                               f"finish; run the same command with --resume to continue it, or with --restart to "
                               f"copy the table again from scratch")


def test_plan_refuses_a_rename_onto_a_key_as_migrate_does(tmp_path, dynamodb_local, alternator_clean):
    table = unique("rename_key")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                          [{"source": table, "renames": {"note": "pk"}}])

    plan, migrate = _both(tmp_path, config)

    assert plan == migrate and plan.startswith(f"error: tables[0].renames maps 'note' to 'pk', but 'pk' is a key "
                                               f"attribute of {table}")
    assert table not in target_tables(alternator_clean)


def test_plan_refuses_a_missing_target_under_create_never_as_migrate_does(tmp_path, dynamodb_local,
                                                                          alternator_clean):
    table = unique("never")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                          [{"source": table, "create": "never"}])

    plan, migrate = _both(tmp_path, config)

    assert plan == migrate == (f"error: target table {table} does not exist and create is 'never'; create it or set "
                               f"create: if_missing")
    assert table not in target_tables(alternator_clean)


# --- plan's estimate: of the whole job --------------------------------------------------------


def test_plan_estimates_the_whole_copy_once(tmp_path, dynamodb_local, alternator_clean):
    tables = [unique("estimate_a"), unique("estimate_b")]
    for table in tables:
        seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
        seed.put_items(dynamodb_local.endpoint, table, [{"pk": {"S": f"k{n}"}} for n in range(30)])
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), tables)

    uncapped = run_script("plan", "--config", str(config), "--sample-seconds", "0", cwd=tmp_path)

    assert uncapped.returncode == 0, uncapped.stderr
    lines = uncapped.stdout.splitlines()
    assert lines.count("note: no read or write cap is set: the copy runs as fast as the source and target allow "
                       "(scan.max_read_units_per_second, write.max_items_per_second)") == 1
    assert "estimate for the copy (2 tables in one job, which shares the caps):" in lines
    assert not [line for line in lines if "~0 s" in line]
    capped = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), tables,
                          write={"max_items_per_second": 20})
    completed = run_script("plan", "--config", str(capped), "--sample-seconds", "0", cwd=tmp_path)
    assert "  writing at the cap of 20 items/s: ~3 s" in completed.stdout.splitlines()  # 60 items, both tables
    assert "no read or write cap" not in completed.stdout

    as_json = run_script("plan", "--config", str(capped), "--sample-seconds", "0", "--output", "json", cwd=tmp_path)

    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert [t["source"] for t in document["tables"]] == tables and document["tables"][0]["items"] == 30
    assert document["tables"][0]["target_table"] == "would_be_created"
    assert document["estimate"]["capped"] is True
    assert {"what": "writing", "seconds": 3.0, "bound": "the cap of 20 items/s"} in document["estimate"]["bounds"]


# --- the command line's own rules -------------------------------------------------------------


@pytest.mark.parametrize("arguments, line", [
    (["replicate", "--max-lag", "5"], "error: --max-lag goes with --until-caught-up"),
    (["migrate", "--streams", "--max-lag", "5"], "error: --max-lag goes with --until-caught-up"),
    (["validate", "--yes"], "error: --yes goes with --repair"),
    (["validate", "--metrics-host", "0.0.0.0"], "error: --metrics-host goes with --metrics-port"),
])
def test_an_option_that_means_nothing_alone_is_refused(tmp_path, arguments, line):
    completed = run_script(*arguments, "--config", str(offline_config(tmp_path)), cwd=tmp_path)

    assert only_error(completed) == line


def test_a_key_written_twice_in_the_config_is_refused(tmp_path):
    config = tmp_path / "twice.yaml"
    config.write_text("source: {endpoint: 'http://127.0.0.1:9'}\ntarget: {endpoint: 'http://127.0.0.1:9'}\n"
                      "tables: [orders]\nsource:\n  endpoint: 'http://127.0.0.1:8'\n")

    completed = run_script("plan", "--config", str(config), cwd=tmp_path)

    assert only_error(completed) == (f"error: {config} is not valid YAML at line 4, column 1: key 'source' appears "
                                     f"twice (first at line 1); keep one")


def test_version_verbose_after_the_command_and_no_arguments(tmp_path):
    version = run_script("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, "alternator-migrate, version 0.1.0\n")

    verbose = run_script("plan", "-v", "--config", str(tmp_path / "absent.yaml"), cwd=tmp_path)
    assert only_error(verbose) == f"error: cannot read config file {tmp_path / 'absent.yaml'}: No such file or directory"

    bare = run_script(cwd=tmp_path)
    assert bare.returncode == 2 and "error" not in bare.stderr.lower()
    assert bare.stderr.startswith("Usage: alternator-migrate [OPTIONS] COMMAND [ARGS]...") and "plan" in bare.stderr


class _HtmlErrors(http.server.BaseHTTPRequestHandler):
    """A web server that is not DynamoDB: every request gets an HTML error page."""

    def do_POST(self):  # noqa: N802 - http.server's name
        page = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>\n"
                b"<h1>Bad Gateway</h1>\n<p>The proxy received an invalid response.</p>\n</body></html>\n")
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args):
        pass


def test_a_foreign_services_html_error_page_is_one_line(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlErrors)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        config = write_config(tmp_path, url, {"endpoint": url}, ["orders"])

        completed = run_script("plan", "--config", str(config), cwd=tmp_path)
    finally:
        server.shutdown()

    assert only_error(completed) == (f"error: source {url} refused the request: 502: 502 Bad Gateway Bad Gateway The "
                                     f"proxy received an invalid response.")


def test_the_note_on_tags_names_the_source(tmp_path, dynamodb_local, alternator_clean):
    table = unique("tags")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                          [{"source": table, "target": f"{table}_copy"}])

    completed = run_script("create-tables", "--config", str(config), cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    assert (f"source table {table}: the source does not support tags (ListTagsOfResource); none copied"
            in completed.stderr.splitlines())


# --- Ctrl-C, as a terminal sends it: SIGINT to the whole process group --------------------------


def _interrupted(process: subprocess.Popen, when) -> tuple[int, list[str]]:
    try:
        deadline = time.monotonic() + 120
        while not when():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run did not get there in time"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        stderr = process.communicate(timeout=120)[1]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, stderr.splitlines()


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    started = time.monotonic()
    process = subprocess.Popen([str(CONSOLE_SCRIPT), "plan", "--config", str(offline_config(tmp_path))],
                               env=script_env(), cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)

    code, lines = _interrupted(process, lambda: time.monotonic() - started > 0.3)

    assert code == 130
    assert lines in (["interrupted: nothing was started"], ["interrupted: nothing was changed"]), lines


@pytest.mark.parametrize("running_mode", ["in_memory", "multi_processing"])
def test_ctrl_c_during_the_copy_is_one_line(tmp_path, dynamodb_local, alternator_clean, running_mode):
    table = unique("ctrl_c")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=600)
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.2, ops=["BatchWriteItem"])
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [table],
                          scan={"segments": 2, "page_size": 50}, write={"concurrency": 1},
                          pipeline_options={"runner": "DirectRunner", "direct_num_workers": 2,
                                            "direct_running_mode": running_mode})
    try:
        process = start_script("migrate", "--config", str(config), cwd=tmp_path)
        code, lines = _interrupted(process, lambda: items_copied(tmp_path / "checkpoints", table) >= 100)
    finally:
        alternator_clean.front.set_faults()

    assert code == 130
    assert lines[-1] == (f"interrupted: the checkpoints are consistent; continue with `alternator-migrate migrate "
                         f"--config {config} --resume` (pages in flight are copied again)"), lines
    noise = ("Traceback", "Error", "Worker", "grpc", "exited", "done")
    assert not [line for line in lines if any(word in line for word in noise)], lines
