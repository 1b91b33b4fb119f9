"""A real ``redis-server`` on a free loopback port, persistence off, and instance processes.

The binary comes from Debian's ``redis-server`` package (``.ci/run`` installs
it).  Missing: the tests are skipped with a message on a developer machine,
and fail in CI (``CI=true``), where a skip would hide the gap.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from ..conftest import free_tcp_port

INSTANCE_SCRIPT = Path(__file__).with_name("instance.py")


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + "; CI must run the cluster tests")
        pytest.skip(message)
    return binary


@pytest.fixture(autouse=True)
def _collect_coredis_leftovers() -> Iterator[None]:
    """Collect what coredis leaves behind, ignoring its ResourceWarnings.

    coredis 6.9 leaves the anyio memory streams of a connection that failed
    (Redis down) unclosed; collected later, they would warn in whichever test
    runs then.  Collected here, after each cluster test, the warning is ignored.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, started and stopped by the tests."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(10)
        self.process = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis for the session; tests keep apart by key prefix."""
    server = RedisServer(_redis_binary(), free_tcp_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test alone (one it may stop and restart)."""
    server = RedisServer(_redis_binary(), free_tcp_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


_prefixes = iter(range(1, 1_000_000))


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{os.getpid()}-{next(_prefixes)}:"


class Instance:
    """A CSMS instance running ``instance.py`` in a process of its own."""

    def __init__(self, name: str, process: trio.Process, port: int) -> None:
        self.name = name
        self.process = process
        self.port = port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def kill(self) -> None:
        self.process.kill()


@asynccontextmanager
async def instances(
    redis_url: str, prefix: str, names: list[str], **options: Any
) -> AsyncIterator[list[Instance]]:
    """Start one ``instance.py`` process per name, all sharing ``redis_url``; kill them after."""
    started: list[Instance] = []
    args = [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
    try:
        for name in names:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-u", str(INSTANCE_SCRIPT), redis_url, prefix, name, *args],
                stdout=subprocess.PIPE,
            )
            started.append(Instance(name, process, 0))
        for instance in started:
            instance.port = await _ready_port(instance.process)
        yield started
    finally:
        for instance in started:
            with trio.CancelScope(shield=True):
                instance.process.kill()
                await instance.process.wait()
                if instance.process.stdout is not None:
                    await instance.process.stdout.aclose()


async def _ready_port(process: trio.Process) -> int:
    assert process.stdout is not None
    buffer = b""
    with trio.fail_after(20):
        while b"\n" not in buffer:
            chunk = await process.stdout.receive_some()
            if not chunk:
                raise RuntimeError("instance exited before it was ready")
            buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode()
    assert line.startswith("READY "), line
    return int(line.split()[1])
