"""SigV4 signatures for the data plane's requests: a POST of a JSON body to one fixed URL.

Why our own and not botocore's `SigV4Auth`: that signer serves every service and request
shape, and its generic steps (headers kept in an `email.message` object, the URL split
and its host worked out twice a request, a prepared request built for each read of the
body) are paid on every request: at 25 items a BatchWriteItem (DynamoDB's limit, and
the default for any plain endpoint) they were the largest single cost of a write after
HTTP itself (figures: docs/design.md, Data plane). This is AWS's documented algorithm
(https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) for the one
request shape we send: no query string, the URL's path, the headers we pass plus
`host`, `x-amz-date` and, with temporary credentials, `x-amz-security-token`; the
signature itself is hashlib's SHA-256 and hmac, as in botocore. Its output is tested
equal to botocore's, header for header, over random bodies, URLs, regions, credentials
and times (tests/dynamo/test_sigv4.py); what the credentials are, and when they are
refreshed, is still botocore's chain (`aws_json.signing_credentials`).
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from urllib.parse import quote, urlsplit

from botocore.utils import normalize_url_path

__all__ = ["RequestSigner"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host(url: str) -> str:
    """The Host header's value as SigV4 signs it: lowercase, brackets for IPv6, no default port."""
    parts = urlsplit(url)
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


class RequestSigner:
    """Signs POSTs to `url` for `service` in `region`; the parts that never change are worked out once."""

    def __init__(self, url: str, region: str, service: str):
        self._host = _host(url)
        self._path = quote(normalize_url_path(urlsplit(url).path), safe="/~")
        self._region = region
        self._service = service
        self._key_for: tuple[str, str] | None = None  # (secret key, date) of `_key`
        self._key = b""

    def _signing_key(self, secret_key: str, date: str) -> bytes:
        if self._key_for != (secret_key, date):
            key = _hmac(f"AWS4{secret_key}".encode(), date)
            for part in (self._region, self._service, "aws4_request"):
                key = _hmac(key, part)
            self._key, self._key_for = key, (secret_key, date)
        return self._key

    def sign(self, headers: dict[str, str], body: bytes, credentials,
             now: datetime.datetime | None = None) -> dict[str, str]:
        """`headers` with `host`, `X-Amz-Date`, the session token if any and `Authorization` added.

        `credentials`: frozen credentials (access_key, secret_key, token); `now`: the signing
        time (UTC; the current time when None)."""
        timestamp = (now.strftime(_TIMESTAMP) if now is not None
                     else time.strftime(_TIMESTAMP, time.gmtime()))  # a third of datetime's cost
        signed = {**headers, "host": self._host, "X-Amz-Date": timestamp}
        if credentials.token:
            signed["X-Amz-Security-Token"] = credentials.token
        canonical = sorted((name.lower(), " ".join(value.split())) for name, value in signed.items())
        names = ";".join(name for name, _ in canonical)
        canonical_request = "\n".join((
            "POST", self._path, "", *(f"{name}:{value}" for name, value in canonical), "", names,
            hashlib.sha256(body).hexdigest()))
        date = timestamp[:8]
        scope = f"{date}/{self._region}/{self._service}/aws4_request"
        string_to_sign = "\n".join((_ALGORITHM, timestamp, scope,
                                    hashlib.sha256(canonical_request.encode()).hexdigest()))
        signature = hmac.new(self._signing_key(credentials.secret_key, date), string_to_sign.encode(),
                             hashlib.sha256).hexdigest()
        signed["Authorization"] = (f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, "
                                   f"SignedHeaders={names}, Signature={signature}")
        return signed
