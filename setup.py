"""Package definition; also what Dataflow workers install (--setup_file ./setup.py)."""
from setuptools import Extension, find_packages, setup

setup(
    name="alternator-migrate",
    version="0.1.0",
    description="Move DynamoDB tables into ScyllaDB Alternator and keep them in sync.",
    python_requires=">=3.10",
    packages=find_packages(include=["pipeline", "pipeline.*", "transforms", "transforms.*"]),
    install_requires=[
        "apache-beam[aws]>=2.77,<3",  # [aws]: boto3, for s3:// state (Beam's S3 filesystem, the bucket check)
        "aiobotocore>=2.13",
        "alternator-client[async]>=2.0",
        "pyarrow>=15",
        "orjson>=3.9",
        "httptools>=0.6",  # llhttp: the data plane's reply parser (transforms/dynamo/http1.py)
        "tenacity>=8",
        "click>=8.1",
        "PyYAML>=6",
        "prometheus_client>=0.17",  # --metrics-port: the exposition format, not our own
    ],
    extras_require={
        # gs:// state and the DataflowRunner (Beam's GCS filesystem and Dataflow client).
        "gcp": ["apache-beam[gcp]>=2.77,<3"],
        "dataflow": ["apache-beam[gcp]>=2.77,<3"],
        # Beam's Dask runner needs dask and distributed on the launcher and every worker.
        "dask": ["apache-beam[dask]>=2.77,<3"],
        # The suite runs every storage and engine: a GCS emulator, a Dask cluster, Dataflow dry runs;
        # `make bench` reads the servers' CPU time (psutil). moto 5.2.6 (2026-12-04) checks an S3
        # request's IAM permission by its operation's name (s3:ListObjectsV2, s3:HeadObject), not by
        # the IAM action AWS documents (s3:ListBucket, s3:GetObject), so it refuses what the
        # documented policies allow: a regression of moto (its _get_action), not of the policies.
        "test": ["pytest>=8", "hypothesis>=6", "moto[server]>=5,<5.2.6", "pyflakes>=3", "cryptography>=42",
                 "apache-beam[gcp,dask]>=2.77,<3", "gcp-storage-emulator>=2024.8",
                 "psutil>=5.9"],
    },
    # The Scan decoder's C accelerator (transforms/items/scan_columns.c): optional, so that an
    # install without a C compiler still works, on the pure-Python decoder it stands in for.
    ext_modules=[Extension("transforms.items._scan_columns", ["transforms/items/scan_columns.c"], optional=True)],
    entry_points={"console_scripts": ["alternator-migrate=pipeline.console:main"]},
)
