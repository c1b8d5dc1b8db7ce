"""DynamoDB exports written by the tests into a bucket of moto's S3, in AWS's layout.

What DynamoDB's "Export to S3" writes (docs: "DynamoDB table export output format",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html):
`<prefix>/AWSDynamoDB/<ExportId>/` holding `_started`, `manifest-summary.json` (s3Bucket,
s3Prefix, manifestFilesS3Key...) and `manifest-files.json` (one JSON line per data file:
itemCount, md5Checksum as the base64 MD5 of the gzipped bytes, etag, and dataFileS3Key, the
file's object key). A full export's data files are `<ExportId>/data/<name>.json.gz`; an
incremental export's go to the folder every incremental export of the prefix shares,
`<prefix>/AWSDynamoDB/data/` (the page's "Incremental export output": the summary tells which
files of the shared data folder belong to the export). One JSON object a line. The items come
from a real table (DynamoDB Local) through boto3, in its form.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import boto3

from transforms.items.ddb_json import encode_item


def s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                        region_name="us-east-1")


class LocalBucket:
    """A folder standing in for S3 (`put_object` as boto3's), for exports on a local disk (the bench)."""

    def __init__(self, root: Path):
        self.root = root

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:  # noqa: N803 - boto3's names
        path = self.root / Bucket / Key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Body)

    def uri(self, bucket: str, key: str) -> str:
        return f"{self.root / bucket / key}/"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _write_export(s3, bucket: str, prefix: str, lines: list[bytes], files: int, summary: dict) -> str:
    export_id = f"{int(datetime.now().timestamp() * 1000):014d}-{uuid.uuid4().hex[:8]}"
    folder = f"{prefix}/AWSDynamoDB/{export_id}"
    data = f"{folder}/data" if summary["exportType"] == "FULL_EXPORT" else f"{prefix}/AWSDynamoDB/data"
    s3.put_object(Bucket=bucket, Key=f"{folder}/_started", Body=b"")
    manifest = []
    for n in range(files):
        chunk = lines[n::files]
        body = gzip.compress(b"".join(line + b"\n" for line in chunk))
        key = f"{data}/{uuid.uuid4().hex[:26]}.json.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        manifest.append({"itemCount": len(chunk), "md5Checksum": base64.b64encode(hashlib.md5(body).digest()).decode(),
                         "etag": hashlib.md5(body).hexdigest() + "-1", "dataFileS3Key": key})
    s3.put_object(Bucket=bucket, Key=f"{folder}/manifest-files.json",
                  Body="".join(json.dumps(entry) + "\n" for entry in manifest).encode())
    summary = {"version": "2023-08-01", "exportArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/t/export/"
                                                     f"{export_id}",
               "startTime": summary.get("exportTime") or summary["exportToTime"], "s3Bucket": bucket,
               "s3Prefix": prefix, "s3SseAlgorithm": "AES256", "s3SseKmsKeyId": None,
               "manifestFilesS3Key": f"{folder}/manifest-files.json", "billedSizeBytes": 0,
               "itemCount": len(lines), "outputFormat": "DYNAMODB_JSON", **summary}
    s3.put_object(Bucket=bucket, Key=f"{folder}/manifest-summary.json", Body=json.dumps(summary).encode())
    return s3.uri(bucket, folder) if isinstance(s3, LocalBucket) else f"s3://{bucket}/{folder}/"


def write_full_export(s3, bucket: str, prefix: str, items: list[dict], *, files: int = 3,
                      export_time: datetime | None = None) -> str:
    """A FULL export of `items` (boto3's form) in `files` data files; the export's folder URI."""
    lines = [json.dumps({"Item": encode_item(item)}).encode() for item in items]
    return _write_export(s3, bucket, prefix, lines, files,
                         {"exportType": "FULL_EXPORT", "exportTime": iso(export_time or datetime.now(timezone.utc))})


def write_incremental_export(s3, bucket: str, prefix: str, changes: list[dict], *, start: datetime,
                             end: datetime, files: int = 2, view: str = "NEW_AND_OLD_IMAGES") -> str:
    """An INCREMENTAL export; each change is {keys, new (None: deleted), old, micros} in boto3's form."""
    lines = []
    for change in changes:
        line = {"Metadata": {"WriteTimestampMicros": {"N": str(change["micros"])}},
                "Keys": encode_item(change["keys"])}
        if change.get("new") is not None:
            line["NewImage"] = encode_item(change["new"])
        if view == "NEW_AND_OLD_IMAGES" and change.get("old") is not None:
            line["OldImage"] = encode_item(change["old"])
        lines.append(json.dumps(line).encode())
    return _write_export(s3, bucket, prefix, lines, files,
                         {"exportType": "INCREMENTAL_EXPORT", "exportFromTime": iso(start), "exportToTime": iso(end),
                          "outputView": view})
