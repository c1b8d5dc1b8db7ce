"""The job's options as the config spells them: Beam's flag names, short runner names, the
Dask defaults, and the filesystem options that go to the workers."""
from __future__ import annotations

import pickle

import pytest
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.dask.dask_runner import DaskOptions

from pipeline.checks import launch, runners
from pipeline.checks.config import ConfigError, load_config, parse_config
from testbed.servers import REPO_ROOT
from transforms.state.storage import StorageOptions, bucket_of


def _config(**pipeline_options):
    return parse_config({"source": {"endpoint": "http://127.0.0.1:1"}, "target": {"endpoint": "http://127.0.0.1:2"},
                         "tables": ["things"], "pipeline_options": pipeline_options})


@pytest.mark.parametrize("name", ["dask", "Dask", "DaskRunner", launch.DASK_RUNNER])
def test_dask_by_short_name_and_flag_names(name):
    config = _config(runner=name, dask_client_address="tcp://127.0.0.1:8786", dask_connection_timeout=5)
    launch.check_options(config, [])

    options = launch.pipeline_options(config, [])

    assert options.view_as(StandardOptions).runner == launch.DASK_RUNNER
    assert runners.runner_kind(options) == "dask"
    dask = options.view_as(DaskOptions)
    assert (dask.address, dask.timeout) == ("tcp://127.0.0.1:8786", 5)  # not silently dropped
    assert dask.partition_size == 1  # one partition per segment or shard: the work spreads


def test_a_chosen_dask_partitioning_is_kept():
    options = launch.pipeline_options(_config(runner="dask", dask_client_address="tcp://x:1"), ["--dask_npartitions=3"])

    assert (options.view_as(DaskOptions).npartitions, options.view_as(DaskOptions).partition_size) == (3, None)


def test_a_misspelled_flag_name_is_still_refused():
    with pytest.raises(ConfigError, match="dask_client_adress is not a Beam pipeline option; did you mean "
                                          "dask_client_address"):
        launch.check_options(_config(runner="dask", dask_client_adress="tcp://x:1"), [])


def test_other_runners_are_left_as_beam_names_them():
    for name, kind in (("DirectRunner", "direct"), ("DataflowRunner", "dataflow"), (None, "direct")):
        options = launch.pipeline_options(_config(**({"runner": name} if name else {})), [])
        assert runners.runner_kind(options) == kind
        assert options.view_as(DaskOptions).partition_size is None


def test_the_workers_get_the_filesystem_options_only():
    options = launch.pipeline_options(_config(runner="DirectRunner", s3_endpoint_url="http://127.0.0.1:9",
                                              s3_secret_access_key="very-secret", direct_num_workers=2), [])

    storage = StorageOptions.of(options)

    assert dict(storage.values) == {"s3_endpoint_url": "http://127.0.0.1:9", "s3_secret_access_key": "very-secret"}
    assert "very-secret" not in repr(storage)
    assert pickle.loads(pickle.dumps(storage)) == storage


def test_bucket_of():
    assert bucket_of("s3://bucket/a/b") == ("s3", "bucket")
    assert bucket_of("gs://bucket") == ("gs", "bucket")
    assert bucket_of("/tmp/checkpoints") is None and bucket_of("file:///tmp/x") is None


@pytest.mark.parametrize("name", ["local", "s3", "gcs", "dask", "dataflow", "export"])
def test_every_example_config_loads_and_its_options_are_beams(name, monkeypatch):
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ALTERNATOR_USER", "ALTERNATOR_SALTED_HASH"):
        monkeypatch.setenv(variable, "x")
    config = load_config(REPO_ROOT / "configs" / f"{name}.yaml")

    launch.check_options(config, [])

    kind = runners.runner_kind(launch.pipeline_options(config, []))
    assert kind == {"dask": "dask", "dataflow": "dataflow"}.get(name, "direct")


def test_a_scheduler_on_another_machine_is_not_here():
    for address, here in (("tcp://127.0.0.1:8786", True), ("tcp://localhost:8786", True),
                          ("tcp://10.0.0.5:8786", False), ("tls://scheduler.internal:8786", False)):
        options = launch.pipeline_options(_config(runner="dask", dask_client_address=address), [])
        assert runners.cluster_is_here(options) is here, address
