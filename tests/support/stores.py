"""Where a test run keeps its state: a local folder, a bucket on moto's S3, or a bucket on
the GCS emulator; with what a config and a process need to reach it."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from apache_beam.options.pipeline_options import PipelineOptions

from transforms.state.storage import StorageOptions

S3_KEYS = {"s3_access_key_id": "test", "s3_secret_access_key": "test", "s3_region_name": "us-east-1"}


@dataclass(frozen=True)
class Store:
    kind: str                      # local, s3 or gs
    root: str                      # a folder or a bucket URI; the run's state goes under it
    pipeline_options: dict = field(default_factory=dict)  # Beam's S3 options
    env: dict = field(default_factory=dict)               # the GCS emulator's address

    @property
    def checkpoint_dir(self) -> str:
        return f"{self.root}/checkpoints"

    @property
    def dead_letter_dir(self) -> str:
        return f"{self.root}/dead-letter"

    def config_sections(self, **pipeline_options) -> dict:
        """The config keys that put a run's state here (for `write_config`)."""
        return {"checkpoint_dir": self.checkpoint_dir, "dead_letter_dir": self.dead_letter_dir,
                "pipeline_options": {"runner": "DirectRunner", **self.pipeline_options, **pipeline_options}}

    def use_here(self, monkeypatch) -> None:
        """Let this test process read the store, as the launcher does (env + Beam's options)."""
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        StorageOptions.of(PipelineOptions(flags=[], **self.pipeline_options)).install()


def unique_bucket(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def local_store(tmp_path: Path) -> Store:
    return Store("local", str(tmp_path / "state"))


def s3_store(endpoint: str, bucket: str | None = None, *, create: bool = True) -> Store:
    bucket = bucket or unique_bucket("state")
    if create:
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket=bucket)
    return Store("s3", f"s3://{bucket}/run", {"s3_endpoint_url": endpoint, **S3_KEYS})


def gcs_store(emulator, bucket: str | None = None, *, create: bool = True) -> Store:
    bucket = bucket or unique_bucket("state")
    if create:
        emulator.create_bucket(bucket)
    return Store("gs", f"gs://{bucket}/run", env=emulator.client_env)
