"""`--tables A,B`: a command on some of the configured tables, through the installed console script."""
from __future__ import annotations

import pytest

from testbed import seed
from tests.support.cli_runs import alternator_target, run_script, unique, write_config

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.mark.integration
def test_a_command_runs_on_the_chosen_tables_only(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    chosen, other = unique("chosen"), unique("left_alone")
    seed.seed_all_types(source, chosen, count=20)
    seed.seed_all_types(source, other, count=20)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [other, chosen])

    completed = run_script("migrate", "--config", str(config), "--tables", chosen, "--no-progress", cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    rows = [line.split()[0] for line in completed.stdout.splitlines()[1:] if not line.startswith("total:")]
    assert rows == [chosen]
    assert "total: 20 items written in " in completed.stdout
    target_tables = seed.table_names(alternator_clean.url)
    assert chosen in target_tables and other not in target_tables


def test_an_unknown_table_is_exit_2_with_the_closest_name(tmp_path):
    config = write_config(tmp_path, NOWHERE, {"endpoint": NOWHERE}, ["Orders", "Customers"])

    completed = run_script("status", "--config", str(config), "--tables", "Order,Customers", cwd=tmp_path, timeout=60)

    assert completed.returncode == 2
    assert completed.stderr.splitlines() == ["error: --tables: the config has no source table Order; did you mean "
                                             "Orders?"]
    assert completed.stdout == ""
