"""A mistyped option stops the run, and a plain re-run never throws away progress.

Everything here goes through the installed console script, as a user types it.
"""
from __future__ import annotations

import json

import pytest

from testbed import seed
from tests.support.cli_runs import (alternator_target, error_lines, interrupt, items_copied, run_script,
                                    start_script, unique, write_config)
from transforms.state import bulk_checkpoints


def _one_error(completed, *fragments: str) -> str:
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout
    lines = error_lines(completed.stderr)
    assert len(lines) == 1, completed.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.integration
@pytest.mark.parametrize("command, typo, known", [
    ("migrate", "--resum", "--resume"),
    ("migrate", "--no-progres", "--no-progress"),
    ("replicate", "--until-caught-upp", "--until-caught-up"),
    ("validate", "--sample-rat", "--sample-rate"),
])
def test_a_mistyped_option_is_refused_with_the_closest_one(tmp_path, alternator_clean, command, typo, known):
    config = write_config(tmp_path, "http://127.0.0.1:1", alternator_target(alternator_clean), [unique("t")])

    completed = run_script(command, "--config", str(config), typo, cwd=tmp_path)

    _one_error(completed, typo, f"did you mean {known}?")
    assert not (tmp_path / "checkpoints").exists()  # nothing started


@pytest.mark.integration
def test_a_mistyped_beam_option_after_the_separator_is_refused(tmp_path, alternator_clean):
    config = write_config(tmp_path, "http://127.0.0.1:1", alternator_target(alternator_clean), [unique("t")])

    completed = run_script("migrate", "--config", str(config), "--", "--runer=DirectRunner", cwd=tmp_path)

    _one_error(completed, "--runer=DirectRunner", "did you mean --runner?")
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.integration
def test_a_beam_option_before_the_separator_says_where_it_goes(tmp_path, alternator_clean):
    config = write_config(tmp_path, "http://127.0.0.1:1", alternator_target(alternator_clean), [unique("t")])

    completed = run_script("migrate", "--config", str(config), "--direct_num_workers=2", cwd=tmp_path)

    _one_error(completed, "--direct_num_workers", "after `--`")


@pytest.mark.integration
def test_a_mistyped_pipeline_option_in_the_config_is_refused(tmp_path, alternator_clean):
    config = write_config(tmp_path, "http://127.0.0.1:1", alternator_target(alternator_clean), [unique("t")],
                          pipeline_options={"runner": "DirectRunner", "direct_num_worker": 2})

    completed = run_script("validate", "--config", str(config), cwd=tmp_path)

    _one_error(completed, "pipeline_options.direct_num_worker", "did you mean direct_num_workers?")


def _segment_files(checkpoint_dir, table) -> list:
    return sorted(p for p in (checkpoint_dir / "bulk" / table).rglob("*") if p.is_file())


def _progress(checkpoint_dir, table) -> str:
    state = bulk_checkpoints.progress(str(checkpoint_dir), table)
    return json.dumps(None if state is None else {"items": state.items, "done": state.segments_done})


@pytest.mark.integration
def test_a_plain_rerun_of_an_unfinished_copy_is_refused_and_keeps_its_progress(dynamodb_local, alternator_clean,
                                                                               tmp_path):
    source = dynamodb_local.endpoint
    table = unique("rerun")
    seed.seed_all_types(source, table, count=1000)
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.3, ops=["BatchWriteItem"])
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 2, "page_size": 50}, write={"concurrency": 1})
    checkpoint_dir = tmp_path / "checkpoints"
    interrupt(start_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path),
              lambda: items_copied(checkpoint_dir, table) >= 200)
    alternator_clean.front.set_faults()
    before = _progress(checkpoint_dir, table)
    files_before = [(p, p.read_bytes()) for p in _segment_files(checkpoint_dir, table)]

    refused = run_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path)

    items = json.loads(before)["items"]
    line = _one_error(refused, table, f"copied {items:,} items", "of 2 segments", "--resume", "--restart")
    assert "did not finish" in line
    assert _progress(checkpoint_dir, table) == before
    assert [(p, p.read_bytes()) for p in _segment_files(checkpoint_dir, table)] == files_before

    both = run_script("migrate", "--config", str(config), "--resume", "--restart", cwd=tmp_path)
    _one_error(both, "--resume", "--restart")

    restarted = run_script("migrate", "--config", str(config), "--restart", "--no-progress",
                           "--report", str(tmp_path / "r.json"), cwd=tmp_path)
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads((tmp_path / "r.json").read_text())["tables"][table]["read"] == 1000

    again = run_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"note: {table}: an earlier run finished copying it (1,000 items); copying it again" in again.stderr


@pytest.mark.integration
def test_migrate_streams_does_not_drop_earlier_replication_checkpoints(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("rerun_streams")
    seed.create_table(source, table, **seed.keyed_by("pk", streamed=True))
    seed.put_items(source, table, [{"pk": {"S": f"k{i}"}, "v": {"N": str(i)}} for i in range(20)])
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}])
    first = run_script("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress",
                       cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    shards = sorted((tmp_path / "checkpoints" / "streams" / table).rglob("*.json"))
    snapshot = [(p, p.read_bytes()) for p in shards]

    refused = run_script("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress",
                         cwd=tmp_path)

    _one_error(refused, table, "changes applied", "--resume", "--restart")
    assert [(p, p.read_bytes()) for p in sorted((tmp_path / "checkpoints" / "streams" / table).rglob("*.json"))
            ] == snapshot
    resumed = run_script("migrate", "--config", str(config), "--streams", "--until-caught-up", "--resume",
                         "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr

