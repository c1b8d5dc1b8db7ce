"""The settings every process needs to reach a run's storage (a local folder, s3://, gs://).

Beam's filesystems take their settings (the S3 endpoint, keys and region; the GCS
project) from the pipeline options a process was given with `FileSystems.set_options`,
a process-wide setting. The launcher installs them from the job's pipeline options,
`beam.Pipeline(options=...)` installs the same again, and DirectRunner and Dataflow
workers receive them with the pipeline options. Dask workers receive none (Beam's Dask
runner never passes them), so every DoFn that touches storage installs its
`StorageOptions` in `setup`.

A GCS emulator (`STORAGE_EMULATOR_HOST`, used by the tests) needs no credentials, but
Beam would first look for Google's default credentials and, finding none, retry for
about 22 s in every process; with an emulator set, Beam is told at once that there are
none (`_connect_anonymously`). Never without one: production keeps Google's credentials.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["StorageOptions", "bucket_of"]


@dataclass(frozen=True)
class StorageOptions:
    """The filesystem options of a job (picklable; holds the S3 keys when the config gives them,
    like the pipeline options themselves: never log it)."""

    values: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, options) -> "StorageOptions":
        """The filesystem options set in a job's pipeline options (Beam's `PipelineOptions`)."""
        from apache_beam.options.pipeline_options import (  # noqa: PLC0415 - Beam where it is used (files.py)
            GoogleCloudOptions, HadoopFileSystemOptions, S3Options)

        values: dict[str, Any] = {}
        for view in (S3Options, GoogleCloudOptions, HadoopFileSystemOptions):  # the groups Beam's filesystems read
            values.update(options.view_as(view).get_all_options(drop_default=True, current_only=True))
        return cls(tuple(sorted(values.items())))

    def install(self) -> None:
        """Make this process's Beam filesystems use these options (call it in `DoFn.setup`).
        A process that has not imported Beam has no Beam filesystem to set up (its local
        files need none: `transforms.state.files`), and with no options nothing imports it."""
        if not self.values and "apache_beam" not in sys.modules:
            return
        from apache_beam.io.filesystems import FileSystems  # noqa: PLC0415
        from apache_beam.options.pipeline_options import PipelineOptions  # noqa: PLC0415

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            _connect_anonymously()
        FileSystems.set_options(PipelineOptions(flags=[], **dict(self.values)))

    def __repr__(self) -> str:  # the values may hold secret keys
        return f"StorageOptions({', '.join(name for name, _ in self.values)})"


def bucket_of(path: str) -> tuple[str, str] | None:
    """(scheme, bucket) of an object-store URI such as s3://bucket/prefix; None for a local path."""
    scheme, sep, rest = path.partition("://")
    if not sep or scheme == "file":
        return None
    return scheme, rest.split("/", 1)[0]


def _connect_anonymously() -> None:
    """Record in Beam's credential cache that there are no Google credentials, so its GCS
    client connects anonymously at once (the emulator's case; see the module docstring)."""
    from apache_beam.internal.gcp import auth  # noqa: PLC0415 - only with an emulator

    with auth._Credentials._credentials_lock:  # noqa: SLF001 - Beam has no public switch for this
        auth._Credentials._credentials = None  # noqa: SLF001
        auth._Credentials._credentials_init = True  # noqa: SLF001
