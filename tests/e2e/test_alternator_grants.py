"""The GRANTs docs/alternator-auth.md lists are what each command needs of an Alternator
cluster that enforces authorization, and a missing one stops the command saying which.

The target is the Alternator front enforcing signatures and the roles' permissions as
ScyllaDB does (`testbed/alternator_grants.py`, from alternator/executor.cc and
executor_util.cc); the source is DynamoDB Local.
"""
from __future__ import annotations

import pytest

from testbed import seed
from tests.support.cli_runs import error_lines, run_cli, unique, write_config
from transforms.state.dead_letters import letter_files

pytestmark = pytest.mark.integration

SECRETS = {"creator": "creator-salted-hash", "copier": "copier-salted-hash"}


@pytest.fixture
def granting(alternator_clean):
    """The front enforcing authorization; `grant(*statements)` sets the roles' GRANTs."""
    def grant(*statements: str) -> None:
        alternator_clean.front.require_signatures(SECRETS, grants=list(statements))

    grant()
    yield alternator_clean, grant
    alternator_clean.front.require_signatures(None)


def _config(tmp_path, source: str, alternator, table: str, role: str, folder: str):
    target = {"alternator": {"seeds": ["127.0.0.1"], "port": alternator.port},
              "credentials": {"access_key_id": role, "secret_access_key": SECRETS[role]}}
    (tmp_path / folder).mkdir()
    return str(write_config(tmp_path / folder, source, target, [table]))


def test_the_creator_needs_only_create_on_all_keyspaces(dynamodb_local, granting, tmp_path):
    alternator, grant = granting
    table = unique("created")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=80)  # with TTL and indexes

    refused = run_cli("create-tables", "--config", _config(tmp_path, dynamodb_local.endpoint, alternator, table,
                                                           "creator", "refused"))
    grant("GRANT CREATE ON ALL KEYSPACES TO creator")
    config = _config(tmp_path, dynamodb_local.endpoint, alternator, table, "creator", "granted")
    created = run_cli("create-tables", "--config", config)
    migrated = run_cli("migrate", "--no-progress", "--config", config)  # MODIFY: granted to the creator
    validated = run_cli("validate", "--config", config)  # SELECT: granted to the creator

    assert refused.exit_code == 2, refused.output
    line, = error_lines(refused.output)
    assert "CREATE access on ALL KEYSPACES is denied to role creator" in line and "docs/alternator-auth.md" in line
    assert created.exit_code == 0, created.output
    ttl = seed.client_for(alternator.moto.endpoint).describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"  # UpdateTimeToLive needs ALTER: granted to the creator
    assert migrated.exit_code == 0, migrated.output
    assert validated.exit_code == 0, validated.output


def test_copying_needs_modify_and_validating_select(dynamodb_local, granting, tmp_path):
    alternator, grant = granting
    table = unique("granted")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=50)
    keyspace = f'"alternator_{table}"."{table}"'
    grant("GRANT CREATE ON ALL KEYSPACES TO creator")
    assert run_cli("create-tables", "--config", _config(tmp_path, dynamodb_local.endpoint, alternator, table,
                                                        "creator", "create")).exit_code == 0

    without_modify = run_cli("migrate", "--no-progress", "--config", _config(
        tmp_path, dynamodb_local.endpoint, alternator, table, "copier", "no-modify"))
    grant("GRANT CREATE ON ALL KEYSPACES TO creator", f"GRANT MODIFY ON {keyspace} TO copier")
    config = _config(tmp_path, dynamodb_local.endpoint, alternator, table, "copier", "modify")
    migrated = run_cli("migrate", "--no-progress", "--config", config)
    without_select = run_cli("validate", "--config", config)
    grant("GRANT CREATE ON ALL KEYSPACES TO creator", f"GRANT MODIFY ON {keyspace} TO copier",
          f"GRANT SELECT ON {keyspace} TO copier")
    validated = run_cli("validate", "--config", config)

    # Writes refused: the run stops at once with the refusal (exit 4), nothing dead-lettered.
    assert without_modify.exit_code == 4, without_modify.output
    line, = error_lines(without_modify.output)
    assert f"{table}: the target refused BatchWriteItem: AccessDeniedException" in line, line
    assert f"MODIFY access on table alternator_{table}.{table} is denied to role copier" in line, line
    assert not letter_files(str(tmp_path / "no-modify" / "dead-letter"))
    assert migrated.exit_code == 0, migrated.output
    assert without_select.exit_code == 4, without_select.output
    line, = error_lines(without_select.output)
    assert f"SELECT access on table alternator_{table}.{table} is denied to role copier" in line
    assert validated.exit_code == 0, validated.output
    assert "copier-salted-hash" not in without_modify.output + migrated.output + without_select.output


def test_replication_without_modify_stops_the_shard_and_goes_on_once_granted(dynamodb_local, granting, tmp_path):
    """A refused write in replication stops it with the refusal (exit 4) and its checkpoints
    unmoved, nothing dead-lettered; once MODIFY is granted, the next run applies everything."""
    alternator, grant = granting
    table = unique("granted_stream")
    seed.create_table(dynamodb_local.endpoint, table, **seed.STREAMED_TABLE)
    seed.stream_changes(dynamodb_local.endpoint, table, 0, 30)
    keyspace = f'"alternator_{table}"."{table}"'
    grant("GRANT CREATE ON ALL KEYSPACES TO creator")
    assert run_cli("create-tables", "--config", _config(tmp_path, dynamodb_local.endpoint, alternator, table,
                                                        "creator", "create")).exit_code == 0
    config = _config(tmp_path, dynamodb_local.endpoint, alternator, table, "copier", "replicate")

    refused = run_cli("replicate", "--until-caught-up", "--config", config)
    grant("GRANT CREATE ON ALL KEYSPACES TO creator", f"GRANT MODIFY ON {keyspace} TO copier")
    granted = run_cli("replicate", "--until-caught-up", "--config", config)
    alternator.front.require_signatures(None)  # the test's own reads are not signed by a role

    assert refused.exit_code == 4, refused.output
    line, = error_lines(refused.output)
    assert f"{table}: the target refused BatchWriteItem: AccessDeniedException" in line, line
    assert f"MODIFY access on table alternator_{table}.{table} is denied to role copier" in line, line
    assert not letter_files(str(tmp_path / "replicate" / "dead-letter"))
    assert granted.exit_code == 0, granted.output
    assert seed.assert_same_items(dynamodb_local.endpoint, alternator.url, table) == 30
