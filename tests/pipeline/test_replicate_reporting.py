"""What `replicate` prints and decides from the engine's figures (pure functions, no servers)."""
from pipeline.commands.replicate.reporting import caught_up, status_line
from transforms.streams.engine import TableStatus


def _status(unconfirmed: int) -> TableStatus:
    return TableStatus(applied=12, lag=0.4, open_shards=3, waiting=0, unread=0, unconfirmed=unconfirmed)


def test_a_shard_not_read_to_its_end_is_shown_and_holds_caught_up_back():
    line = status_line(5.0, {"songs": _status(1)}, {"songs": 2.0})
    assert "songs: lag 0.4 s, 12 changes (2/s), 3 open shards, 1 not read to their end yet" in line
    assert not caught_up({"songs": _status(1)}, max_lag=2.0)


def test_every_shard_read_to_its_end_under_the_lag_is_caught_up():
    line = status_line(5.0, {"songs": _status(0)}, {"songs": 2.0})
    assert "not read to their end" not in line and line.endswith("3 open shards")
    assert caught_up({"songs": _status(0)}, max_lag=2.0)
    assert not caught_up({"songs": _status(0)}, max_lag=0.3)
