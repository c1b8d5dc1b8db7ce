"""Check a request's AWS SigV4 signature, as Alternator does when it enforces authorization.

The expected signature is computed by botocore's own signer over the request as received
(the headers the client signed, its timestamp and body), with the secret of the key id the
request names. Used by the Alternator front to reject unsigned and wrongly signed requests.
"""
from __future__ import annotations

import hmac
import re

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
                            r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<headers>[^,]+), ?"
                            r"Signature=(?P<signature>[0-9a-f]+)$")


def check_signature(request, body: bytes, users: dict[str, str]) -> tuple[str, str] | None:
    """None when the request is signed by one of `users`; else (error type, message)."""
    match = _AUTHORIZATION.match(request.headers.get("Authorization", ""))
    if match is None or "X-Amz-Date" not in request.headers:
        return "MissingAuthenticationTokenException", "Authorization header is mandatory for signature verification"
    secret = users.get(match["key"])
    if secret is None:
        return "UnrecognizedClientException", f"User not found: {match['key']}"
    signed = {name: request.headers.get(name, "") for name in match["headers"].split(";")}
    host = signed.get("host") or request.headers.get("Host", "")
    aws_request = AWSRequest(method=request.method, url=f"{request.scheme}://{host}{request.path_qs}",
                             data=body, headers=signed)
    aws_request.context["timestamp"] = request.headers["X-Amz-Date"]
    signer = SigV4Auth(Credentials(match["key"], secret), match["service"], match["region"])
    expected = signer.signature(signer.string_to_sign(aws_request, signer.canonical_request(aws_request)),
                                aws_request)
    if not hmac.compare_digest(expected, match["signature"]):
        return "UnrecognizedClientException", "wrong signature"
    return None


def signing_key(request) -> str | None:
    """The access key id (for Alternator, the role) a request is signed with, if any."""
    match = _AUTHORIZATION.match(request.headers.get("Authorization", ""))
    return match["key"] if match else None
