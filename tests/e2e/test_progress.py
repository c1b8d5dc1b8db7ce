"""Live progress of a bulk copy and of a validation, read from the checkpoints: the watcher on
its own, then the installed console script on a pseudo-terminal (Python's `pty`) and on a pipe."""
from __future__ import annotations

import io
import re
import signal
import time

import pytest

from pipeline.output.progress import ProgressWatcher, Tracked, poll_interval
from testbed import seed
from tests.support.cli_runs import (alternator_target, interrupt, items_copied, run_cli, run_on_terminal, run_script,
                                    start_script, unique, write_config)
from transforms.state import bulk_checkpoints

ERASE_LINE = "\r\x1b[2K"


class _Terminal(io.StringIO):
    """A stream that says it is a terminal (the watcher then redraws in place)."""

    def isatty(self) -> bool:
        return True


def test_progress_is_read_from_the_checkpoints(tmp_path):
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 2)
    earlier = bulk_checkpoints.PageRecorder(root, 5.0)
    earlier.page_done("t", 0, 0, None, None, 700, 7000)  # from an earlier run: not this run's speed
    out = io.StringIO()
    watcher = ProgressWatcher([Tracked("t", root, "t", 1300)], interval=0.05, stream=out)
    watcher.start()
    writer = bulk_checkpoints.PageRecorder(root, 5.0)
    writer.page_done("t", 1, 0, None, {"pk": {"S": "x"}}, 300, 3000)
    writer.page_done("t", 1, 1, {"pk": {"S": "x"}}, None, 200, 2000)
    time.sleep(0.2)
    watcher.stop()
    watcher.show_end("done", {"t": (500, 2.0)})

    lines = out.getvalue().splitlines()
    assert lines[0] == "t: resuming; 700 items were copied before this run (1 of 2 segments done)"
    assert lines[-2].endswith("] done")
    assert lines[-1] == "  t: 500 items in 2.0 s, 250 items/s, segments 2/2"
    assert watcher.copied("t") == 500
    assert watcher.finished_after("t", default=-1) > 0


def test_the_rate_is_smoothed_over_the_checkpoint_interval(tmp_path):
    """Checkpoints grow in steps (every 0.4 s here); polled every 0.05 s, a rate over one poll
    would read 0 between steps. Over the window (two intervals) it never does once it started."""
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 1)
    out = _Terminal()
    watcher = ProgressWatcher([Tracked("t", root, "t", 100_000)], interval=0.05, window=0.8, stream=out)
    watcher.start()
    writer = bulk_checkpoints.PageRecorder(root, 0.0)
    key = None
    for page in range(6):
        writer.page_done("t", 0, page, key, {"pk": {"S": str(page)}}, 1000, 10_000)
        key = {"pk": {"S": str(page)}}
        time.sleep(0.4)
    watcher.stop()

    rates = [int(m.group(1).replace(",", "")) for m in re.finditer(r", ([\d,]+) items/s", out.getvalue())]
    assert len(rates) > 30
    started = rates.index(next(rate for rate in rates if rate > 0))
    assert min(rates[started:]) > 0, rates
    assert "ETA ~" in out.getvalue()
    assert re.search(r"  t: 6,000 of ~100,000 items \(6%\), [\d,]+ items/s, ETA ~\d+ (s|min), segments 0/1",
                     out.getvalue())


def test_on_a_terminal_the_block_is_redrawn_in_place(tmp_path):
    root = str(tmp_path)
    for table in ("a", "b"):
        bulk_checkpoints.start_fresh(root, table, 1)
    out = _Terminal()
    watcher = ProgressWatcher([Tracked(name, root, name, 10, exact=True) for name in ("a", "b")], interval=0.05,
                              stream=out, annotate=lambda label: " | capture: " + "x" * 300)
    watcher.start()
    time.sleep(0.2)
    watcher.stop()
    watcher.show_end("done")

    text = out.getvalue()
    assert not text.startswith("\x1b[")  # the first block is drawn where the cursor is
    assert text.count("\x1b[3A") >= 2  # then each block goes back up over its 3 lines
    assert text.endswith("  b: 0 items in " + text.rsplit("  b: 0 items in ", 1)[1])
    first = text.split("\x1b[3A")[0]
    assert first.count(ERASE_LINE) == 3 and "  a: 0 of 10 items (0%), 0 items/s, segments 0/1" in first


def test_object_stores_are_polled_every_few_seconds_local_folders_every_second():
    assert poll_interval("/var/checkpoints") == poll_interval("file:///var/checkpoints") == 1.0
    assert poll_interval("gs://bucket/checkpoints") == poll_interval("s3://bucket/checkpoints") == 5.0


# --- the console script -------------------------------------------------------------------

COLUMNS = 100


def _drawn_lines(terminal: str) -> list[str]:
    """Every line the progress drew on the terminal (each starts by erasing the line)."""
    return [part.split("\n", 1)[0] for part in terminal.split(ERASE_LINE)[1:]]


def _summary_row(stdout: str, table: str) -> list[str]:
    return next(line.split() for line in stdout.splitlines() if line.startswith(table + " "))


@pytest.mark.integration
def test_a_copy_on_a_terminal_redraws_a_line_per_table(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    big, small = unique("progress_big"), unique("progress_small")
    seed.seed_all_types(source, big, count=600)
    seed.seed_all_types(source, small, count=200)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [big, small],
                          scan={"page_size": 50, "segments": 1}, write={"concurrency": 1, "max_items_per_batch": 25},
                          checkpoint_interval_seconds=1)
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.15, ops=["BatchWriteItem"])  # the fixture lifts it
    code, stdout, terminal = run_on_terminal("migrate", "--config", str(config), cwd=tmp_path, columns=COLUMNS)

    assert code == 0, terminal
    assert terminal.count("\x1b[3A") >= 3  # redrawn in place: up over the header and two table lines
    lines = _drawn_lines(terminal)
    assert all(len(line) < COLUMNS for line in lines)  # cut to the terminal's width: nothing wraps
    live = [line for line in lines if line.startswith(f"  {big}: ") and "ETA" in line]
    assert live, lines
    assert all(re.fullmatch(rf"  {big}: [\d,]+ of ~600 items \(\d+%\), [\d,]+ items/s, ETA ~\d+ s, segments 0/1",
                            line) for line in live), live
    assert any(re.fullmatch(rf"  {small}: 200 of ~200 items \(100%\), done after [\d.]+ s, segments 1/1", line)
               for line in lines), lines
    # The last block shows what the summary shows.
    end = _drawn_lines(terminal.rsplit("] done\n", 1)[1])
    for table, count in ((big, 600), (small, 200)):
        row = _summary_row(stdout, table)  # table target read written retried dead-lettered MB seconds items/s
        assert row[3] == f"{count:,}"
        assert f"  {table}: {count:,} items in {row[7]} s, {row[8]} items/s, segments 1/1" in end


@pytest.mark.integration
def test_without_a_terminal_progress_is_a_block_and_a_resumed_run_says_what_was_copied_before(
        dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("progress_resumed")
    seed.seed_all_types(source, table, count=600)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [table],
                          scan={"page_size": 50, "segments": 2}, write={"concurrency": 1, "max_items_per_batch": 25},
                          checkpoint_interval_seconds=1)
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.2, ops=["BatchWriteItem"])
    try:
        process = start_script("migrate", "--config", str(config), cwd=tmp_path)
        interrupt(process, lambda: items_copied(tmp_path / "checkpoints", table) > 0, sig=signal.SIGKILL)
    finally:
        alternator_clean.front.set_faults()
    before = bulk_checkpoints.progress(str(tmp_path / "checkpoints"), table)
    assert 0 < before.items < 600

    resumed = run_script("migrate", "--config", str(config), "--resume", cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stderr.splitlines()
    assert (f"{table}: resuming; {before.items:,} items were copied before this run "
            f"({before.segments_done} of 2 segments done)") in lines
    assert "\x1b[" not in resumed.stderr  # no terminal: no cursor movement
    row = _summary_row(resumed.stdout, table)
    assert row[3] == f"{600 - before.items:,}"
    assert lines[-1] == f"  {table}: {600 - before.items:,} items in {row[7]} s, {row[8]} items/s, segments 2/2"
    assert re.fullmatch(r"\[ *[\d.]+s\] done", lines[-2])


@pytest.mark.integration
def test_validate_shows_the_progress_of_its_scans(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("progress_validated")
    seed.seed_all_types(source, table, count=300)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [table],
                          scan={"page_size": 50, "segments": 2})
    assert run_cli("migrate", "--config", str(config), "--no-progress").exit_code == 0
    # The block is drawn after a poll (1 s for a local folder): each target Scan page is held
    # 0.5 s, so each segment's 3 pages outlast it (unheld, a validation of 300 items took 0.9 s);
    # the fixture lifts the hold after the test.
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.5, ops=["Scan"])
    code, stdout, terminal = run_on_terminal("validate", "--config", str(config), cwd=tmp_path, columns=COLUMNS)

    assert code == 0, terminal
    assert "result: every table matches" in stdout
    assert "] scanning\n" in terminal and terminal.count("\x1b[3A") >= 1
    end = _drawn_lines(terminal.rsplit("] scanned\n", 1)[1])
    assert re.fullmatch(rf"  {table} \(source\): 300 items in [\d.]+ s, [\d,]+ items/s, segments 2/2", end[0]), end
    assert re.fullmatch(rf"  {table} \(target\): 300 items in [\d.]+ s, [\d,]+ items/s, segments 2/2", end[1]), end
    assert not list((tmp_path / "checkpoints" / "validate").glob("run-*/scanned"))  # its notes are gone
