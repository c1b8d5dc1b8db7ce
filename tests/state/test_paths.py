"""Names read back from listed paths, whichever separator the storage lists them with."""
from __future__ import annotations

import pytest

from transforms.state.paths import file_name, folder_name, with_slashes


@pytest.mark.parametrize("path", ["dl/run-1/orders/a.jsonl", "s3://bucket/dl/run-1/orders/a.jsonl",
                                  "C:\\dl\\run-1\\orders\\a.jsonl", "gs://bucket/dl\\run-1/orders\\a.jsonl"])
def test_a_listed_path_gives_its_file_and_folder_names_with_either_separator(path):
    assert file_name(path) == "a.jsonl"
    assert folder_name(path) == "orders"
    assert "\\" not in with_slashes(path) and with_slashes(path).endswith("/run-1/orders/a.jsonl")


def test_a_path_one_folder_deep_has_both_names():
    assert file_name("orders/a.jsonl") == "a.jsonl"
    assert folder_name("orders/a.jsonl") == "orders"
    assert file_name("a.jsonl") == "a.jsonl"
