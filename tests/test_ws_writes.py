"""The default transport tells each sender whether *its* frame was written."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

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


async def test_a_write_cancelled_half_way_aborts_the_connection_with_the_reason(
    autojump_clock: Any,
) -> None:
    """No write is shielded: the caller's scope ends it on time; the frame cut
    short would garble every later one, so the connection is aborted."""
    _client, server = await _ws_pair()
    assert server.compression
    server._stream = _Slow(server._stream, 2.0)
    with trio.move_on_after(1) as scope:
        await server.send('[3,"slow",{"data":"' + "x" * 50 + '"}]')
    assert scope.cancelled_caught
    assert trio.current_time() == 1
    assert server.close_code == 1006
    assert "half-way" in server.close_reason
    with pytest.raises(ConnectionClosed, match="half-way"):
        await server.send('[3,"next",{}]')


async def test_a_write_the_peer_never_takes_is_bounded_by_its_caller(autojump_clock: Any) -> None:
    _client, server = await _ws_pair()
    server._stream = _Slow(server._stream, math.inf)
    with trio.move_on_after(3) as scope:
        await server.send('[3,"stuck",{}]')
    assert scope.cancelled_caught
    assert trio.current_time() == 3
    with pytest.raises(ConnectionClosed):
        await server.send('[3,"after",{}]')


async def test_a_write_cancelled_before_its_first_byte_leaves_the_stream_whole(
    autojump_clock: Any,
) -> None:
    """Cancelled while waiting behind another write: its frame stays queued and
    goes out, whole and in order, with the next write (the deflate context the
    frames share stays in step)."""
    client, server = await _ws_pair()
    assert server.compression
    slow = server._stream = _Slow(server._stream, 2.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.send, '[3,"first",{}]')
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1) as scope:
            await server.send('[3,"second",{}]')
        assert scope.cancelled_caught
    assert trio.current_time() == 2
    assert server.close_code is None
    slow.delay = 0.0
    await server.send('[3,"third",{}]')
    assert await client.receive() == '[3,"first",{}]'
    assert await client.receive() == '[3,"second",{}]'
    assert await client.receive() == '[3,"third",{}]'
