"""Shared test helpers: streams whose delivery can be paused (a peer that goes silent),
the stdout lines of a subprocess, and a server on loopback with its refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
import trio.testing

from ocpp_trio.server import Handler, HandshakeRejectedEvent, OCPPServer, serve_ocpp


@asynccontextmanager
async def serving_with_refusals(
    handler: Handler | None, **options: Any
) -> AsyncIterator[tuple[OCPPServer, list[HandshakeRejectedEvent]]]:
    """``serve_ocpp(handler)`` on 127.0.0.1 port 0 (no pings), and its ``handshake_rejected`` events.

    Closed (bounded) on the way out.
    """
    options.setdefault("ping_interval", 0)
    rejected: list[HandshakeRejectedEvent] = []
    async with trio.open_nursery() as nursery:
        server: OCPPServer = await nursery.start(
            partial(serve_ocpp, handler, 0, host="127.0.0.1", **options)
        )
        server.on("handshake_rejected", rejected.append)
        try:
            yield server, rejected
        finally:
            with trio.fail_after(10):
                await server.close()


class Valve:
    """Controls one direction of a freezable stream pair."""

    def __init__(self) -> None:
        self.frozen = False


def _one_way(
    valve: Valve,
) -> tuple[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream]:
    send = trio.testing.MemorySendStream()
    recv = trio.testing.MemoryReceiveStream()

    def pump() -> None:
        if not valve.frozen:
            trio.testing.memory_stream_pump(send, recv)

    async def async_pump() -> None:
        pump()

    send.send_all_hook = async_pump
    send.close_hook = pump  # a frozen link delivers nothing, not even the EOF
    return send, recv


def freezable_stream_pair() -> tuple[
    tuple[
        trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream],
        trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream],
    ],
    Valve,
    Valve,
]:
    """Return ``((a, b), a_to_b, b_to_a)``: freeze a valve and that direction stops delivering."""
    a_to_b, b_to_a = Valve(), Valve()
    s1, r1 = _one_way(a_to_b)
    s2, r2 = _one_way(b_to_a)
    return (trio.StapledStream(s1, r2), trio.StapledStream(s2, r1)), a_to_b, b_to_a


class Recorder:
    """Collects event payloads per event name."""

    def __init__(self, target: object, *names: str) -> None:
        self.events: dict[str, list[object]] = {n: [] for n in names}
        for name in names:
            target.on(name, self.events[name].append)  # type: ignore[attr-defined]

    def __getitem__(self, name: str) -> list[object]:
        return self.events[name]


class Lines:
    """Lines of a subprocess's stdout, read as they come."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""
        self.seen: list[str] = []

    async def until(self, prefix: str) -> str:
        while True:
            for line in self.seen:
                if line.startswith(prefix):
                    return line
            chunk = await self._stream.receive_some()
            if not chunk:
                raise AssertionError(f"no line {prefix!r} before EOF; got {self.seen}")
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            self.seen += [line.decode() for line in lines]

    async def until_eof(self) -> list[str]:
        """Every line, once the stream has ended."""
        while chunk := await self._stream.receive_some():
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            self.seen += [line.decode() for line in lines]
        return self.seen
