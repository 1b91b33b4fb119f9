"""Limits the WebSocket layer enforces reach the application as ``limit`` events, named right.

A message in too many fragments and a message over ``max_message_size`` both
close with 1009 (RFC 6455 §7.4.1); the event says which bound it was.
"""

from __future__ import annotations

import os
from functools import partial

import trio

from ocpp_trio import OCPPConnection, serve_ocpp
from ocpp_trio._websocket.driver import MAX_FRAGMENTS
from ocpp_trio.events import CloseEvent, LimitEvent

from .conftest import upgrade_request


def masked_frame(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    """One client frame (RFC 6455 §5.2: clients mask), payloads under 126 bytes."""
    key = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def close_after(data: bytes, **server_options: object) -> tuple[list[LimitEvent], int]:
    """Upgrade as CP1, send ``data``; the CSMS's limit events and its close code."""
    events: list[LimitEvent] = []
    closed = trio.Event()
    codes: list[int] = []

    async def on_station(conn: OCPPConnection) -> None:
        conn.on("limit", events.append)

        def on_close(event: CloseEvent) -> None:
            codes.append(event.code)
            closed.set()

        conn.on("close", on_close)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(serve_ocpp, on_station, 0, host="127.0.0.1", **server_options)
            )
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.send_all(upgrade_request("/ocpp/CP1"))
                answer = await stream.receive_some()
                assert answer.startswith(b"HTTP/1.1 101")
                await stream.send_all(data)
                await closed.wait()
            await server.close()
            nursery.cancel_scope.cancel()
    return events, codes[0]


async def test_a_message_in_too_many_fragments_is_reported_as_max_fragments() -> None:
    frames = [masked_frame(0x1, b"[", fin=False)]
    frames += [masked_frame(0x0, b" ", fin=False) for _ in range(MAX_FRAGMENTS)]
    events, code = await close_after(b"".join(frames), ping_interval=0)
    assert code == 1009
    assert [(e.limit, e.value) for e in events] == [("max_fragments", MAX_FRAGMENTS)]


async def test_a_message_over_max_message_size_is_reported_as_such() -> None:
    frames = [masked_frame(0x1, b"[" * 100, fin=False)]
    frames += [masked_frame(0x0, b" " * 100, fin=i == 9) for i in range(10)]
    events, code = await close_after(b"".join(frames), ping_interval=0, max_message_size=500)
    assert code == 1009
    assert [(e.limit, e.value) for e in events] == [("max_message_size", 500)]
