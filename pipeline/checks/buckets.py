"""The run's storage, checked by the launcher before anything is written.

`open_storage` installs the job's filesystem options in the launcher (progress, resume
and counts read the same checkpoints and dead letters the workers write), then checks
every bucket that `checkpoint_dir` and `dead_letter_dir` name with one short call of the
store's own client. Beam's filesystems are no good for this check: on S3 a missing
bucket reads as "no such file" (exists() False, match() empty), and a missing credential
or an unreachable endpoint is retried for about 9 minutes. A bad bucket is a usage error
(exit 2) naming the bucket, found before the table step creates anything.
"""
from __future__ import annotations

from pipeline.checks.config import RunConfig
from transforms.errors import MigrateError
from transforms.state.storage import StorageOptions, bucket_of

__all__ = ["StorageCheckFailed", "open_storage", "refuse_local_state", "storage_keys", "uses_object_storage"]

CONNECT_SECONDS = 3
READ_SECONDS = 10


class StorageCheckFailed(MigrateError):
    """The check before the run found its storage unusable (exit 2): a bucket missing,
    forbidden or unreachable, a scheme not installed, a local folder remote workers cannot
    see. A state file failing once the run goes on is `transforms.errors.StateFileError` (exit 4)."""


def storage_keys(config: RunConfig) -> dict[str, str]:
    """The config keys that name storage, and their paths."""
    return {"checkpoint_dir": config.checkpoint_dir, "dead_letter_dir": config.dead_letter_dir}


def uses_object_storage(config: RunConfig) -> bool:
    """Whether the run reads or writes anything on an object store (state, exports, Parquet
    folders): then the launcher itself goes through Beam's filesystems."""
    paths = [*storage_keys(config).values(), *(path for spec in config.tables
                                               for path in (spec.export, spec.parquet, *spec.incremental_exports)
                                               if path)]
    return any(bucket_of(path) is not None for path in paths)


def open_storage(config: RunConfig, options, *, remote_workers: bool = False) -> None:
    """Use the job's filesystem options in this process and check every bucket the run uses.

    `remote_workers`: the workers run on other machines (Dataflow), so a local folder
    would not be shared with them.
    """
    if remote_workers:
        refuse_local_state(config)
    StorageOptions.of(options).install()
    checked: set[tuple[str, str]] = set()
    for key, path in storage_keys(config).items():
        bucket = bucket_of(path)
        if bucket is None:
            continue
        _check_filesystem(key, path)
        if bucket in checked:
            continue
        checked.add(bucket)
        scheme, name = bucket
        if scheme == "s3":
            from apache_beam.options.pipeline_options import S3Options  # noqa: PLC0415 - object stores only

            _check_s3_bucket(key, name, options.view_as(S3Options))
        elif scheme == "gs":
            _check_gcs_bucket(key, name, options)


def refuse_local_state(config: RunConfig) -> None:
    """Workers on other machines (Dataflow) cannot share a local folder with the launcher."""
    for key, path in storage_keys(config).items():
        if bucket_of(path) is None:
            raise StorageCheckFailed(f"{key} is the local folder {path}, which the job's workers cannot reach; "
                                     f"use gs://bucket/... or s3://bucket/...")


def _check_filesystem(key: str, path: str) -> None:
    from apache_beam.io.filesystems import FileSystems  # noqa: PLC0415 - object stores only

    try:
        FileSystems.get_filesystem(path)
    except ValueError:
        scheme = path.split("://", 1)[0]
        extra = {"gs": " (pip install 'alternator-migrate[gcp]')"}.get(scheme, "")
        raise StorageCheckFailed(f"{key}: {scheme}:// storage is not installed{extra}") from None


def _check_s3_bucket(key: str, bucket: str, s3) -> None:
    """HeadBucket once, with the client Beam's S3 filesystem would build (same options)."""
    import boto3  # noqa: PLC0415 - only for s3:// state
    from botocore.config import Config  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError  # noqa: PLC0415

    where = f"{key}: S3 bucket {bucket}" + (f" at {s3.s3_endpoint_url}" if s3.s3_endpoint_url else "")
    client = boto3.session.Session().client(
        "s3", region_name=s3.s3_region_name, api_version=s3.s3_api_version, use_ssl=not s3.s3_disable_ssl,
        verify=s3.s3_verify, endpoint_url=s3.s3_endpoint_url, aws_access_key_id=s3.s3_access_key_id,
        aws_secret_access_key=s3.s3_secret_access_key, aws_session_token=s3.s3_session_token,
        config=Config(retries={"max_attempts": 1}, connect_timeout=CONNECT_SECONDS, read_timeout=READ_SECONDS))
    try:
        client.head_bucket(Bucket=bucket)
    except NoCredentialsError:
        raise StorageCheckFailed(f"{where}: no AWS credentials; set s3_access_key_id and s3_secret_access_key in "
                                 f"pipeline_options, or configure the AWS default chain") from None
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = exc.response.get("Error", {}).get("Code", "")
        if status == 404 or code in ("404", "NoSuchBucket"):
            raise StorageCheckFailed(f"{where} does not exist; create it or fix {key}") from None
        if status in (401, 403):
            raise StorageCheckFailed(f"{where}: access denied (HTTP {status}); check the credentials "
                                     f"(s3_access_key_id / s3_secret_access_key) and their permissions on the "
                                     f"bucket") from None
        raise StorageCheckFailed(f"{where} cannot be used: {code or status}: "
                                 f"{exc.response.get('Error', {}).get('Message', '')}") from None
    except BotoCoreError as exc:  # unreachable endpoint, bad URL, timeout
        raise StorageCheckFailed(f"{where} cannot be reached: {exc}; check s3_endpoint_url and the "
                                 f"network") from None


def _check_gcs_bucket(key: str, bucket: str, options) -> None:
    """GetBucket once, with the client Beam's GCS filesystem builds (same credentials)."""
    from apache_beam.io.gcp.gcsio import create_storage_client  # noqa: PLC0415 - only for gs:// state
    from google.api_core import exceptions as google_errors  # noqa: PLC0415
    from google.auth import exceptions as auth_errors  # noqa: PLC0415
    from requests import exceptions as http_errors  # noqa: PLC0415

    where = f"{key}: GCS bucket {bucket}"
    try:
        create_storage_client(options).get_bucket(bucket, timeout=(CONNECT_SECONDS, READ_SECONDS), retry=None)
    except google_errors.NotFound:
        raise StorageCheckFailed(f"{where} does not exist; create it or fix {key}") from None
    except (google_errors.Forbidden, google_errors.Unauthorized) as exc:
        raise StorageCheckFailed(f"{where}: access denied ({exc.code}); check the Google credentials of this "
                                 f"machine and their permissions on the bucket") from None
    except auth_errors.GoogleAuthError as exc:  # e.g. expired or revoked credentials
        raise StorageCheckFailed(f"{where}: the Google credentials of this machine do not work: "
                                 f"{type(exc).__name__}; renew them (gcloud auth application-default login)") from None
    except google_errors.GoogleAPIError as exc:
        raise StorageCheckFailed(f"{where} cannot be used: {exc}") from None
    except http_errors.RequestException as exc:
        raise StorageCheckFailed(f"{where} cannot be reached: {type(exc).__name__}; check the network") from None
