"""The default transport hands frames to a plain TCP socket directly (``_websocket/driver.py``).

Over a socket pair, which is a ``trio.SocketStream`` like a TCP connection:
frames the kernel takes at once cost no task switch; a frame larger than the
socket's buffer is finished by ``send_all``, whole and in order, even when its
sender is cancelled meanwhile.
"""

from __future__ import annotations

import os
import socket

import pytest
import trio
import trio.testing

from ocpp_trio._core.errors import ConnectionClosed
from ocpp_trio._websocket.driver import WSTransport
from ocpp_trio._websocket.handshake import client_handshake, server_handshake

pytestmark = pytest.mark.skipif(os.name != "posix", reason="direct writes are POSIX only")

BIG = 2**22  # well over a socket pair's buffer


async def socket_ws_pair() -> tuple[WSTransport, WSTransport]:
    """A client and a server ``WSTransport`` over a connected socket pair."""
    a, b = trio.socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    client_stream, server_stream = trio.SocketStream(a), trio.SocketStream(b)
    accepted: list[WSTransport] = []
    async with trio.open_nursery() as nursery:

        async def serve() -> None:
            request = await server_handshake(
                server_stream, max_message_size=2 * BIG, compression=False
            )
            accepted.append(await request.accept("ocpp1.6"))

        nursery.start_soon(serve)
        client, _ = await client_handshake(
            client_stream,
            "ws://127.0.0.1/ocpp/CP1",
            subprotocols=["ocpp1.6"],
            headers=[],
            max_message_size=2 * BIG,
            compression=False,
        )
    return client, accepted[0]


async def test_a_small_frame_is_written_without_a_task_switch() -> None:
    client, server = await socket_ws_pair()
    with trio.testing.assert_no_checkpoints():
        await server.send('[3,"1",{}]')
        await client.send('[2,"2","Heartbeat",{}]')
    assert await client.receive() == '[3,"1",{}]'
    assert await server.receive() == '[2,"2","Heartbeat",{}]'
    await client.abort()
    await server.abort()


async def test_a_frame_over_the_socket_buffer_is_finished_whole_and_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server = await socket_ws_pair()
    big = '[3,"big",{"data":"' + "x" * BIG + '"}]'
    received: list[str | bytes] = []

    async def read_later() -> None:
        await trio.sleep(5)  # the socket buffer fills up meanwhile
        received.append(await client.receive())
        received.append(await client.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_later)
        await server.send(big)  # the rest of the frame waits for the peer
        assert trio.current_time() >= 5
        await server.send('[3,"next",{}]')
    assert received == [big, '[3,"next",{}]']
    await client.abort()
    await server.abort()


async def test_a_frame_over_the_socket_buffer_cut_by_a_cancel_aborts_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server = await socket_ws_pair()
    big = '[3,"big",{"data":"' + "x" * BIG + '"}]'
    with trio.move_on_after(1) as scope:
        await server.send(big)  # the kernel took part of it; the rest waits for the peer
    assert scope.cancelled_caught
    assert trio.current_time() == 1
    assert server.close_code == 1006
    assert "half-way" in server.close_reason
    with pytest.raises(ConnectionClosed):
        await client.receive()  # the peer sees the connection end, not a garbled frame
    await client.abort()


async def test_a_closed_socket_is_never_written() -> None:
    client, server = await socket_ws_pair()
    await server.abort()
    assert server._write_now(b"x") == 0  # its file descriptor is gone, maybe reused
    with pytest.raises(ConnectionClosed):
        await server.send('[3,"1",{}]')
    await client.abort()
