"""moto's server, authorizing requests against the resources AWS authorizes them against.

Run as a script (`python testbed/moto_iam.py -H 127.0.0.1 -p PORT`, see
`servers.IamMotoServer`): it amends moto's request handlers, then starts moto's own server.
With authentication on (`POST /moto-api/reset-auth` with `0`), moto (5.2) checks each
request's signature and the caller's IAM policies, but not the way AWS does in five places,
so a least-privilege policy could not be tested against it as it stands:

- DynamoDB and DynamoDB Streams actions are authorized against the resource `*`, so a
  statement scoped to a table ARN allows nothing. AWS authorizes them against the table
  (`arn:aws:dynamodb:REGION:ACCOUNT:table/NAME`; `.../index/NAME` for a Scan or Query of an
  index), every table a BatchGetItem or BatchWriteItem names, the `ResourceArn` of the tag
  calls, and the stream (`.../table/NAME/stream/LABEL`) of DescribeStream,
  GetShardIterator and GetRecords: the resource types of each action in
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html,
  and the stream policy of
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/iam-policy-read-stream-only.html.
  Here those are the resources checked. (A GetRecords request names a shard iterator, which
  is opaque on AWS; moto's iterators begin with their stream's ARN, which is read from it.)
- A refused DynamoDB or Streams request is answered as S3 answers one (HTTP 403, an XML
  body); DynamoDB answers HTTP 400 with its JSON error, `AccessDeniedException` (a policy
  refused it), `UnrecognizedClientException` (unknown key) or `InvalidSignatureException`
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html),
  the first with the message IAM documents, naming the action and the resource ("User: ARN
  is not authorized to perform: ACTION on resource: ARN because no identity-based policy
  allows the ACTION action",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
- Kinesis Data Streams actions are authorized against the resource `*` too. AWS authorizes
  DescribeStreamSummary, ListShards, GetShardIterator and GetRecords against the stream
  (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`, resource type `stream`, required, in
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonkinesisdatastreams.html).
  Here the stream is the request's `StreamARN`, else its `StreamName`, else (a GetRecords
  naming only its iterator) the stream moto's iterator names; a ListShards naming only a
  `NextToken` is still checked against `*` (the tool's streams never have a second page).
  A refusal is answered as Kinesis answers one: HTTP 400, `AccessDeniedException` with the
  IAM message (the Errors of each action in the Kinesis API reference, e.g.
  https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html).
- HeadBucket is checked as `s3:HeadBucket`, an action IAM does not have; AWS requires
  `s3:ListBucket` (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html).
- DeleteObjects is checked as `s3:DeleteObject` on the bucket; AWS checks it on each object
  deleted (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html). Here
  each object is checked, but one refused object makes moto answer AccessDenied for every
  object of the request, where AWS still deletes the others (the tool deletes only objects
  under its own folders, all allowed or none).
- CopyObject checks only `s3:PutObject` on the new object; AWS also requires `s3:GetObject`
  on the object copied (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html).

What moto still does not check: condition keys other than a role's trust policy, resource
policies of tables and streams (Kinesis data streams have them too), KMS permissions (a
Kinesis stream encrypted with a customer managed key also needs `kms:Decrypt`), and the
actions of any other service as AWS scopes them.
"""
from __future__ import annotations

import sys
from urllib.parse import unquote

import xmltodict
from moto.core.exceptions import (AccessDeniedError, InvalidClientTokenIdError, JsonRESTError,
                                  SignatureDoesNotMatchError)
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.kinesis.responses import KinesisResponse
from moto.kinesis.utils import decompose_shard_iterator
from moto.s3 import responses as s3_responses
from moto.server import main
from moto.utilities.utils import get_partition


def _dynamodb_resources(handler) -> list[str]:
    """The ARNs AWS authorizes this DynamoDB or DynamoDB Streams request against."""
    table_arn = f"arn:{get_partition(handler.region)}:dynamodb:{handler.region}:{handler.current_account}:table/"
    requested = handler._get_param("RequestItems")  # noqa: SLF001 - moto's own parameter reader
    if requested:
        return [table_arn + table for table in requested]
    for name in ("ResourceArn", "StreamArn"):
        if handler._get_param(name):  # noqa: SLF001
            return [handler._get_param(name)]  # noqa: SLF001
    iterator = handler._get_param("ShardIterator")  # noqa: SLF001
    if iterator:
        return [iterator.split("|")[0]]
    table = handler._get_param("TableName")  # noqa: SLF001
    if table:
        index = handler._get_param("IndexName")  # noqa: SLF001
        return [table_arn + table + (f"/index/{index}" if index else "")]
    return ["*"]  # ListTables and the like: no resource, as on AWS


def _kinesis_resources(handler) -> list[str]:
    """The stream ARN AWS authorizes this Kinesis Data Streams request against."""
    arn = handler._get_param("StreamARN")  # noqa: SLF001 - moto's own parameter reader
    if arn:
        return [arn]
    name = handler._get_param("StreamName")  # noqa: SLF001
    iterator = handler._get_param("ShardIterator")  # noqa: SLF001
    if not name and iterator:
        name = decompose_shard_iterator(iterator)[0]  # moto's iterators begin with their stream's name
    if not name:
        return ["*"]  # ListStreams, or a ListShards naming only its NextToken
    return [f"arn:{get_partition(handler.region)}:kinesis:{handler.region}:{handler.current_account}:stream/{name}"]


def _as_json_error(refusal: Exception, resource: str) -> JsonRESTError:
    """moto's refusal as DynamoDB and Kinesis word it (HTTP 400, a JSON body)."""
    if isinstance(refusal, AccessDeniedError):
        action = refusal.message.rpartition(" ")[2]
        return JsonRESTError("com.amazon.coral.service#AccessDeniedException",
                             f"{refusal.message} on resource: {resource} because no identity-based policy allows "
                             f"the {action} action")
    if isinstance(refusal, InvalidClientTokenIdError):
        return JsonRESTError("com.amazon.coral.service#UnrecognizedClientException",
                             "The security token included in the request is invalid.")
    return JsonRESTError("com.amazon.coral.service#InvalidSignatureException", refusal.message)


def _authorize_each(original, resources):
    def authorize(self, resource="*"):
        for arn in resources(self):
            try:
                original(self, arn)
            except (AccessDeniedError, InvalidClientTokenIdError, SignatureDoesNotMatchError) as refusal:
                raise _as_json_error(refusal, arn) from None
    return authorize


def _authorize_s3_as_aws(original):
    def authorize(self, bucket_name=None, key_name=None):
        action = self.data.get("Action")
        if action == "DeleteObject" and key_name is None and bucket_name:  # DeleteObjects: each object
            objects = xmltodict.parse(self.body)["Delete"].get("Object", [])
            for entry in objects if isinstance(objects, list) else [objects]:
                original(self, bucket_name=bucket_name, key_name=entry["Key"])
            return
        original(self, bucket_name=bucket_name, key_name=key_name)
        source = self.headers.get("x-amz-copy-source")
        if action == "PutObject" and key_name and source:  # CopyObject: reading the original too
            source_bucket, _, source_key = unquote(source.split("?")[0]).lstrip("/").partition("/")
            self.data["Action"] = "GetObject"
            try:
                original(self, bucket_name=source_bucket, key_name=source_key)
            finally:
                self.data["Action"] = action
    return authorize


def amend_moto() -> None:
    for handler, resources in ((DynamoHandler, _dynamodb_resources), (DynamoDBStreamsHandler, _dynamodb_resources),
                               (KinesisResponse, _kinesis_resources)):
        handler._authenticate_and_authorize_normal_action = _authorize_each(  # noqa: SLF001
            handler._authenticate_and_authorize_normal_action, resources)  # noqa: SLF001
    s3_responses.ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"
    response = s3_responses.S3Response
    response._authenticate_and_authorize_s3_action = _authorize_s3_as_aws(  # noqa: SLF001
        response._authenticate_and_authorize_s3_action)  # noqa: SLF001


if __name__ == "__main__":
    amend_moto()
    main(sys.argv[1:])
