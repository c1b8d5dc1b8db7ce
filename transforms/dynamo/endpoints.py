"""Where the source and target are, and how to open an async client to each.

Specs are small frozen dataclasses so DoFns can pickle them to remote workers. Clients
are opened inside a DoFn's own event loop (see `async_runtime`). Secrets live in
`Credentials`, whose repr never shows them, so logs and errors stay clean.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import ssl
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.credentials import (AioAssumeRoleCredentialFetcher, AioCredentialResolver,
                                     AioDeferredRefreshableCredentials)
from aiobotocore.session import AioSession
from botocore import UNSIGNED
from botocore.credentials import CredentialProvider
from botocore.httpsession import get_cert_path
from botocore.loaders import create_loader


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


class _AssumedRole(CredentialProvider):
    """Credentials of a role assumed with STS from a base session; botocore's refreshable
    credentials assume it again before they expire, so a run of many hours keeps going."""

    METHOD = "assume-role"
    CANONICAL_NAME = "alternator-migrate-assume-role"

    def __init__(self, base: AioSession, credentials: Credentials):
        super().__init__()
        self._base = base
        self._credentials = credentials

    async def load(self):
        extra = {"RoleSessionName": self._credentials.session_name,
                 "DurationSeconds": self._credentials.duration_seconds}
        if self._credentials.external_id:
            extra["ExternalId"] = self._credentials.external_id
        fetcher = AioAssumeRoleCredentialFetcher(self._base.create_client, await self._base.get_credentials(),
                                                 self._credentials.role_arn, extra_args=extra)
        return AioDeferredRefreshableCredentials(fetcher.fetch_credentials, self.METHOD)


def session_for(credentials: Credentials | None) -> AioSession:
    """The SDK session that signs with these credentials (a role is assumed lazily, on first use)."""
    creds = credentials or Credentials()
    session = AioSession(profile=creds.profile) if creds.profile else AioSession()
    if not creds.role_arn:
        return session
    base = session
    if creds.access_key_id:
        base = AioSession()
        base.set_credentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
    assumed = AioSession(profile=creds.profile) if creds.profile else AioSession()
    assumed.register_component("credential_provider",
                               AioCredentialResolver([_AssumedRole(base, creds)]))
    return assumed


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

    def ssl_context(self, session: AioSession) -> ssl.SSLContext:
        """The SSL context for clients that take one (aiohttp): the one botocore builds for
        `botocore_verify()` in `session` (botocore.httpsession.get_cert_path)."""
        if not self.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.ca_pem:
            return _verifying_context(cadata=self.ca_pem)
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


def _aio_config(max_connections: int, unsigned: bool = False) -> AioConfig:
    # Retries are ours (tenacity, see `retry`), so botocore must not retry underneath.
    # No client-side parameter validation: it walks every attribute of every item (about
    # 50 us an item in a BatchWriteItem, measured), and the server validates anyway.
    return AioConfig(retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=max_connections,
                     connect_timeout=10, read_timeout=60, parameter_validation=False,
                     **({"signature_version": UNSIGNED} if unsigned else {}))


_sessions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def aio_session(credentials: Credentials | None = None) -> AioSession:
    """The running event loop's session for `credentials` (`session_for`), shared by its clients.

    A new session loads the service models again: about 0.1 s of CPU a client, against
    about 0.02 s for a client of a session that has them (measured). Sessions are not
    thread-safe and their credential locks belong to one loop, hence one per loop.
    """
    by_credentials = _sessions.setdefault(asyncio.get_running_loop(), {})
    key = credentials or Credentials()
    if key not in by_credentials:
        by_credentials[key] = session_for(key)
    return by_credentials[key]


@contextlib.asynccontextmanager
async def source_client(spec: SourceSpec, max_connections: int = 32, service: str = "dynamodb") -> AsyncIterator:
    """An aiobotocore client for the source's DynamoDB API (or its Streams API, or Kinesis)."""
    creds = spec.credentials or Credentials()
    session = aio_session(creds)
    endpoint = {"dynamodbstreams": spec.streams_url, "kinesis": spec.kinesis_endpoint}.get(service, spec.endpoint)
    async with session.create_client(service, region_name=spec.region, endpoint_url=endpoint,
                                     config=_aio_config(max_connections), verify=spec.tls.botocore_verify(),
                                     **creds.boto_kwargs()) as client:
        yield client


def streams_client(spec: SourceSpec):
    """An aiobotocore DynamoDB Streams client for the source."""
    return source_client(spec, service="dynamodbstreams")


def kinesis_client(spec: SourceSpec):
    """An aiobotocore Kinesis Data Streams client for the source's account and region (tables that
    stream their changes to a Kinesis data stream)."""
    return source_client(spec, service="kinesis")


def node_client(spec: TargetSpec, url: str, max_connections: int = 32):
    """A plain client bound to one target URL (one Alternator node, or `target.endpoint`), signed
    as `TargetSpec.signed` says, with the target's own credentials (keys, profile or role)."""
    creds = spec.credentials or Credentials()
    return aio_session(creds).create_client("dynamodb", region_name=spec.region, endpoint_url=url,
                                            config=_aio_config(max_connections, unsigned=not spec.signed),
                                            verify=spec.tls.botocore_verify(), **creds.boto_kwargs())


def alternator_config(spec: TargetSpec, max_connections: int = 32):
    """alternator-client's Config for the target: seeds, port, scheme, datacenter/rack scope."""
    from alternator import ClusterScope, Config, DatacenterScope, RackScope, RetryConfig, TimeoutConfig
    from alternator.config import TLS

    if spec.rack:
        scope = RackScope(spec.datacenter, spec.rack)
    elif spec.datacenter:
        scope = DatacenterScope(spec.datacenter)
    else:
        scope = ClusterScope()
    ca_path = spec.tls.ca_path()
    tls = TLS(custom_ca_cert_paths=(Path(ca_path),) if ca_path else (), trust_all_certificates=not spec.tls.verify,
              verify_hostname=spec.tls.verify)
    return Config(seed_hosts=list(spec.alternator_seeds), port=spec.alternator_port,
                  scheme=spec.alternator_scheme, routing_scope=scope, aws_region=spec.region,
                  retries=RetryConfig(max_attempts=1), max_pool_connections=max_connections,
                  timeouts=TimeoutConfig(connect_seconds=10, read_seconds=60), tls=tls)


@contextlib.asynccontextmanager
async def target_client(spec: TargetSpec, max_connections: int = 32) -> AsyncIterator:
    """A client for the target: load-balanced over /localnodes for Alternator, plain otherwise."""
    creds = spec.credentials or Credentials()
    if spec.endpoint:
        async with node_client(spec, spec.endpoint, max_connections) as client:
            yield client
        return
    from alternator import Auth
    from alternator.async_client import close_async_client, create_async_client

    auth = (Auth.static_credentials(creds.access_key_id, creds.secret_access_key)
            if creds.access_key_id else None)
    # alternator-client applies its TLS settings to node discovery only: the data client needs `verify` too.
    client = await create_async_client(alternator_config(spec, max_connections), auth=auth,
                                       verify=spec.tls.botocore_verify())
    try:
        yield client
    finally:
        await close_async_client(client)


def open_client(spec: SourceSpec | TargetSpec, max_connections: int = 32):
    """An async client context for either side (scans and point reads work on both)."""
    if isinstance(spec, TargetSpec):
        return target_client(spec, max_connections)
    return source_client(spec, max_connections)
