"""The IAM policies in docs/iam/ are what each command needs on AWS, no less: the commands run
as an IAM user (or an assumed role) holding exactly the policies docs/permissions.md lists
for them, read from those files, and succeed; with one action taken out of a policy, the
command stops with one `error:` line naming that action (S3 names no action: the line names
the bucket or object refused).

AWS is moto with IAM enforced, amended to authorize each request against the resource AWS
authorizes it against (`testbed/moto_iam.py`): the policies' table, stream, Kinesis
data stream and object ARNs are checked too, not only their actions. A table followed on a
Kinesis data stream has its changes written there as DynamoDB writes them
(`testbed/kinesis_changes.py`), into the same moto. What moto does not check, so
these tests cannot show either: condition keys other than a trust policy's
`sts:ExternalId`, resource-based policies of tables, streams, Kinesis data streams and
buckets, KMS keys (exports encrypted with SSE-KMS, and Kinesis data streams encrypted with a
customer managed key, also need `kms:Decrypt`), permission boundaries and organizations'
SCPs. Not exercised here: `dynamodb:BatchGetItem` in source-streams.json (only KEYS_ONLY and
OLD_IMAGE streams read items back), `dynamodb:TagResource` of rollback-target.json (the
source there, DynamoDB Local, has no tags to copy), `s3:ListBucket`/`s3:GetObject` of the
Parquet folder written by `export` (shown for the same policy on the state bucket), `capture` (it
runs until interrupted; it reads the streams as `migrate --streams` does, with the same
policies); a Kinesis data stream resharded or with more than one page of shards (moto's
own resharding is not Kinesis's, `testbed/moto_kinesis.py`, and a `ListShards` naming
only its `NextToken` is checked against `*`).

The target is the Alternator stand-in, which does not use IAM (docs/alternator-auth.md),
except in the rollback tests, where the target is moto's DynamoDB.
"""
from __future__ import annotations

import json
import re

import boto3
import pytest

from testbed import seed
from testbed.exports import s3_client, write_full_export
from testbed.kinesis_changes import KinesisTable
from testbed.servers import REPO_ROOT, IamMotoServer
from tests.support.cli_runs import alternator_target, error_lines, run_cli, unique, write_config
from tests.support.stores import unique_bucket
from transforms.state.dead_letters import letter_files

pytestmark = pytest.mark.integration

POLICIES = REPO_ROOT / "docs" / "iam"
REGION, ACCOUNT = "us-east-1", "123456789012"  # moto's account
PLACEHOLDER = re.compile(r"\b(REGION|ACCOUNT|TABLE|STREAM|BUCKET|PREFIX|ROLE|USER|EXTERNAL_ID)\b")
SETUP_KEYS = dict(region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")


def policy(name: str, without: str | None = None, **names: str) -> str:
    """docs/iam/<name> with its placeholders filled in; `without`: that action taken out."""
    values = {"REGION": REGION, "ACCOUNT": ACCOUNT, **names}
    document = json.loads(PLACEHOLDER.sub(lambda match: values[match[1]], (POLICIES / name).read_text()))
    if without:
        actions = [statement["Action"] for statement in document["Statement"]]
        assert any(without in action for action in actions), f"{name} does not grant {without}"
        for statement in document["Statement"]:
            statement["Action"] = [action for action in statement["Action"] if action != without]
        document["Statement"] = [statement for statement in document["Statement"] if statement["Action"]]
    return json.dumps(document)


@pytest.fixture(scope="module")
def aws(_fake_aws_env_if_absent):
    with IamMotoServer() as server:
        yield server


class Account:
    """The test's AWS account on `aws`: set up with IAM off, used with IAM enforced."""

    def __init__(self, server: IamMotoServer):
        self.server = server
        self.endpoint = server.endpoint
        self.iam = boto3.client("iam", endpoint_url=server.endpoint, **SETUP_KEYS)

    def user(self, policies: dict[str, str]) -> dict:
        """A new IAM user holding these policies (name -> document); its keys, as a config's credentials."""
        name = unique("migrator")
        self.iam.create_user(UserName=name)
        for policy_name, document in policies.items():
            self.iam.put_user_policy(UserName=name, PolicyName=policy_name, PolicyDocument=document)
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"], "name": name}

    def bucket(self) -> str:
        name = unique_bucket("state")
        boto3.client("s3", endpoint_url=self.endpoint, **SETUP_KEYS).create_bucket(Bucket=name)
        return name

    def run(self, *args: str):
        """Run a command with IAM enforced."""
        self.server.enforce_iam()
        try:
            return run_cli(*args)
        finally:
            self.server.enforce_iam(False)


@pytest.fixture
def account(aws) -> Account:
    aws.enforce_iam(False)
    return Account(aws)


def _credentials(user: dict) -> dict:
    return {"access_key_id": user["access_key_id"], "secret_access_key": user["secret_access_key"]}


def _s3_state(account: Account, user: dict, bucket: str) -> dict:
    """Config sections keeping the run's state under s3://bucket/run, reached with the user's keys."""
    return {"checkpoint_dir": f"s3://{bucket}/run/checkpoints", "dead_letter_dir": f"s3://{bucket}/run/dead-letter",
            "pipeline_options": {"runner": "DirectRunner", "s3_endpoint_url": account.endpoint,
                                 "s3_region_name": REGION, "s3_access_key_id": user["access_key_id"],
                                 "s3_secret_access_key": user["secret_access_key"]}}


def _source_config(tmp_path, account: Account, alternator, table: str | dict, user: dict, bucket: str | None):
    """A run from moto's DynamoDB (as `user`) to the Alternator stand-in; state on S3 when `bucket`.
    moto's Kinesis serves the tables that name a `kinesis_stream_arn`."""
    source = {"endpoint": account.endpoint, "kinesis_endpoint": account.endpoint, "region": REGION,
              "credentials": _credentials(user)}
    state = _s3_state(account, user, bucket) if bucket else {}
    return write_config(tmp_path, account.endpoint, alternator_target(alternator), [table], source=source, **state)


def _streamed_table(account: Account, changes: int = 20) -> str:
    table = unique("songs")
    seed.create_table(account.endpoint, table, **seed.STREAMED_TABLE)
    seed.stream_changes(account.endpoint, table, 0, changes)
    return table


def _kinesis_table(account: Account, changes: int = 20) -> KinesisTable:
    """A table (no DynamoDB stream) whose changes went to a Kinesis data stream (two shards), both moto's."""
    table = unique("kinesis")
    seed.create_table(account.endpoint, table, **seed.keyed_by("id"))
    made = KinesisTable(account.endpoint, account.endpoint, table)
    _kinesis_changes(made, 0, changes)
    return made


def _kinesis_changes(made: KinesisTable, start: int, count: int) -> None:
    made.deliver(*(made.put({"id": {"S": f"k{i:05d}"}, "n": {"N": str(i)}}) for i in range(start, start + count)))


def test_copy_replication_and_validation_need_only_the_documented_policies(account, alternator_clean, tmp_path):
    table, bucket = _streamed_table(account, 30), account.bucket()
    names = {"TABLE": table, "BUCKET": bucket, "PREFIX": "run"}
    user = account.user({name: policy(name, **names)
                         for name in ("source-read.json", "source-streams.json", "bucket-read-write.json")})
    config = _source_config(tmp_path, account, alternator_clean, table, user, bucket)

    copied = account.run("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress")
    seed.stream_changes(account.endpoint, table, 30, 10)
    replicated = account.run("replicate", "--config", str(config), "--until-caught-up")
    same = seed.assert_same_items(account.endpoint, alternator_clean.url, table)
    seed.client_for(alternator_clean.url).put_item(TableName=table, Item={"id": {"S": "k00000"}, "n": {"N": "-1"}})
    validated = account.run("validate", "--config", str(config), "--report", str(tmp_path / "v.json"))

    assert copied.exit_code == 0, copied.output
    assert replicated.exit_code == 0, replicated.output
    assert same == 40
    # The difference is found by re-reading the key on both sides (BatchGetItem at the source).
    assert validated.exit_code == 1, validated.output
    assert json.loads((tmp_path / "v.json").read_text())["tables"][table]["different"] == 1
    outputs = copied.output + replicated.output + validated.output
    assert "AccessDenied" not in outputs and user["secret_access_key"] not in outputs


_SOURCE_AND_STATE = ("source-read.json", "bucket-read-write.json")
_STREAMS_AND_STATE = ("source-streams.json", "bucket-read-write.json")


@pytest.mark.parametrize("name, action, policies, command, code", [
    ("source-read.json", "dynamodb:DescribeTable", _SOURCE_AND_STATE, ["plan"], 2),
    ("source-read.json", "dynamodb:DescribeTimeToLive", _SOURCE_AND_STATE, ["create-tables"], 2),
    ("source-read.json", "dynamodb:ListTagsOfResource", _SOURCE_AND_STATE, ["create-tables"], 2),
    ("source-read.json", "dynamodb:Scan", _SOURCE_AND_STATE, ["migrate", "--no-progress"], 4),
    ("source-streams.json", "dynamodb:DescribeTable", _STREAMS_AND_STATE, ["replicate"], 2),
    ("source-streams.json", "dynamodb:DescribeStream", _STREAMS_AND_STATE, ["replicate"], 4),
    ("source-streams.json", "dynamodb:GetShardIterator", _STREAMS_AND_STATE, ["replicate"], 4),
    ("source-streams.json", "dynamodb:GetRecords", _STREAMS_AND_STATE, ["replicate"], 4),
    ("bucket-read-write.json", "s3:ListBucket", _STREAMS_AND_STATE, ["replicate"], 2),
    ("bucket-read-write.json", "s3:GetObject", _STREAMS_AND_STATE, ["replicate"], 4),
    ("bucket-read-write.json", "s3:PutObject", _STREAMS_AND_STATE, ["replicate"], 4),
    ("bucket-read-write.json", "s3:DeleteObject", _STREAMS_AND_STATE, ["replicate"], 4),
])
def test_each_action_of_a_policy_is_needed(account, alternator_clean, tmp_path, name, action, policies, command,
                                           code):
    table, bucket = _streamed_table(account), account.bucket()
    names = {"TABLE": table, "BUCKET": bucket, "PREFIX": "run"}
    user = account.user({each: policy(each, without=action if each == name else None, **names)
                         for each in policies})
    config = _source_config(tmp_path, account, alternator_clean, table, user, bucket)

    result = account.run(*command, "--config", str(config))

    assert result.exit_code == code, result.output
    line, = error_lines(result.output)
    if action.startswith("dynamodb:"):
        assert f"not authorized to perform: {action} on resource: arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}" \
               in line
        if code == 2:  # found by the table step: the line says where the permissions are listed
            assert "docs/permissions.md" in line
    else:  # S3 says "Access Denied" (403) without naming the action
        assert f"s3://{bucket}/run/" in line or f"S3 bucket {bucket}" in line
        assert "Access Denied" in line or "access denied" in line or "Forbidden" in line
    assert user["secret_access_key"] not in result.output


def test_the_policies_allow_only_the_tables_and_folders_they_name(account, alternator_clean, tmp_path):
    table, bucket = _streamed_table(account), account.bucket()
    other_table = {"source-read.json": policy("source-read.json", TABLE=unique("other")),
                   "bucket-read-write.json": policy("bucket-read-write.json", BUCKET=bucket, PREFIX="run")}
    other_folder = {"source-streams.json": policy("source-streams.json", TABLE=table),
                    "bucket-read-write.json": policy("bucket-read-write.json", BUCKET=bucket, PREFIX="elsewhere")}

    planned = account.run("plan", "--config", str(_source_config(
        tmp_path, account, alternator_clean, table, account.user(other_table), bucket)))
    replicated = account.run("replicate", "--config", str(_source_config(
        tmp_path, account, alternator_clean, table, account.user(other_folder), bucket)))

    assert planned.exit_code == 2, planned.output
    assert f"dynamodb:DescribeTable on resource: arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table} " in \
        error_lines(planned.output)[0]
    assert replicated.exit_code == 4, replicated.output
    line, = error_lines(replicated.output)
    assert f"s3://{bucket}/run/" in line and "403" in line


_KINESIS_MIGRATE = ("source-read.json", "source-streams.json", "source-kinesis.json", "bucket-read-write.json")
_KINESIS_REPLICATE = ("source-streams.json", "source-kinesis.json", "bucket-read-write.json")


def test_a_table_followed_on_kinesis_needs_only_the_documented_policies(account, alternator_clean, tmp_path):
    """migrate --streams and replicate of a table whose changes go to a Kinesis data stream, each
    as a user holding the files docs/permissions.md lists for the command, + source-kinesis.json."""
    made, bucket = _kinesis_table(account, 30), account.bucket()
    names = {"TABLE": made.table, "STREAM": made.stream_name, "BUCKET": bucket, "PREFIX": "run"}
    table = {"source": made.table, "kinesis_stream_arn": made.arn}

    def run(*command: str, policies: tuple[str, ...], **other: str):
        user = account.user({name: policy(name, **{**names, **other}) for name in policies})
        config = _source_config(tmp_path, account, alternator_clean, table, user, bucket)
        return account.run(*command, "--config", str(config)), user

    (copied, migrator) = run("migrate", "--streams", "--until-caught-up", "--no-progress", policies=_KINESIS_MIGRATE)
    _kinesis_changes(made, 30, 10)
    (replicated, replicator) = run("replicate", "--until-caught-up", policies=_KINESIS_REPLICATE)
    (elsewhere, _) = run("replicate", "--until-caught-up", policies=_KINESIS_REPLICATE, STREAM=unique("other"))

    assert copied.exit_code == 0, copied.output
    assert replicated.exit_code == 0, replicated.output
    assert "caught up" in replicated.output
    assert seed.assert_same_items(account.endpoint, alternator_clean.url, made.table) == 40
    outputs = copied.output + replicated.output
    assert "AccessDenied" not in outputs
    assert migrator["secret_access_key"] not in outputs and replicator["secret_access_key"] not in outputs
    # A policy naming another stream allows nothing on this one.
    assert elsewhere.exit_code == 2, elsewhere.output
    line, = error_lines(elsewhere.output)
    assert f"not authorized to perform: kinesis:DescribeStreamSummary on resource: {made.arn} " in line


@pytest.mark.parametrize("action, code", [
    ("kinesis:DescribeStreamSummary", 2),
    ("kinesis:ListShards", 4),
    ("kinesis:GetShardIterator", 4),
    ("kinesis:GetRecords", 4),
])
def test_each_action_of_the_kinesis_policy_is_needed(account, alternator_clean, tmp_path, action, code):
    made, bucket = _kinesis_table(account), account.bucket()
    names = {"TABLE": made.table, "STREAM": made.stream_name, "BUCKET": bucket, "PREFIX": "run"}
    user = account.user({each: policy(each, without=action if each == "source-kinesis.json" else None, **names)
                         for each in _KINESIS_REPLICATE})
    config = _source_config(tmp_path, account, alternator_clean, {"source": made.table, "kinesis_stream_arn": made.arn},
                            user, bucket)
    created = run_cli("create-tables", "--config", str(config))  # IAM not enforced: the table replicate writes to

    result = account.run("replicate", "--config", str(config))

    assert created.exit_code == 0, created.output
    assert result.exit_code == code, result.output
    line, = error_lines(result.output)
    assert f"not authorized to perform: {action} on resource: arn:aws:kinesis:{REGION}:{ACCOUNT}:" \
           f"stream/{made.stream_name} " in line
    if code == 2:  # found before anything is read: the line says where the permissions are listed
        assert "docs/permissions.md" in line
    assert user["secret_access_key"] not in result.output


def test_enable_streams_needs_update_table_and_nothing_else(account, alternator_clean, tmp_path):
    table, bucket = unique("unstreamed"), account.bucket()
    seed.create_table(account.endpoint, table, **seed.keyed_by("id"))
    seed.put_items(account.endpoint, table, [{"id": {"S": f"k{i}"}} for i in range(10)])
    names = {"TABLE": table, "BUCKET": bucket, "PREFIX": "run"}
    usual = {name: policy(name, **names) for name in ("source-read.json", "source-streams.json",
                                                      "bucket-read-write.json")}
    arguments = ["migrate", "--streams", "--enable-streams", "--until-caught-up", "--no-progress"]

    without = account.run(*arguments, "--config", str(_source_config(
        tmp_path, account, alternator_clean, table, account.user(usual), bucket)))
    enabled = account.run(*arguments, "--config", str(_source_config(
        tmp_path, account, alternator_clean, table,
        account.user({**usual, "source-enable-streams.json": policy("source-enable-streams.json", **names)}), bucket)))

    assert without.exit_code == 4, without.output
    line, = error_lines(without.output)
    assert "not authorized to perform: dynamodb:UpdateTable" in line
    assert enabled.exit_code == 0, enabled.output
    assert seed.assert_same_items(account.endpoint, alternator_clean.url, table) == 10


def test_a_role_assumed_with_the_documented_trust_and_permission_policies(account, alternator_clean, tmp_path,
                                                                          monkeypatch):
    """sts:AssumeRole is checked twice: the base user must be allowed to call it on the role
    (assume-role.json), and the role's trust policy must name that user with the external id
    (assume-role-trust.json); the role holds the source's policy."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", account.endpoint)
    table, external_id = _streamed_table(account, 5), "cutover-2026"

    def role_trusting(user: dict, with_permission: bool) -> str:
        """A role that trusts `user`, reading the source; `user` may assume it if `with_permission`."""
        name = unique("migration")
        trust = policy("assume-role-trust.json", USER=user["name"], EXTERNAL_ID=external_id)
        arn = account.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        account.iam.put_role_policy(RoleName=name, PolicyName="source-read",
                                    PolicyDocument=policy("source-read.json", TABLE=table))
        if with_permission:
            account.iam.put_user_policy(UserName=user["name"], PolicyName="assume-role",
                                        PolicyDocument=policy("assume-role.json", ROLE=name))
        return arn

    def plan(user: dict, role_arn: str, external: str):
        credentials = {**_credentials(user), "role_arn": role_arn, "external_id": external}
        source = {"endpoint": account.endpoint, "region": REGION, "credentials": credentials}
        config = write_config(tmp_path, account.endpoint, alternator_target(alternator_clean), [table],
                              source=source)
        return account.run("plan", "--config", str(config))

    allowed, not_allowed = account.user({}), account.user({})
    role, role_without = role_trusting(allowed, True), role_trusting(not_allowed, False)
    planned = plan(allowed, role, external_id)
    wrong_id = plan(allowed, role, "guessed")  # refused by the trust policy
    forbidden = plan(not_allowed, role_without, external_id)  # refused: no sts:AssumeRole on the role

    assert planned.exit_code == 0, planned.output
    assert f"{table} -> {table}" in planned.output
    # Without source-streams, plan cannot sample the table's stream: it says so and goes on.
    assert "its stream could not be sampled (AccessDeniedException: " in planned.output
    for refused in (wrong_id, forbidden):
        assert refused.exit_code == 2, refused.output
        line, = error_lines(refused.output)
        assert "sts:AssumeRole" in line and "AccessDenied" in line and "docs/permissions.md" in line
    assert allowed["secret_access_key"] not in planned.output + wrong_id.output


def test_exports_read_and_parquet_written_with_the_bucket_policies(account, alternator_clean, tmp_path):
    table, bucket = _streamed_table(account, 25), account.bucket()
    folder = write_full_export(s3_client(account.endpoint), bucket, "exports",
                               seed.scan_all(account.endpoint, table), files=2)
    reader = account.user({"source-read.json": policy("source-read.json", TABLE=table),
                           "bucket-read.json": policy("bucket-read.json", BUCKET=bucket, PREFIX="exports")})
    denied = account.user({"source-read.json": policy("source-read.json", TABLE=table),
                           "bucket-read.json": policy("bucket-read.json", without="s3:GetObject", BUCKET=bucket,
                                                      PREFIX="exports")})
    writer = account.user({"source-read.json": policy("source-read.json", TABLE=table),
                           "bucket-read-write.json": policy("bucket-read-write.json", BUCKET=bucket,
                                                            PREFIX="parquet")})

    def config(user: dict, tables: list):
        source = {"endpoint": account.endpoint, "region": REGION, "credentials": _credentials(user)}
        s3 = {key: value for key, value in _s3_state(account, user, bucket)["pipeline_options"].items()}
        return str(write_config(tmp_path, account.endpoint, alternator_target(alternator_clean), tables,
                                source=source, pipeline_options=s3))

    refused = account.run("migrate", "--no-progress", "--config", config(denied, [{"source": table, "export": folder}]))
    migrated = account.run("migrate", "--no-progress", "--config", config(reader, [{"source": table,
                                                                                     "export": folder}]))
    exported = account.run("export", "--to", f"s3://{bucket}/parquet", "--config", config(writer, [table]))

    assert refused.exit_code == 4, refused.output
    line, = error_lines(refused.output)  # S3 answers a HeadObject it refuses with a bare 403
    assert f"{folder}manifest-summary.json" in line and "403" in line and "Forbidden" in line
    assert migrated.exit_code == 0, migrated.output
    assert seed.assert_same_items(account.endpoint, alternator_clean.url, table) == 25
    assert exported.exit_code == 0, exported.output
    assert f"{table}: 25 items" in exported.output


def test_a_rollback_target_needs_only_the_documented_policy(account, dynamodb_local, tmp_path):
    """Rollback: the target is AWS DynamoDB (here moto's), written as a user with rollback-target.json."""
    table = unique("rollback")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=60)  # with a GSI, an LSI and TTL

    def run(*command: str, without: str | None = None):
        """The command in a folder of its own (its state and letters), as a user holding the policy."""
        user = account.user({"rollback-target.json": policy("rollback-target.json", without=without, TABLE=table)})
        target = {"endpoint": account.endpoint, "region": REGION, "credentials": _credentials(user)}
        folder = tmp_path / f"{command[0]}-{without or 'all'}"
        folder.mkdir()
        return account.run(*command, "--config", str(write_config(folder, dynamodb_local.endpoint, target, [table]))), \
            folder / "dead-letter"

    cannot_create, _ = run("create-tables", without="dynamodb:CreateTable")
    created, _ = run("create-tables")
    cannot_write, letters = run("migrate", "--no-progress", without="dynamodb:BatchWriteItem")
    migrated, _ = run("migrate", "--no-progress")
    validated, _ = run("validate")

    assert cannot_create.exit_code == 2, cannot_create.output
    line, = error_lines(cannot_create.output)
    assert f"not authorized to perform: dynamodb:CreateTable on resource: arn:aws:dynamodb:{REGION}:{ACCOUNT}:" \
           f"table/{table}" in line
    assert created.exit_code == 0, created.output
    ttl = boto3.client("dynamodb", endpoint_url=account.endpoint, **SETUP_KEYS).describe_time_to_live(TableName=table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    # A target refusing every write stops the run with one line, exit 4 (fix, then --resume),
    # instead of sending every item to the dead-letter folder.
    assert cannot_write.exit_code == 4, cannot_write.output
    line, = error_lines(cannot_write.output)
    assert f"{table}: the target refused BatchWriteItem: AccessDeniedException" in line, line
    assert "not authorized to perform: dynamodb:BatchWriteItem" in line and line.endswith("with --resume)"), line
    assert not letter_files(str(letters))
    assert migrated.exit_code == 0, migrated.output
    assert validated.exit_code == 0, validated.output
    assert len(seed.scan_all(account.endpoint, table)) == 60
