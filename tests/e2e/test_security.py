"""TLS to a private cluster, signed requests, and data at rest on disk.

The Alternator front serves HTTPS with a certificate from a CA made in the test, and can
enforce SigV4 signatures the way Alternator does with `alternator_enforce_authorization`.
"""
from __future__ import annotations

import json
import stat

import pytest

from testbed import seed
from testbed.alternator_front import AlternatorFront
from testbed.servers import LocalAlternator
from testbed.tls import make_ca, make_server_certificate
from tests.support.cli_runs import error_lines, run_cli, run_script, unique, write_config

pytestmark = pytest.mark.integration

NODES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
USERS = {"alternator": "salted-hash-of-the-role-password"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    return {"ca": ca[0].cert_path, "good": make_server_certificate(folder, ca, NODES, "nodes"),
            "wrong_name": make_server_certificate(folder, ca, ("127.0.0.9",), "elsewhere"),
            "other_ca": make_ca(folder, "another-ca")[0].cert_path}


@pytest.fixture(scope="module")
def https_alternator(pki, _fake_aws_env_if_absent):
    with LocalAlternator(ssl_context=pki["good"].server_context()) as server:
        yield server


@pytest.fixture(scope="module")
def misnamed_alternator(pki, _fake_aws_env_if_absent):
    with LocalAlternator(ssl_context=pki["wrong_name"].server_context()) as server:
        yield server


def _https_target(server, **tls) -> dict:
    return {"alternator": {"seeds": ["127.0.0.1"], "port": server.port, "scheme": "https"}, **tls}


def _seeded(source: str, count: int = 150) -> str:
    table = unique("secured")
    seed.seed_all_types(source, table, count=count)
    return table


def _tables_at(server, ca_file) -> list[str]:
    return seed.table_names(server.url, verify=str(ca_file))


def test_migrate_and_validate_over_https_with_a_private_ca(dynamodb_local, https_alternator, pki, tmp_path):
    table = _seeded(dynamodb_local.endpoint)
    config = write_config(tmp_path, dynamodb_local.endpoint, _https_target(https_alternator, ca_file=str(pki["ca"])),
                          [{"source": table}])

    migrated = run_cli("migrate", "--config", str(config), "--no-progress")
    validated = run_cli("validate", "--config", str(config))

    assert migrated.exit_code == 0, migrated.output
    assert validated.exit_code == 0 and "every table matches" in validated.output, validated.output
    assert len(seed.scan_all(https_alternator.url, table, verify=str(pki["ca"]))) == 150
    requests = https_alternator.front.stats()["requests_by_address"]
    assert len([address for address in requests if requests[address]]) > 1  # discovery worked over HTTPS too


@pytest.mark.parametrize("tls, cause", [({}, "unable to get local issuer certificate"),
                                        ("other_ca", "unable to get local issuer certificate")])
def test_an_unverifiable_certificate_stops_before_writing(dynamodb_local, https_alternator, pki, tmp_path, tls,
                                                          cause):
    table = _seeded(dynamodb_local.endpoint, 5)
    target = _https_target(https_alternator, **({"ca_file": str(pki[tls])} if tls else {}))
    config = write_config(tmp_path, dynamodb_local.endpoint, target, [{"source": table}])

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert f"https://127.0.0.1:{https_alternator.port}" in line and cause in line and "target.ca_file" in line
    assert line.startswith("error: cannot verify the TLS certificate of target")
    assert table not in _tables_at(https_alternator, pki["ca"])


def test_a_certificate_for_another_host_name_stops_before_writing(dynamodb_local, misnamed_alternator, pki,
                                                                  tmp_path):
    table = _seeded(dynamodb_local.endpoint, 5)
    config = write_config(tmp_path, dynamodb_local.endpoint,
                          _https_target(misnamed_alternator, ca_file=str(pki["ca"])), [{"source": table}])

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert "mismatch" in line.lower() and "does not name the host" in line


def test_plan_of_a_rollback_from_an_https_alternator_trusts_its_ca_file(dynamodb_local, https_alternator, pki,
                                                                       tmp_path):
    """A rollback reads Alternator over https: `plan` asks the source for /localnodes (is it
    Alternator?) with the source's ca_file, then warns of a table that cannot stream."""
    table = unique("way_back")
    seed.client_for(https_alternator.url, verify=str(pki["ca"])).create_table(TableName=table, **seed.keyed_by("id"))
    seed.create_table(dynamodb_local.endpoint, table, **seed.STREAMED_TABLE)
    source = {"endpoint": https_alternator.url, "region": "us-east-1", "ca_file": str(pki["ca"])}
    config = write_config(tmp_path, https_alternator.url, {"endpoint": dynamodb_local.endpoint, "credentials": {
                          "access_key_id": "test", "secret_access_key": "test"}},
                          [{"source": table, "create": "never"}], source=source)

    result = run_cli("plan", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert f"warning: source table {table} cannot stream" in result.output, result.output


def test_insecure_skip_verify_works_and_warns_on_every_run(dynamodb_local, https_alternator, pki, tmp_path):
    table = _seeded(dynamodb_local.endpoint, 20)
    config = write_config(tmp_path, dynamodb_local.endpoint,
                          _https_target(https_alternator, insecure_skip_verify=True), [{"source": table}])

    for command in (("migrate", "--no-progress"), ("validate",)):
        result = run_cli(command[0], "--config", str(config), *command[1:])
        assert result.exit_code == 0, result.output
        assert "warning: target.insecure_skip_verify is on" in result.output


def test_a_ca_file_that_is_not_a_certificate_is_a_config_error(tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    config = write_config(tmp_path, "http://127.0.0.1:1", {"endpoint": "https://127.0.0.1:2",
                                                           "ca_file": str(bogus)}, ["t1x"])

    result = run_cli("plan", "--config", str(config))

    assert result.exit_code == 2
    (line,) = error_lines(result.output)
    assert "target.ca_file" in line and "no PEM certificate" in line


@pytest.fixture
def enforcing(alternator_clean):
    alternator_clean.front.require_signatures(USERS)
    yield alternator_clean
    alternator_clean.front.require_signatures(None)


@pytest.mark.parametrize("credentials, refusal", [
    ({"access_key_id": "alternator", "secret_access_key": "not-the-secret"}, "wrong signature"),
    ({"access_key_id": "nobody", "secret_access_key": "x"}, "User not found"),
    (None, "MissingAuthenticationTokenException"),
])
def test_a_refused_signature_is_a_clear_error_not_a_retry_loop(dynamodb_local, enforcing, tmp_path, credentials,
                                                                refusal):
    table = _seeded(dynamodb_local.endpoint, 5)
    target = {"alternator": {"seeds": ["127.0.0.1"], "port": enforcing.port}}
    if credentials:
        target["credentials"] = credentials
    config = write_config(tmp_path, dynamodb_local.endpoint, target, [{"source": table}])

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert refusal in line and "target.credentials" in line
    assert "not-the-secret" not in result.output
    assert sum(enforcing.front.stats()["requests_by_operation"].values()) < 10  # refused once, not retried


def test_signed_requests_are_accepted_by_an_enforcing_cluster(dynamodb_local, enforcing, tmp_path):
    table = _seeded(dynamodb_local.endpoint, 120)
    target = {"alternator": {"seeds": ["127.0.0.1"], "port": enforcing.port},
              "credentials": {"access_key_id": "alternator", "secret_access_key": USERS["alternator"]}}
    config = write_config(tmp_path, dynamodb_local.endpoint, target, [{"source": table}])

    migrated = run_cli("migrate", "--config", str(config), "--no-progress")
    validated = run_cli("validate", "--config", str(config))

    assert migrated.exit_code == 0, migrated.output
    assert validated.exit_code == 0, validated.output
    operations = enforcing.front.stats()["requests_by_operation"]
    assert operations.get("BatchWriteItem", 0) > 0 and operations.get("Scan", 0) > 0


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_with_customer_data_are_private(dynamodb_local, alternator_clean, tmp_path):
    table = _seeded(dynamodb_local.endpoint, 60)
    alternator_clean.front.set_faults(throttle=1.0, ops=["BatchWriteItem"])
    config = write_config(tmp_path, dynamodb_local.endpoint,
                          {"alternator": {"seeds": ["127.0.0.1"], "port": alternator_clean.port}},
                          [{"source": table}], write={"max_attempts": 1})

    failed = run_script("migrate", "--config", str(config), "--no-progress", "--report", str(tmp_path / "r.json"),
                        cwd=tmp_path)
    alternator_clean.front.set_faults()
    checked = run_script("validate", "--config", str(config), "--report", str(tmp_path / "v.json"), cwd=tmp_path)

    assert failed.returncode == 1 and checked.returncode == 1, failed.stderr + checked.stderr
    letters = list((tmp_path / "dead-letter").glob(f"run-*/{table}/*.jsonl"))
    findings = list((tmp_path / "checkpoints" / "validate").glob("run-*/findings*.jsonl"))
    logs = list((tmp_path / "checkpoints" / "logs").glob("*.log"))
    assert letters and findings and logs
    for path in letters + findings + logs + [tmp_path / "r.json", tmp_path / "v.json"]:
        assert _mode(path) == 0o600, path
    for folder in {p.parent for p in letters + findings} | {p.parent.parent for p in letters} | \
            {tmp_path / "dead-letter", tmp_path / "checkpoints"}:
        assert _mode(folder) == 0o700, folder
    assert json.loads(letters[0].read_text().splitlines()[0])["item"]  # they do hold item values


@pytest.fixture(scope="module")
def https_source(dynamodb_local, pki):
    """DynamoDB Local behind an HTTPS front: a source reached through a private CA."""
    front = AlternatorFront(dynamodb_local.endpoint, ("127.0.0.1",), ssl_context=pki["good"].server_context())
    front.start()
    yield front
    front.stop()


def test_the_source_is_verified_with_its_own_ca_file(dynamodb_local, https_source, alternator_clean, pki,
                                                     tmp_path):
    table = _seeded(dynamodb_local.endpoint, 30)
    target = {"alternator": {"seeds": ["127.0.0.1"], "port": alternator_clean.port}}
    source = {"endpoint": https_source.url, "region": "us-east-1",
              "credentials": {"access_key_id": "test", "secret_access_key": "test"}}

    refused = run_cli("migrate", "--config", str(write_config(tmp_path, https_source.url, target, [table],
                                                                  source=source)), "--no-progress")
    config = write_config(tmp_path, https_source.url, target, [table],
                          source={**source, "ca_file": str(pki["ca"])})
    copied = run_cli("migrate", "--config", str(config), "--no-progress")

    assert refused.exit_code == 2, refused.output
    (line,) = error_lines(refused.output)
    assert line.startswith(f"error: cannot verify the TLS certificate of source {https_source.url}")
    assert "source.ca_file" in line
    assert copied.exit_code == 0, copied.output
    assert len(seed.scan_all(alternator_clean.url, table)) == 30


def _trust_the_ca(how: str, ca, tmp_path, monkeypatch) -> dict:
    """Source settings (and an environment) that make the run trust `ca` in one of the ways the
    AWS SDK takes a CA: `source.ca_file`, AWS_CA_BUNDLE, or the profile's `ca_bundle`
    (https://docs.aws.amazon.com/sdkref/latest/guide/feature-gen-config.html)."""
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    source = {"region": "us-east-1",
              "credentials": {"access_key_id": "test", "secret_access_key": "test"}}
    if how == "ca_file":
        source["ca_file"] = str(ca)
    elif how == "AWS_CA_BUNDLE":
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
    else:
        (tmp_path / "config").write_text(f"[profile migrator]\nca_bundle = {ca}\n")
        (tmp_path / "credentials").write_text("[migrator]\naws_access_key_id = test\naws_secret_access_key = test\n")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
        source["credentials"] = {"profile": "migrator"}
    return source


@pytest.mark.parametrize("how", ["ca_file", "AWS_CA_BUNDLE", "profile ca_bundle"])
def test_replication_reads_the_stream_over_https_trusting_the_ca_as_the_sdk_does(dynamodb_local, https_source,
                                                                                alternator_clean, pki, tmp_path,
                                                                                monkeypatch, how):
    """DescribeTable and DescribeStream (the SDK), Scan (the data plane) and GetRecords (the
    Streams data plane) all trust the CA given in any of the SDK's ways: one TLS context."""
    table = unique("secured_stream")
    seed.create_table(dynamodb_local.endpoint, table, **seed.keyed_by("id", streamed=True))
    seed.client_for(dynamodb_local.endpoint).put_item(TableName=table, Item={"id": {"S": "copied"}})
    target = {"alternator": {"seeds": ["127.0.0.1"], "port": alternator_clean.port}}
    source = {"endpoint": https_source.url, **_trust_the_ca(how, pki["ca"], tmp_path, monkeypatch)}
    config = write_config(tmp_path, https_source.url, target, [table], source=source)
    assert run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up",
                   "--no-progress").exit_code == 0
    seed.client_for(dynamodb_local.endpoint).put_item(TableName=table, Item={"id": {"S": "a"}, "v": {"N": "1"}})

    result = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert result.exit_code == 0, result.output
    assert seed.table_items(alternator_clean.url, table) == sorted(
        seed.canonical(item) for item in [{"id": {"S": "copied"}}, {"id": {"S": "a"}, "v": {"N": "1"}}])
