"""Helpers of the ASGI tests: Hypercorn's Trio worker on port 0, a raw HTTP client, the examples."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import h11
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """A fresh copy of ``examples/<name>.py`` (its server can be served once)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Running:
    """A Hypercorn serving an app: its port, and how to stop it."""

    port: int
    stop: trio.Event
    stopped: trio.Event


def hypercorn_config() -> Config:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 2.0
    config.accesslog = None
    config.errorlog = None
    return config


@asynccontextmanager
async def hypercorn(
    app: Any, *, before_stop: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[Running]:
    """Serve ``app`` with Hypercorn's Trio worker on a free port; stop it on exit."""
    stop, stopped = trio.Event(), trio.Event()

    async def trigger() -> None:
        await stop.wait()
        if before_stop is not None:
            await before_stop()

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(app, hypercorn_config(), shutdown_trigger=trigger, task_status=task_status)
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        running = Running(int(binds[0].rsplit(":", 1)[1]), stop, stopped)
        try:
            yield running
        finally:
            stop.set()


async def serve_with(
    run: Callable[..., Awaitable[None]], nursery: trio.Nursery, stop: trio.Event
) -> int:
    """Start an example's ``run(0, shutdown=stop.wait)``; its port."""
    binds: list[str] = await nursery.start(partial(run, 0, shutdown=stop.wait))
    return int(binds[0].rsplit(":", 1)[1])


@dataclass
class HTTPAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def http_request(
    port: int, target: str, *, method: str = "GET", headers: tuple[tuple[str, str], ...] = ()
) -> HTTPAnswer:
    """One HTTP/1.1 request over a fresh TCP connection (h11); the whole answer."""
    conn = h11.Connection(h11.CLIENT)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        request = h11.Request(
            method=method, target=target, headers=[("host", "127.0.0.1"), *headers]
        )
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        status, answer_headers, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response | h11.InformationalResponse):
                status = event.status_code
                for name, value in event.headers:
                    answer_headers[name.decode().lower()] = value.decode()
                if isinstance(event, h11.InformationalResponse):
                    break  # 101: the rest is WebSocket
            elif isinstance(event, h11.Data):
                body += event.data
            else:
                break
    return HTTPAnswer(status, answer_headers, body)


def upgrade_headers(
    *protocols: str, extra: tuple[tuple[str, str], ...] = ()
) -> tuple[tuple[str, str], ...]:
    """The headers of a WebSocket upgrade request."""
    base: tuple[tuple[str, str], ...] = (
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    )
    if protocols:
        base += (("sec-websocket-protocol", ", ".join(protocols)),)
    return base + extra
