"""The default transport tells each sender whether *its* frame was written."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio

from ocpp_trio._core.errors import ConnectionClosed

from .test_shutdown import _ws_pair


class _Wrapped:
    """A stream passing everything to ``inner``; subclasses change ``send_all``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def send_all(self, data: bytes) -> None:
        await self.inner.send_all(data)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data: bytes = await self.inner.receive_some(max_bytes)
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


class _BreaksOnSecondWrite(_Wrapped):
    """A stream whose first ``send_all`` goes through and whose second fails."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.writes: list[bytes] = []

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if self.writes:
            raise trio.BrokenResourceError("connection reset by peer")
        self.writes.append(bytes(data))
        await self.inner.send_all(data)


async def test_a_frame_written_before_a_later_failure_is_reported_sent(
    autojump_clock: Any,
) -> None:
    """Found by the 10-minute soak: a task writing its own frame and then, in the
    same flush, another task's frame that failed was told its frame was lost
    (the server did not report the answer, the station had it), while the other
    task was told its lost frame was sent."""
    client, server = await _ws_pair()
    stream = _BreaksOnSecondWrite(server._stream)
    server._stream = stream
    outcome: dict[str, str] = {}

    async def send(name: str) -> None:
        try:
            await server.send(f'[3,"{name}",{{}}]')
        except ConnectionClosed:
            outcome[name] = "failed"
        else:
            outcome[name] = "sent"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send, "first")
        nursery.start_soon(send, "second")
    # Trio starts the two in either order: the one whose frame got out is "sent".
    got_out = await client.receive()
    sent = next(name for name in outcome if f'"{name}"' in got_out)
    assert outcome[sent] == "sent"
    assert sorted(outcome.values()) == ["failed", "sent"]
    with pytest.raises(ConnectionClosed):
        await server.send('[3,"third",{}]')  # nothing is written after a failed write


async def test_frames_go_out_in_the_order_they_were_produced(autojump_clock: Any) -> None:
    client, server = await _ws_pair()
    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(server.send, f'[3,"{n}",{{}}]')
    received = [await client.receive() for _ in range(20)]
    assert sorted(received) == sorted(f'[3,"{n}",{{}}]' for n in range(20))
    assert len(server._out) == 0
    assert server._written == server._queued == 20


class _Slow(_Wrapped):
    """A stream whose first write takes ``delay`` seconds (the peer's window is full)."""

    def __init__(self, inner: Any, delay: float) -> None:
        super().__init__(inner)
        self.delay = delay
        self.first = True

    async def send_all(self, data: bytes) -> None:
        if self.first:
            self.first = False
            await trio.sleep(self.delay)
        await self.inner.send_all(data)


async def test_a_write_started_is_finished_when_its_caller_is_cancelled(
    autojump_clock: Any,
) -> None:
    """Dropping a frame half-way (or whole, under permessage-deflate, whose
    context the frames share) would garble every later frame."""
    client, server = await _ws_pair()
    assert server.compression
    server._stream = _Slow(server._stream, 2.0)
    with trio.move_on_after(1) as scope:
        await server.send('[3,"slow",{"data":"' + "x" * 50 + '"}]')
    assert scope.cancel_called  # the write finished all the same
    await server.send('[3,"next",{"data":"' + "x" * 50 + '"}]')
    assert await client.receive() == '[3,"slow",{"data":"' + "x" * 50 + '"}]'
    assert await client.receive() == '[3,"next",{"data":"' + "x" * 50 + '"}]'


async def test_a_write_the_peer_never_takes_fails_the_connection(autojump_clock: Any) -> None:
    from ocpp_trio._websocket.driver import WRITE_GRACE

    _client, server = await _ws_pair()
    server._stream = _Slow(server._stream, math.inf)
    started = trio.current_time()
    with pytest.raises(ConnectionClosed, match="took no data"):
        await server.send('[3,"stuck",{}]')
    assert trio.current_time() - started == pytest.approx(WRITE_GRACE)
    with pytest.raises(ConnectionClosed):
        await server.send('[3,"after",{}]')
