"""Run the `alternator-migrate` command line with the network cut off outside 127.0.0.0/8:
`python -m tests.support.offline ARGS` is `alternator-migrate ARGS`, except that any
attempt to resolve or reach another host fails, and is named on stderr (Python's audit
hooks see every socket.getaddrinfo and socket.connect)."""
from __future__ import annotations

import sys

LOCAL = ("127.", "localhost", "::1")


def _refuse_remote(event: str, args: tuple) -> None:
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) else None
    else:
        return
    if isinstance(host, bytes):
        host = host.decode()
    if isinstance(host, str) and not host.startswith(LOCAL):
        print(f"offline run: refused to reach {host}", file=sys.stderr)  # the terminal, whoever wraps the error
        raise OSError(f"offline run: refused to reach {host}")


if __name__ == "__main__":
    sys.addaudithook(_refuse_remote)
    from pipeline.console import main

    sys.argv = ["alternator-migrate", *sys.argv[1:]]
    main()
