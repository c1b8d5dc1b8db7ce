"""Dead letters of incremental exports are named by what failed, so a bundle the runner
retries rewrites its file instead of adding a second copy of the same letters."""
from transforms.dynamo.write_requests import FailedWrite, delete, put
from transforms.exports.changes import _letters_name
from transforms.state.dead_letters import count_dead_letters, write_dead_letters


def _failures():
    return [FailedWrite("orders", put({"pk": {"S": "a"}, "blob": {"B": b"\x00\x01"}}), "ValidationException"),
            FailedWrite("orders", delete({"pk": {"S": "b"}}), "ValidationException")]


def test_a_retried_bundle_rewrites_its_letters_instead_of_adding_them_again(tmp_path):
    run = str(tmp_path / "run-1")
    first, retried = _failures(), list(reversed(_failures()))  # a retry may meet them in another order

    write_dead_letters(run, first, name=_letters_name("orders", first))
    write_dead_letters(run, retried, name=_letters_name("orders", retried))

    assert count_dead_letters(run) == {"orders": 2}
    assert _letters_name("orders", first[:1]) != _letters_name("orders", first)
