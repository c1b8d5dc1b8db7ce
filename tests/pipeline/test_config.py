"""The run config: defaults, ${VAR} expansion, and every user mistake as a ConfigError.

Fast unit tests of `parse_config` / `load_config`; no server is started.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from pipeline.checks.config import ConfigError, RunConfig, load_config, parse_config
from transforms.dynamo.endpoints import Credentials

SECRET = "s3cr3t-Zq9vX7-never-print-me"
SESSION_TOKEN = "t0ken-Kp4mW2-never-print-me"


def endpoint_config(**overrides) -> dict:
    """A minimal valid config with a plain target endpoint."""
    raw = {
        "source": {"endpoint": "http://127.0.0.1:8001", "region": "us-east-1",
                   "credentials": {"access_key_id": "AKIDEXAMPLE", "secret_access_key": SECRET}},
        "target": {"endpoint": "http://127.0.0.1:8000"},
        "tables": [{"source": "Music"}],
    }
    raw.update(overrides)
    return raw


def alternator_config(**alternator) -> dict:
    raw = endpoint_config()
    raw["target"] = {"alternator": {"seeds": ["127.0.0.1"], **alternator}}
    return raw


def error_of(raw, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, **kwargs)
    return str(info.value)


# --- defaults -------------------------------------------------------------------------------


def test_defaults_for_an_endpoint_target():
    config = parse_config(endpoint_config())

    assert isinstance(config, RunConfig)
    assert config.scan.segments is None  # auto
    assert config.scan.page_size == 1000
    assert config.scan.consistent_read is False
    assert config.scan.max_read_units_per_second is None
    assert config.write.max_items_per_batch is None
    assert config.writer_settings().max_items_per_batch == 25  # DynamoDB's BatchWriteItem limit
    assert config.write.concurrency == 16
    assert config.write.max_attempts == 10
    assert config.write.max_items_per_second is None
    assert config.source.region == "us-east-1"
    assert config.target.endpoint == "http://127.0.0.1:8000"
    assert config.target.alternator_seeds == ()
    assert config.pipeline_options == {}
    assert config.checkpoint_interval_seconds == 5.0


def test_defaults_for_an_alternator_target():
    config = parse_config(alternator_config())

    assert config.writer_settings().max_items_per_batch == 100  # Alternator accepts 100 items per BatchWriteItem
    assert config.target.alternator_seeds == ("127.0.0.1",)
    assert config.target.alternator_port == 8000
    assert config.target.alternator_scheme == "http"
    assert config.target.datacenter is None and config.target.rack is None
    assert config.target.endpoint is None
    assert config.write.concurrency == 16 and config.write.max_attempts == 10
    assert config.scan.segments is None and config.scan.page_size == 1000
    assert config.scan.pages_in_flight == 16


def test_a_dynamodb_target_has_the_400_kb_item_limit_and_streams_are_asked_for():
    dynamodb, alternator = parse_config(endpoint_config()), parse_config(alternator_config())
    streamed = alternator_config()
    streamed["target"]["streams"] = True

    assert dynamodb.writer_settings().max_item_bytes == 400 * 1024
    assert alternator.writer_settings().max_item_bytes is None  # Alternator has no item size limit
    assert not dynamodb.target.streams and parse_config(streamed).target.streams
    streamed["target"]["streams"] = "yes"
    assert error_of(streamed) == "target.streams must be bool, got 'yes'"


def test_segments_auto_explicit_and_numeric():
    assert parse_config(endpoint_config(scan={"segments": "auto"})).scan.segments is None
    assert parse_config(endpoint_config(scan={"segments": 12})).scan.segments == 12


def test_table_defaults_and_plain_string_table():
    config = parse_config(endpoint_config(tables=["Music", {"source": "Mutants", "target": "mutants_v2",
                                                            "renames": {"old": "new"}, "create": "never"}]))

    music, mutants = config.tables
    assert (music.source, music.target, dict(music.renames), music.create) == ("Music", "Music", {}, "if_missing")
    assert (mutants.source, mutants.target, dict(mutants.renames), mutants.create) == (
        "Mutants", "mutants_v2", {"old": "new"}, "never")


def test_max_items_per_batch_within_the_limits():
    def batch(raw) -> int:
        return parse_config(raw).writer_settings().max_items_per_batch

    assert batch(alternator_config() | {"write": {"max_items_per_batch": 100}}) == 100
    assert batch(endpoint_config(write={"max_items_per_batch": 25})) == 25
    assert batch(endpoint_config(write={"max_items_per_batch": 10})) == 10


def test_datacenter_and_rack_together():
    target = parse_config(alternator_config(datacenter="dc1", rack="rack1")).target
    assert (target.datacenter, target.rack) == ("dc1", "rack1")


# --- ${VAR} expansion ------------------------------------------------------------------------


def test_env_references_are_expanded(monkeypatch):
    monkeypatch.setenv("AM_TEST_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AM_TEST_SECRET", SECRET)
    monkeypatch.setenv("AM_TEST_PORT_HOST", "127.0.0.1:9999")
    raw = endpoint_config()
    raw["source"]["credentials"] = {"access_key_id": "${AM_TEST_KEY_ID}",
                                    "secret_access_key": "${AM_TEST_SECRET}"}
    raw["target"]["endpoint"] = "http://${AM_TEST_PORT_HOST}"

    config = parse_config(raw)

    assert config.source.credentials.access_key_id == "AKIDFROMENV"
    assert config.source.credentials.secret_access_key == SECRET
    assert config.target.endpoint == "http://127.0.0.1:9999"


def test_unset_env_reference_names_the_variable_and_the_key(monkeypatch):
    monkeypatch.delenv("AM_TEST_UNSET_VAR", raising=False)
    raw = endpoint_config()
    raw["source"]["credentials"]["secret_access_key"] = "${AM_TEST_UNSET_VAR}"

    message = error_of(raw)

    assert "AM_TEST_UNSET_VAR" in message
    assert "not set" in message
    assert "source.credentials.secret_access_key" in message


def test_text_without_a_reference_is_kept(monkeypatch):
    monkeypatch.delenv("NOT_A_REF", raising=False)
    raw = endpoint_config()
    raw["source"]["credentials"]["secret_access_key"] = "$NOT_A_REF-and-{braces}"
    assert parse_config(raw).source.credentials.secret_access_key == "$NOT_A_REF-and-{braces}"


# --- unknown and missing keys ----------------------------------------------------------------


@pytest.mark.parametrize("mutate, key", [
    (lambda raw: raw.update(tabels=[]), "tabels"),
    (lambda raw: raw.update(scan={"pagesize": 10}), "scan.pagesize"),
    (lambda raw: raw.update(write={"batch_size": 10}), "write.batch_size"),
    (lambda raw: raw["source"].update(endpiont="http://x"), "source.endpiont"),
    (lambda raw: raw["source"]["credentials"].update(secret_key="x"), "source.credentials.secret_key"),
    (lambda raw: raw.update(target={"alternator": {"seeds": ["a"], "seed": "b"}}), "target.alternator.seed"),
    (lambda raw: raw.update(tables=[{"source": "A", "rename": {}}]), "tables[0].rename"),
])
def test_unknown_key_is_named_with_its_full_path(mutate, key):
    raw = endpoint_config()
    mutate(raw)

    message = error_of(raw)

    assert f"unknown key {key};" in message
    assert "spelling" in message


def test_unknown_key_lists_the_known_ones():
    message = error_of(endpoint_config(scan={"pagesize": 10}))
    assert "page_size" in message


@pytest.mark.parametrize("missing", ["source", "target", "tables"])
def test_missing_top_level_section(missing):
    raw = endpoint_config()
    del raw[missing]

    message = error_of(raw)

    assert missing in message
    if missing != "tables":
        assert f"missing required key {missing}" in message


def test_empty_tables_list():
    assert "tables must be a non-empty list" in error_of(endpoint_config(tables=[]))


def test_table_without_source():
    assert "missing required key tables[0].source" in error_of(endpoint_config(tables=[{"target": "x"}]))


def test_alternator_without_seeds():
    assert "target.alternator.seeds" in error_of(alternator_config(seeds=[]))


# --- target shape ----------------------------------------------------------------------------


def test_rack_without_datacenter():
    message = error_of(alternator_config(rack="rack1"))
    assert "target.alternator.rack" in message and "target.alternator.datacenter" in message


def test_both_alternator_and_endpoint():
    raw = alternator_config()
    raw["target"]["endpoint"] = "http://127.0.0.1:8000"
    message = error_of(raw)
    assert "target.alternator" in message and "target.endpoint" in message and "not both" in message


def test_neither_alternator_nor_endpoint():
    message = error_of(endpoint_config(target={"region": "us-east-1"}))
    assert "target.alternator" in message and "target.endpoint" in message


@pytest.mark.parametrize("where, url", [
    ("source.endpoint", "127.0.0.1:8000"),
    ("source.endpoint", "localhost"),
    ("target.endpoint", "ftp://127.0.0.1:8000"),
    ("target.endpoint", "http://"),
])
def test_bad_url(where, url):
    raw = endpoint_config()
    section, key = where.split(".")
    raw[section][key] = url

    message = error_of(raw)

    assert where in message and repr(url) in message
    assert "http://127.0.0.1:8000" in message  # the example of a good one


def test_bad_alternator_port_and_scheme():
    assert "target.alternator.port" in error_of(alternator_config(port=70000))
    assert "target.alternator.scheme" in error_of(alternator_config(scheme="ftp"))


# --- numeric limits --------------------------------------------------------------------------


def test_batch_of_101_rejected_for_alternator():
    message = error_of(alternator_config() | {"write": {"max_items_per_batch": 101}})
    assert "write.max_items_per_batch" in message and "101" in message and "100" in message


def test_batch_of_26_rejected_for_an_endpoint():
    message = error_of(endpoint_config(write={"max_items_per_batch": 26}))
    assert "write.max_items_per_batch" in message and "26" in message and "25" in message


@pytest.mark.parametrize("segments", [0, -3, "many", 1_000_001, True])
def test_bad_segments(segments):
    message = error_of(endpoint_config(scan={"segments": segments}))
    assert "scan.segments" in message and "auto" in message


@pytest.mark.parametrize("section, key, value", [
    ("scan", "page_size", 0),
    ("write", "concurrency", 0),
    ("write", "max_attempts", -1),
    ("write", "max_items_per_batch", 0),
    ("scan", "max_read_units_per_second", 0),
    ("scan", "pages_in_flight", 0),
])
def test_non_positive_numbers(section, key, value):
    message = error_of(endpoint_config(**{section: {key: value}}))
    assert f"{section}.{key} must be greater than 0" in message


def test_pages_in_flight_reach_each_worker_and_have_a_ceiling():
    config = parse_config(endpoint_config(scan={"pages_in_flight": 40, "max_read_units_per_second": 100},
                                          pipeline_options={"direct_num_workers": 4}))
    settings = config.scan_settings()
    assert settings.pages_in_flight == 40 and settings.workers == 4
    assert settings.max_read_units_per_second == 25  # the pages in flight of a worker share its part of the cap
    message = error_of(endpoint_config(scan={"pages_in_flight": 1001}))
    assert "scan.pages_in_flight is 1001, at most 1000" in message


@pytest.mark.parametrize("section, key, value", [
    ("scan", "page_size", "10"),
    ("write", "concurrency", True),
    ("scan", "consistent_read", "yes"),
])
def test_wrong_types(section, key, value):
    message = error_of(endpoint_config(**{section: {key: value}}))
    assert f"{section}.{key} must be" in message


def test_checkpoint_interval():
    assert parse_config(endpoint_config(checkpoint_interval_seconds=0.5)).checkpoint_interval_seconds == 0.5
    assert "checkpoint_interval_seconds must be greater than 0" in error_of(
        endpoint_config(checkpoint_interval_seconds=0))
    assert "checkpoint_interval_seconds must be int or float" in error_of(
        endpoint_config(checkpoint_interval_seconds="5s"))


# --- tables ----------------------------------------------------------------------------------


def test_create_must_be_if_missing_or_never():
    message = error_of(endpoint_config(tables=[{"source": "A", "create": "always"}]))
    assert "tables[0].create" in message and "if_missing" in message and "never" in message


def test_duplicate_source_tables():
    message = error_of(endpoint_config(tables=["A", {"source": "A", "target": "B"}]))
    assert "source table A is listed twice" in message


def test_duplicate_target_tables():
    message = error_of(endpoint_config(tables=[{"source": "A", "target": "C"}, {"source": "B", "target": "C"}]))
    assert "target table C is listed twice" in message


def test_renames_to_the_same_name():
    message = error_of(endpoint_config(tables=[{"source": "A", "renames": {"x": "z", "y": "z"}}]))
    assert "tables[0].renames" in message and "same name" in message


def test_renames_must_be_names():
    assert "tables[0].renames" in error_of(endpoint_config(tables=[{"source": "A", "renames": {"x": ""}}]))
    assert "tables[0].renames" in error_of(endpoint_config(tables=[{"source": "A", "renames": ["x"]}]))


def test_table_entry_that_is_not_a_string_or_mapping():
    assert "tables[1] must be a mapping" in error_of(endpoint_config(tables=["A", 5]))


# --- paths -----------------------------------------------------------------------------------


def test_relative_dirs_made_absolute_against_base_dir(tmp_path):
    config = parse_config(endpoint_config(checkpoint_dir="./ckpt", dead_letter_dir="dl/here"), base_dir=tmp_path)

    assert config.checkpoint_dir == str((tmp_path / "ckpt").resolve())
    assert config.dead_letter_dir == str((tmp_path / "dl" / "here").resolve())
    assert os.path.isabs(config.checkpoint_dir)


def test_load_config_anchors_relative_dirs_at_the_current_directory(tmp_path, monkeypatch):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(endpoint_config(checkpoint_dir="ckpt")))
    monkeypatch.chdir(tmp_path)

    config = load_config(path)

    assert config.checkpoint_dir == str((tmp_path / "ckpt").resolve())
    assert config.dead_letter_dir == str((tmp_path / "dead-letter").resolve())  # the default


def test_uri_dirs_are_kept():
    config = parse_config(endpoint_config(checkpoint_dir="gs://bucket/ckpt", dead_letter_dir="s3://b/dl"),
                          base_dir=Path("/somewhere"))
    assert config.checkpoint_dir == "gs://bucket/ckpt"
    assert config.dead_letter_dir == "s3://b/dl"


# --- secrets ---------------------------------------------------------------------------------


def _config_with_secrets() -> RunConfig:
    raw = alternator_config()
    raw["source"]["credentials"]["session_token"] = SESSION_TOKEN
    raw["target"]["credentials"] = {"access_key_id": "alternator", "secret_access_key": SECRET}
    return parse_config(raw)


def test_secrets_never_in_repr_or_str():
    config = _config_with_secrets()

    assert config.source.credentials.secret_access_key == SECRET  # it is there ...
    for text in (repr(config), str(config), repr(config.source), repr(config.target),
                 repr(config.source.credentials), repr(config.target.credentials)):
        assert SECRET not in text  # ... but never shown
        assert SESSION_TOKEN not in text
    assert "hidden" in repr(config.source.credentials)


def test_credentials_repr_shows_a_profile_name_only():
    creds = Credentials(profile="prod")
    assert repr(creds) == "Credentials(profile='prod')"
    assert SECRET not in repr(Credentials("AKID", SECRET, SESSION_TOKEN))


def test_a_secret_of_the_wrong_type_is_not_echoed():
    raw = endpoint_config()
    raw["source"]["credentials"]["secret_access_key"] = 987654321987

    message = error_of(raw)

    assert "source.credentials.secret_access_key must be str" in message
    assert "987654321987" not in message


def test_credentials_half_given_or_mixed():
    raw = endpoint_config()
    del raw["source"]["credentials"]["secret_access_key"]
    assert "set both" in error_of(raw)
    raw = endpoint_config()
    raw["source"]["credentials"]["profile"] = "prod"
    message = error_of(raw)
    assert "profile" in message and SECRET not in message


# --- the file itself -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n", ""])
def test_yaml_that_is_not_a_mapping(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert str(path) in str(info.value) and "mapping" in str(info.value)


def test_parse_config_of_a_non_mapping():
    message = error_of(["source", "target"])
    assert "mapping" in message and not message.startswith(" ")


def test_invalid_yaml_names_the_position_but_not_the_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(f"source:\n  credentials:\n    secret_access_key: {SECRET}: oops\n")

    with pytest.raises(ConfigError) as info:
        load_config(path)

    message = str(info.value)
    assert "not valid YAML" in message and "line 3" in message
    assert SECRET not in message
    assert "\n" not in message  # the CLI prints one `error:` line


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"cannot read config file {path}" in str(info.value)
    assert "No such file" in str(info.value)


def test_directory_instead_of_a_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert f"cannot read config file {tmp_path}" in str(info.value)


def test_file_that_is_not_text(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81 binary")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"cannot read config file {path}" in str(info.value)


def test_load_config_round_trip(tmp_path):
    raw = copy.deepcopy(alternator_config(datacenter="dc1"))
    raw["scan"] = {"segments": 8, "page_size": 500, "consistent_read": True}
    raw["write"] = {"max_items_per_batch": 50, "concurrency": 4, "max_items_per_second": 1000.5}
    raw["pipeline_options"] = {"runner": "DirectRunner", "direct_num_workers": 2}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))

    config = load_config(path)

    assert config.scan.segments == 8 and config.scan.page_size == 500 and config.scan.consistent_read
    assert config.writer_settings().max_items_per_batch == 50 and config.write.concurrency == 4
    assert config.write.max_items_per_second == 1000.5
    assert config.target.datacenter == "dc1"
    assert dict(config.pipeline_options) == {"runner": "DirectRunner", "direct_num_workers": 2}


# --- a role to assume -----------------------------------------------------------------------


def test_a_role_to_assume_on_top_of_static_keys():
    raw = endpoint_config()
    raw["source"]["credentials"].update(role_arn="arn:aws:iam::123456789012:role/migration", external_id=SECRET)
    credentials = parse_config(raw).source.credentials
    assert credentials.role_arn == "arn:aws:iam::123456789012:role/migration"
    assert credentials.duration_seconds == 3600 and credentials.session_name == "alternator-migrate"
    assert SECRET not in repr(credentials)


@pytest.mark.parametrize("credentials, fragment", [
    ({"role_arn": "migration"}, "must be a role's ARN"),
    ({"access_key_id": "a", "secret_access_key": "b", "external_id": "x"}, "go with role_arn"),
    ({"role_arn": "arn:aws:iam::123456789012:role/m", "duration_seconds": 60}, "900..43200"),
])
def test_role_mistakes_are_named(credentials, fragment):
    raw = endpoint_config()
    raw["source"]["credentials"] = credentials
    assert fragment in error_of(raw)


def test_credentials_that_name_nothing_say_what_leaving_them_out_means():
    raw = endpoint_config()
    raw["source"]["credentials"] = {"session_token": "x"}
    raw["target"]["credentials"] = {"session_token": "x"}
    assert "remove credentials to use the AWS default chain" in error_of(raw)
    raw["source"] = endpoint_config()["source"]
    assert "remove credentials for unsigned requests" in error_of(raw)


def test_the_target_takes_no_role():
    raw = alternator_config()
    raw["target"]["credentials"] = {"role_arn": "arn:aws:iam::123456789012:role/m"}
    assert "not a profile or a role" in error_of(raw)


# --- exports as a source ----------------------------------------------------------------------


def test_export_entries(tmp_path):
    raw = endpoint_config(tables=[{"source": "Music", "export": "s3://b/p/AWSDynamoDB/1-a/",
                                   "incremental_exports": ["s3://b/p/AWSDynamoDB/2-b/"]},
                                  {"source": "Other", "parquet": "exported/Other"}])
    music, other = parse_config(raw, base_dir=tmp_path).tables
    assert (music.export, music.incremental_exports) == ("s3://b/p/AWSDynamoDB/1-a/", ("s3://b/p/AWSDynamoDB/2-b/",))
    assert other.parquet == str(tmp_path / "exported" / "Other") and other.export is None

    both = endpoint_config(tables=[{"source": "M", "export": "s3://b/e/", "parquet": "s3://b/p/"}])
    assert error_of(both) == "tables[0]: give either export (a DynamoDB export) or parquet, not both"
    alone = endpoint_config(tables=[{"source": "M", "incremental_exports": ["s3://b/e/"]}])
    assert "tables[0].incremental_exports go on top of a full export: set tables[0].export too" in error_of(alone)
    bad = endpoint_config(tables=[{"source": "M", "export": "s3://b/e/", "incremental_exports": [3]}])
    assert "tables[0].incremental_exports must be a list of export folders" in error_of(bad)


def test_a_table_followed_on_a_kinesis_data_stream():
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/music-changes"
    raw = endpoint_config(tables=[{"source": "Music", "kinesis_stream_arn": arn}, "Other"])
    raw["source"]["kinesis_endpoint"] = "http://127.0.0.1:4566"
    config = parse_config(raw)
    assert [t.kinesis_stream_arn for t in config.tables] == [arn, None]
    assert config.source.kinesis_endpoint == "http://127.0.0.1:4566"
    assert parse_config(endpoint_config()).source.kinesis_endpoint is None  # AWS's, for the region

    not_kinesis = endpoint_config(tables=[{"source": "M", "kinesis_stream_arn":
                                           "arn:aws:dynamodb:us-east-1:123456789012:table/M/stream/2024"}])
    assert "tables[0].kinesis_stream_arn must be a Kinesis data stream's ARN like arn:aws:kinesis:" in \
        error_of(not_kinesis)
    elsewhere = endpoint_config(tables=[{"source": "M", "kinesis_stream_arn": arn.replace("us-east-1", "eu-west-1")}])
    assert error_of(elsewhere) == (
        "tables[0].kinesis_stream_arn is in eu-west-1, but the source is in us-east-1: DynamoDB sends a table's "
        "changes only to a Kinesis data stream of its own region; give that stream's ARN")
