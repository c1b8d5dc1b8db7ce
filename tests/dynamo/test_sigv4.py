"""Our SigV4 signer gives botocore's `SigV4Auth` signature, header for header.

Pure computation: the reference is botocore itself, on the same request, credentials and
time (botocore's clock is pinned for the comparison). That the signed requests are
accepted by a real server is tested through the data plane (test_data_plane.py, DynamoDB
Local) and every copy to a signed target.
"""
from __future__ import annotations

import datetime
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.dynamo.sigv4 import RequestSigner

_URLS = st.sampled_from([
    "http://127.0.0.1:8000/", "http://localhost/", "https://dynamodb.us-east-1.amazonaws.com/",
    "https://dynamodb.eu-west-3.amazonaws.com:443/", "http://[::1]:8043/", "http://[fd00::1]/",
    "https://Scylla-Node-1.example.COM:8043/", "http://10.0.0.7:80/", "http://127.0.0.1:8000/prefix/a b/", "http://127.0.0.1:8000/x/../y//z~/",
    "https://vpce-1a2b.dynamodb.us-east-1.vpce.amazonaws.com/",
])
_KEYS = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
_TIMES = st.datetimes(min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2099, 12, 31)).map(
    lambda moment: moment.replace(microsecond=0, tzinfo=datetime.timezone.utc))


def _botocore_headers(url: str, region: str, headers: dict, body: bytes, credentials, now) -> dict:
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    with mock.patch("botocore.auth.get_current_datetime", return_value=now):
        SigV4Auth(credentials, "dynamodb", region).add_auth(request)
    return dict(request.headers.items())


@settings(max_examples=300, deadline=None)
@given(url=_URLS, region=st.sampled_from(["us-east-1", "eu-west-3", "cn-north-1", "local"]),
       operation=st.sampled_from(["Scan", "BatchWriteItem", "GetRecords"]), body=st.binary(max_size=2000),
       access_key=_KEYS, secret_key=_KEYS, token=st.none() | _KEYS, now=_TIMES,
       extra=st.dictionaries(st.sampled_from(["X-Extra", "x-amz-meta", "Content-Encoding"]),
                             st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20), max_size=2))
def test_the_signature_is_botocores(url, region, operation, body, access_key, secret_key, token, now, extra):
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{operation}",
               "Accept-Encoding": "identity", **extra}
    credentials = ReadOnlyCredentials(access_key, secret_key, token)

    ours = RequestSigner(url, region, "dynamodb").sign(headers, body, credentials, now)

    expected = _botocore_headers(url, region, headers, body, credentials, now)
    assert {name: value for name, value in ours.items() if name != "host"} == expected
    # The host we send is the one signed: botocore signs it without sending it (the HTTP
    # client adds its own), so an equal signature proves the two hosts were equal.
    assert "host" in ours["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")


def test_a_new_day_or_key_gets_a_new_signing_key():
    """The derived key is kept between requests; a change of date or secret must not reuse it."""
    signer = RequestSigner("http://127.0.0.1:8000/", "us-east-1", "dynamodb")
    headers = {"Content-Type": "application/x-amz-json-1.0"}
    day = datetime.datetime(2024, 2, 28, 23, 59, 59, tzinfo=datetime.timezone.utc)
    for now, credentials in [(day, ReadOnlyCredentials("a", "s1", None)),
                             (day + datetime.timedelta(seconds=1), ReadOnlyCredentials("a", "s1", None)),
                             (day + datetime.timedelta(seconds=1), ReadOnlyCredentials("a", "s2", "t"))]:
        assert signer.sign(headers, b"{}", credentials, now) == {
            **_botocore_headers("http://127.0.0.1:8000/", "us-east-1", headers, b"{}", credentials, now),
            "host": "127.0.0.1:8000"}
