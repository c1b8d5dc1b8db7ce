"""The CLI on bad input: exit code 2, one `error:` line naming the problem, no traceback.

Config mistakes need no server; endpoint and table problems use the session's real
servers (DynamoDB Local as the source, the Alternator front over moto as the target).
Every config carries a recognisable secret, which must never show in any output.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError

from testbed import seed
from testbed.ports import free_port
from testbed.servers import REPO_ROOT
from tests.support.cli_runs import alternator_target, endpoint_target, run_cli, unique, write_config

SECRET = "Sekr1t-Qx7vZ3-must-never-be-printed"
COMMANDS = ("plan", "create-tables", "migrate")

HASH_PK = seed.keyed_by("pk")


def secret_source(endpoint: str) -> dict:
    """A source section whose secret is recognisable (DynamoDB Local accepts any credentials)."""
    return {"endpoint": endpoint, "region": "us-east-1",
            "credentials": {"access_key_id": "test", "secret_access_key": SECRET}}


def config_file(tmp_path: Path, source_endpoint: str, target: dict, tables: list, **sections) -> Path:
    target = dict(target)
    target.setdefault("credentials", {"access_key_id": "test", "secret_access_key": SECRET})
    sections.setdefault("source", secret_source(source_endpoint))
    return write_config(tmp_path, source_endpoint, target, tables, **sections)


def edit_config(path: Path, edit) -> Path:
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw))
    return path


def unused_endpoint() -> str:
    """A loopback URL on a port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


def assert_user_error(result, *fragments: str) -> str:
    """Exit 2, one `error:` line holding every fragment, no traceback, no secret."""
    output = result.output
    assert result.exit_code == 2, output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught exception
    assert "Traceback" not in output
    assert SECRET not in output
    error_lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, output
    for fragment in fragments:
        assert fragment in error_lines[0], output
    return error_lines[0]


def table_exists(endpoint: str, table: str) -> bool:
    try:
        seed.client_for(endpoint).describe_table(TableName=table)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
        return False
    return True


# --- config mistakes (no server needed) ------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_config_key(tmp_path, command):
    path = config_file(tmp_path, unused_endpoint(), {"endpoint": unused_endpoint()}, ["Music"])
    edit_config(path, lambda raw: raw.pop("tables"))

    result = run_cli(command, "--config", str(path))

    assert_user_error(result, "missing required key tables", "configs/local.yaml")


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_config_key_is_named(tmp_path, command):
    path = config_file(tmp_path, unused_endpoint(), {"endpoint": unused_endpoint()}, ["Music"],
                       scan={"pagesize": 100})

    result = run_cli(command, "--config", str(path))

    assert_user_error(result, "unknown key scan.pagesize", "spelling", "page_size")


def test_unknown_key_among_the_credentials_does_not_show_its_value(tmp_path):
    path = config_file(tmp_path, unused_endpoint(), {"endpoint": unused_endpoint()}, ["Music"])
    edit_config(path, lambda raw: raw["source"]["credentials"].update(secret_acces_key=SECRET))

    result = run_cli("migrate", "--config", str(path))

    assert_user_error(result, "unknown key source.credentials.secret_acces_key")


def test_rack_without_datacenter(tmp_path):
    target = {"alternator": {"seeds": ["127.0.0.1"], "port": free_port(), "rack": "rack1"}}
    path = config_file(tmp_path, unused_endpoint(), target, ["Music"])

    result = run_cli("migrate", "--config", str(path))

    assert_user_error(result, "target.alternator.rack", "target.alternator.datacenter")


def test_unset_env_var_in_credentials_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("AM_CLI_TEST_UNSET_SECRET", raising=False)
    path = config_file(tmp_path, unused_endpoint(), {"endpoint": unused_endpoint()}, ["Music"])
    edit_config(path, lambda raw: raw["source"]["credentials"].update(
        secret_access_key="${AM_CLI_TEST_UNSET_SECRET}"))

    result = run_cli("migrate", "--config", str(path))

    assert_user_error(result, "AM_CLI_TEST_UNSET_SECRET", "not set", "source.credentials.secret_access_key",
                      "export it")


def test_secret_of_the_wrong_type_is_not_printed(tmp_path):
    path = config_file(tmp_path, unused_endpoint(), {"endpoint": unused_endpoint()}, ["Music"])
    edit_config(path, lambda raw: raw["target"]["credentials"].update(secret_access_key=918273645546372819))

    result = run_cli("plan", "--config", str(path))

    line = assert_user_error(result, "target.credentials.secret_access_key must be str")
    assert "918273645546372819" not in line


def test_invalid_yaml_does_not_print_the_offending_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(f"source:\n  credentials:\n    secret_access_key: {SECRET}: oops\n")

    result = run_cli("migrate", "--config", str(path))

    assert_user_error(result, "not valid YAML", "line 3")


def test_config_file_that_does_not_exist(tmp_path):
    path = tmp_path / "missing.yaml"

    result = run_cli("plan", "--config", str(path))

    assert_user_error(result, f"cannot read config file {path}")


# --- endpoints and tables (real servers) -----------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("command", COMMANDS)
def test_unreachable_source_endpoint_is_named(tmp_path, alternator_clean, command):
    source = unused_endpoint()
    path = config_file(tmp_path, source, endpoint_target(alternator_clean), [unique("Music")])

    result = run_cli(command, "--config", str(path))

    assert_user_error(result, f"cannot reach source {source}", "check the endpoint")


@pytest.mark.integration
def test_unreachable_target_endpoint_is_named(tmp_path, dynamodb_local):
    table = unique("reachable")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
    target = unused_endpoint()
    path = config_file(tmp_path, dynamodb_local.endpoint, {"endpoint": target}, [table])

    result = run_cli("migrate", "--config", str(path))

    assert_user_error(result, f"cannot reach target {target}", "check the endpoint")


@pytest.mark.integration
def test_unreachable_alternator_seeds_are_named(tmp_path, dynamodb_local):
    table = unique("reachable")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
    port = free_port()
    path = config_file(tmp_path, dynamodb_local.endpoint, {"alternator": {"seeds": ["127.0.0.1"], "port": port}},
                       [table])

    result = run_cli("migrate", "--config", str(path))

    assert_user_error(result, f"cannot reach target Alternator seeds http://127.0.0.1:{port}")


@pytest.mark.integration
def test_aws_target_without_credentials_points_at_target_credentials(tmp_path, dynamodb_local, monkeypatch):
    # AWS DynamoDB as the target (a rollback) is signed with the default chain, which finds
    # nothing here: the hint must name target.credentials, not the source's. Signing fails
    # before any request is sent, so AWS itself is never reached.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance metadata service
    table = unique("nocreds")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
    aws = "https://dynamodb.us-east-1.amazonaws.com"
    path = config_file(tmp_path, dynamodb_local.endpoint, {"endpoint": aws}, [table])
    edit_config(path, lambda raw: raw["target"].pop("credentials"))

    result = run_cli("plan", "--config", str(path))

    line = assert_user_error(result, f"no AWS credentials found for target {aws}", "set target.credentials")
    assert "source.credentials" not in line


@pytest.mark.integration
@pytest.mark.parametrize("command", COMMANDS)
def test_missing_source_table_is_named(tmp_path, dynamodb_local, alternator_clean, command):
    table = unique("no_such_table")
    path = config_file(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [table])

    result = run_cli(command, "--config", str(path))

    assert_user_error(result, f"source table {table} does not exist", dynamodb_local.endpoint,
                      "tables[].source")
    assert not table_exists(alternator_clean.url, table)


@pytest.mark.integration
@pytest.mark.parametrize("target_kind", ["alternator", "endpoint"])
def test_target_with_another_key_schema_stops_before_writing(tmp_path, dynamodb_local, alternator_clean,
                                                             target_kind):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("music")
    seed.create_table(source, table, **seed.keyed_by("Artist", sort=("SongTitle", "S")))
    seed.put_items(source, table, seed.MUSIC_ITEMS)
    seed.create_table(target, table, **seed.keyed_by("id", "N"))
    sentinel = {"id": {"N": "1"}, "note": {"S": "was here before"}}
    seed.put_items(target, table, [sentinel])
    target_section = alternator_target(alternator_clean) if target_kind == "alternator" else endpoint_target(
        alternator_clean)
    path = config_file(tmp_path, source, target_section, [table])

    result = run_cli("migrate", "--config", str(path), "--no-progress")

    assert_user_error(result, f"target table {table} exists with key schema [id N (HASH)]",
                      "needs [Artist S (HASH), SongTitle S (RANGE)]", "drop or rename the target table")
    assert seed.scan_all(target, table) == [sentinel]  # nothing written
    description = seed.client_for(target).describe_table(TableName=table)["Table"]
    assert description["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


@pytest.mark.integration
@pytest.mark.parametrize("command", ["create-tables", "migrate"])
def test_create_never_with_a_missing_target_table(tmp_path, dynamodb_local, alternator_clean, command):
    table = unique("never")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_PK)
    seed.put_items(dynamodb_local.endpoint, table, [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}])
    target_table = table + "_copy"
    path = config_file(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                       [{"source": table, "target": target_table, "create": "never"}])

    result = run_cli(command, "--config", str(path), *(["--no-progress"] if command == "migrate" else []))

    assert_user_error(result, f"target table {target_table} does not exist", "create is 'never'",
                      "create: if_missing")
    assert not table_exists(alternator_clean.url, target_table)
    assert target_table not in seed.table_names(alternator_clean.url)


# --- the real console script -----------------------------------------------------------------


@pytest.mark.integration
def test_console_script_unreachable_source(tmp_path):
    script = REPO_ROOT / ".venv" / "bin" / "alternator-migrate"
    source = unused_endpoint()
    path = config_file(tmp_path, source, {"endpoint": unused_endpoint()}, [unique("Music")])
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

    completed = subprocess.run([str(script), "migrate", "--config", str(path), "--no-progress"],
                               capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
                               stdin=subprocess.DEVNULL)

    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr and "Traceback" not in completed.stdout
    assert SECRET not in completed.stderr and SECRET not in completed.stdout
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, completed.stderr
    assert f"cannot reach source {source}" in error_lines[0]


def test_a_profile_that_does_not_exist(tmp_path, alternator_clean, monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-aws-config"))
    config = write_config(tmp_path, "http://127.0.0.1:1", alternator_target(alternator_clean), ["t1x"])
    edit_config(config, lambda raw: raw["source"].update(credentials={"profile": "nobody-has-this"}))
    assert_user_error(run_cli("plan", "--config", str(config)), "nobody-has-this", "source.credentials")


def test_report_in_a_folder_that_does_not_exist_fails_before_the_run(tmp_path, alternator_clean):
    config = write_config(tmp_path, "http://127.0.0.1:1", alternator_target(alternator_clean), ["t1x"])
    report = tmp_path / "missing-folder" / "r.json"
    for command in ("migrate", "validate"):
        assert_user_error(run_cli(command, "--config", str(config), "--report", str(report)),
                          "missing-folder", "does not exist")
