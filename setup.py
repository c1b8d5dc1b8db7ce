"""Package definition; also what Dataflow workers install (--setup_file ./setup.py)."""
from setuptools import find_packages, setup

setup(
    name="alternator-migrate",
    version="0.1.0",
    description="Move DynamoDB tables into ScyllaDB Alternator and keep them in sync.",
    python_requires=">=3.10",
    packages=find_packages(include=["pipeline", "pipeline.*", "transforms", "transforms.*"]),
    install_requires=[
        "apache-beam>=2.77,<3",
        "aiobotocore>=2.13",
        "alternator-client[async]>=2.0",
        "pyarrow>=15",
        "orjson>=3.9",
        "tenacity>=8",
        "click>=8.1",
        "PyYAML>=6",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6", "moto[server]>=5", "pyflakes>=3", "cryptography>=42"],
    },
    entry_points={"console_scripts": ["alternator-migrate=pipeline.console:main"]},
)
