"""The Alternator front enforces the roles' GRANTs as Alternator does (`alternator_grants`)."""
from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from testbed import seed
from testbed.alternator_grants import Grants
from tests.support.cli_runs import unique

pytestmark = pytest.mark.integration

SECRETS = {"admin": "admin-salted-hash", "reader": "reader-salted-hash"}
KEY = seed.keyed_by("id")


def _as(alternator, role: str):
    return boto3.client("dynamodb", endpoint_url=alternator.url, region_name="us-east-1",
                        aws_access_key_id=role, aws_secret_access_key=SECRETS[role])


def _denied(call) -> str:
    with pytest.raises(ClientError) as refused:
        call()
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    return refused.value.response["Error"]["Message"]


def test_grant_statements_name_resources_as_cql_does():
    grants = Grants(['GRANT SELECT ON "alternator_Songs"."Songs" TO reader',
                     "GRANT MODIFY ON alternator_Songs.Songs TO reader",  # unquoted: lower case
                     'GRANT ALL PERMISSIONS ON KEYSPACE "alternator_x" TO Admin;'])

    assert grants.holds("reader", "SELECT", ("alternator_Songs", "Songs"))
    assert not grants.holds("reader", "MODIFY", ("alternator_Songs", "Songs"))
    assert grants.holds("reader", "MODIFY", ("alternator_songs", "songs"))
    assert grants.holds("admin", "DROP", ("alternator_x", "x:by_name"))  # the keyspace covers its views
    assert not grants.holds("admin", "CREATE", ())
    with pytest.raises(ValueError, match="not a GRANT"):
        Grants(["REVOKE SELECT ON alternator_x.x FROM reader"])


def test_each_operation_needs_its_permission(alternator_clean):
    table, other = unique("granted"), unique("not_granted")
    seed.create_table(alternator_clean.moto.endpoint, other, **KEY)  # made by someone else
    alternator_clean.front.require_signatures(SECRETS, grants=[
        "GRANT CREATE ON ALL KEYSPACES TO admin", f'GRANT SELECT ON KEYSPACE "alternator_{table}" TO reader'])
    try:
        admin, reader = _as(alternator_clean, "admin"), _as(alternator_clean, "reader")
        admin.create_table(TableName=table, **KEY)
        admin.put_item(TableName=table, Item={"id": {"S": "a"}})  # the creator's auto-grant
        put = {"PutRequest": {"Item": {"id": {"S": "b"}}}}

        denied_modify = _denied(lambda: reader.put_item(TableName=table, Item={"id": {"S": "c"}}))
        read = reader.get_item(TableName=table, Key={"id": {"S": "a"}})["Item"]
        described = reader.describe_table(TableName=other)["Table"]["TableName"]  # needs no permission
        denied_create = _denied(lambda: reader.create_table(TableName=unique("t"), **KEY))
        denied_batch = _denied(lambda: admin.batch_write_item(RequestItems={table: [put], other: [put]}))
        denied_ttl = _denied(lambda: reader.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}))
    finally:
        alternator_clean.front.require_signatures(None)

    assert denied_modify == (f"MODIFY access on table alternator_{table}.{table} is denied to role reader, "
                             f"client address 127.0.0.1")
    assert read == {"id": {"S": "a"}} and described == other
    assert denied_create == "CREATE access on ALL KEYSPACES is denied to role reader"
    assert f"MODIFY access on table alternator_{other}.{other} is denied to role admin" in denied_batch
    assert f"ALTER access on table alternator_{table}.{table}" in denied_ttl
