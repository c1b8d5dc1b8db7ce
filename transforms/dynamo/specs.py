"""Where the source and target are, and with which credentials: plain, picklable settings.

Specs are small frozen dataclasses so DoFns can pickle them to remote workers, and the
launcher reads its config into them without loading the AWS SDK (about 0.5 s of CPU),
which only the clients of `transforms.dynamo.endpoints` need. Secrets live in
`Credentials`, whose repr never shows them, so logs and errors stay clean.
"""
from __future__ import annotations

import functools
import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["Credentials", "TlsSettings", "SourceSpec", "TargetSpec", "is_aws_dynamodb"]


@dataclass(frozen=True)
class Credentials:
    """Static keys, a profile, or the AWS default chain (neither); optionally a role assumed
    with them (`role_arn`, refreshed before it expires)."""

    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    session_name: str = "alternator-migrate"
    duration_seconds: int = 3600

    def __repr__(self) -> str:
        base = f"profile={self.profile!r}" if self.profile else "static, hidden" if self.access_key_id else "chain"
        return f"Credentials({base}{f', role {self.role_arn}' if self.role_arn else ''})"

    def boto_kwargs(self) -> dict:
        """Explicit keys for a client; none when a session (profile, chain, role) provides them."""
        if not self.access_key_id or self.role_arn:
            return {}
        kwargs = {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}
        if self.session_token:
            kwargs["aws_session_token"] = self.session_token
        return kwargs



@dataclass(frozen=True)
class TlsSettings:
    """How an endpoint's HTTPS certificate is checked.

    `ca_pem` is the text of the CA bundle (`ca_file`), read once by the launcher and carried
    in the spec, so a remote worker trusts the same CA without the file; `verify` False
    turns verification off (`insecure_skip_verify`). Without either, the AWS SDK decides
    (`AWS_CA_BUNDLE`, the profile's `ca_bundle`, else botocore's own bundle), for the SDK
    clients and the data plane alike.
    """

    ca_pem: str | None = None
    verify: bool = True

    def ca_path(self) -> str | None:
        """A file holding `ca_pem` in this process (botocore takes a path), or None."""
        return _ca_file(self.ca_pem) if self.ca_pem else None

    def botocore_verify(self) -> str | bool | None:
        """botocore's `verify`: False, the CA bundle's path, or None: the session's `ca_bundle`
        (AWS_CA_BUNDLE or the profile's), else botocore's bundle (`True` would skip the first)."""
        if not self.verify:
            return False
        return self.ca_path()

    def ssl_context(self, session) -> ssl.SSLContext:
        """The SSL context for clients that take one (aiohttp): the one botocore builds for
        `botocore_verify()` in `session` (botocore.httpsession.get_cert_path)."""
        if not self.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.ca_pem:
            return _verifying_context(cadata=self.ca_pem)
        from botocore.httpsession import get_cert_path  # noqa: PLC0415 - the SDK only where a client is made

        return _verifying_context(cafile=session.get_config_variable("ca_bundle") or get_cert_path(True))


@functools.lru_cache(maxsize=8)
def _verifying_context(cafile: str | None = None, cadata: str | None = None) -> ssl.SSLContext:
    """A context trusting only this bundle, made once per process (loading one takes milliseconds;
    a context is safe to share between connections and threads)."""
    return ssl.create_default_context(cafile=cafile, cadata=cadata)


@functools.lru_cache(maxsize=8)
def _ca_file(pem: str) -> str:
    """Write a CA bundle to a private temporary file once per process; its path."""
    name = hashlib.sha256(pem.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"alternator-migrate-ca-{os.getuid()}-{name}.pem"
    if not path.exists():
        temporary = path.with_suffix(f".tmp-{os.getpid()}")
        temporary.write_text(pem)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    return str(path)



@dataclass(frozen=True)
class SourceSpec:
    """A DynamoDB endpoint (AWS when `endpoint` is None) and where its Streams API is."""

    region: str = "us-east-1"
    endpoint: str | None = None
    credentials: Credentials | None = None
    streams_endpoint: str | None = None  # None: the same as `endpoint` (DynamoDB Local) or AWS's
    tls: TlsSettings = TlsSettings()
    stream_retention_hours: float = 24.0  # how long the stream keeps a record (DynamoDB Streams: 24 hours)
    kinesis_endpoint: str | None = None  # the Kinesis Data Streams API URL; None: AWS's for the region

    @property
    def streams_url(self) -> str | None:
        return self.streams_endpoint or self.endpoint

    def describe(self) -> str:
        return self.endpoint or f"DynamoDB in {self.region}"


@dataclass(frozen=True)
class TargetSpec:
    """Either one plain DynamoDB-API endpoint, or an Alternator cluster found from seeds."""

    region: str = "us-east-1"
    endpoint: str | None = None
    credentials: Credentials | None = None
    alternator_seeds: tuple[str, ...] = ()
    alternator_port: int = 8000
    alternator_scheme: str = "http"
    datacenter: str | None = None
    rack: str | None = None
    tls: TlsSettings = TlsSettings()
    streams: bool = False  # create its tables with a stream on (able to stream on Alternator: vnodes)

    @property
    def is_dynamodb(self) -> bool:
        """A plain `endpoint` is taken for DynamoDB, with DynamoDB's limits (25 items a batch,
        400 KB an item); an Alternator cluster is given by its seeds."""
        return not self.alternator_seeds

    @property
    def signed(self) -> bool:
        """Whether requests to the target are SigV4-signed. With `credentials`, always (with
        them). Without, only at one of AWS DynamoDB's own endpoints, which refuses unsigned
        requests (the rollback into DynamoDB): with the AWS default chain. An Alternator
        cluster, or any other endpoint, without credentials gets unsigned requests, so the
        user's AWS keys never go where they were not configured."""
        return self.credentials is not None or (self.endpoint is not None and is_aws_dynamodb(self.endpoint))

    def describe(self) -> str:
        if self.endpoint:
            return self.endpoint
        seeds = ", ".join(f"{self.alternator_scheme}://{s}:{self.alternator_port}" for s in self.alternator_seeds)
        return f"Alternator seeds {seeds}"

    def node_url(self, node: str) -> str:
        return f"{self.alternator_scheme}://{node}:{self.alternator_port}"


# The first label of DynamoDB's hosts in botocore's endpoint rules for it
# (botocore/data/dynamodb/2012-08-10/endpoint-rule-set-1.json): standard, FIPS, account-based.
_DYNAMODB_HOST_LABELS = frozenset({"dynamodb", "dynamodb-fips", "ddb", "search-dynamodb", "search-dynamodb-fips",
                                   "search-ddb"})


@functools.lru_cache(maxsize=1)
def _aws_dns_suffixes() -> tuple[str, ...]:
    """The DNS suffixes of AWS's partitions (amazonaws.com, amazonaws.com.cn, api.aws, ...),
    longest first, from botocore's partitions data."""
    from botocore.loaders import create_loader  # noqa: PLC0415 - the SDK only where a client is made

    outputs = [partition["outputs"] for partition in create_loader().load_data("partitions")["partitions"]]
    suffixes = {output[key] for output in outputs for key in ("dnsSuffix", "dualStackDnsSuffix") if output.get(key)}
    return tuple(sorted(suffixes, key=len, reverse=True))


def is_aws_dynamodb(url: str) -> bool:
    """Whether `url` is AWS DynamoDB itself: `<label>.<region>.<partition suffix>` with one of
    DynamoDB's host labels, or a VPC endpoint (`vpce-....dynamodb.<region>.vpce.amazonaws.com`).
    Other hosts under amazonaws.com (EC2 instances, load balancers) may be anyone's cluster."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    for suffix in _aws_dns_suffixes():
        if host.endswith("." + suffix):
            labels = host[:-len(suffix) - 1].split(".")
            if labels[-1] == "vpce":
                labels.pop()
            return len(labels) >= 2 and labels[-2] in _DYNAMODB_HOST_LABELS
    return False

