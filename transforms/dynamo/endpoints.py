"""How to open an async client to the source and the target (their specs: `transforms.dynamo.specs`).

Clients are opened inside a DoFn's own event loop (see `event_loop`).
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from pathlib import Path
from typing import AsyncIterator

from aiobotocore.config import AioConfig
from aiobotocore.credentials import (AioAssumeRoleCredentialFetcher, AioCredentialResolver,
                                     AioDeferredRefreshableCredentials)
from aiobotocore.session import AioSession
from botocore import UNSIGNED
from botocore.credentials import CredentialProvider
from botocore.loaders import create_loader

from transforms.dynamo.specs import Credentials, SourceSpec, TargetSpec, TlsSettings, is_aws_dynamodb

__all__ = ["Credentials", "SourceSpec", "TargetSpec", "TlsSettings", "is_aws_dynamodb", "session_for", "aio_session",
           "source_client", "streams_client", "node_client", "alternator_config", "target_client", "open_client"]


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


@functools.lru_cache(maxsize=4)
def _data_loader(data_path: str | None):
    """botocore's loader of service models, one per process: each event loop has sessions of
    its own (see `aio_session`), and each new loader would parse the models again (about
    0.1 s of CPU a service, several times in a launcher)."""
    return create_loader(data_path)


def _new_session(profile: str | None = None) -> AioSession:
    session = AioSession(profile=profile)
    session.register_component("data_loader", _data_loader(session.get_config_variable("data_path")))
    return session


def session_for(credentials: Credentials | None, region: str | None = None) -> AioSession:
    """The SDK session that signs with these credentials (a role is assumed lazily, on first use).

    A role is assumed from STS in `region` (the table's): without it, STS would need a region
    from the environment or a profile, and a config that names its region would fail.
    """
    creds = credentials or Credentials()
    session = _new_session(creds.profile)
    if not creds.role_arn:
        return session
    base = session
    if creds.access_key_id:
        base = _new_session()
        base.set_credentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
    if region:
        base.set_config_variable("region", region)
    assumed = _new_session(creds.profile)
    assumed.register_component("credential_provider",
                               AioCredentialResolver([_AssumedRole(base, creds)]))
    return assumed



def _aio_config(max_connections: int, unsigned: bool = False) -> AioConfig:
    # Retries are ours (tenacity, see `retry`), so botocore must not retry underneath.
    # No client-side parameter validation: it walks every attribute of every item, and the
    # server validates anyway.
    return AioConfig(retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=max_connections,
                     connect_timeout=10, read_timeout=60, parameter_validation=False,
                     **({"signature_version": UNSIGNED} if unsigned else {}))


_sessions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def aio_session(credentials: Credentials | None = None, region: str | None = None) -> AioSession:
    """The running event loop's session for `credentials` in `region` (`session_for`), shared by its clients.

    Sessions are not thread-safe and their credential locks belong to one loop, hence one
    per loop; they share the process's loaded service models (`_data_loader`).
    """
    by_credentials = _sessions.setdefault(asyncio.get_running_loop(), {})
    key = (credentials or Credentials(), region)
    if key not in by_credentials:
        by_credentials[key] = session_for(*key)
    return by_credentials[key]


@contextlib.asynccontextmanager
async def source_client(spec: SourceSpec, max_connections: int = 32, service: str = "dynamodb") -> AsyncIterator:
    """An aiobotocore client for the source's DynamoDB API (or its Streams API, or Kinesis)."""
    creds = spec.credentials or Credentials()
    session = aio_session(creds, spec.region)
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
    return aio_session(creds, spec.region).create_client("dynamodb", region_name=spec.region, endpoint_url=url,
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
