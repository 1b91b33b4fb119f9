"""Both WebSocket backends behind the transport seam, in every client/server pairing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from ocpp_trio import (
    AuthAccept,
    AuthReject,
    ConnectionClosed,
    HandshakeRejected,
    HandshakeRequest,
    OCPPConnection,
    OCPPServer,
    open_ocpp_client,
    serve_ocpp,
)

from .conftest import status_of, upgrade_request
from .test_ws_hostile import BINARY, close_code_of, frame

BACKENDS = ["websockets", "trio-websocket"]
NOW = {"currentTime": "2024-01-01T00:00:00Z"}


@asynccontextmanager
async def serving(backend: str, **options: Any) -> AsyncIterator[OCPPServer]:
    async def on_station(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)
        conn.handle(
            "DataTransfer", lambda ctx: {"status": "Accepted", "data": ctx.params.get("data", "")}
        )

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_ocpp,
                on_station,
                0,
                host="127.0.0.1",
                protocols=["ocpp1.6"],
                websocket_backend=backend,
                **options,
            )
        )
        yield server
        await server.close()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("server_backend", BACKENDS)
@pytest.mark.parametrize("client_backend", BACKENDS)
async def test_calls_both_ways_and_close_codes(client_backend: str, server_backend: str) -> None:
    with trio.fail_after(10):
        async with (
            serving(server_backend) as server,
            open_ocpp_client(
                f"ws://127.0.0.1:{server.port}/ocpp",
                identity="CP1",
                websocket_backend=client_backend,
                ping_interval=0,
                reconnect=False,
            ) as client,
        ):
            client.handle("Reset", lambda ctx: {"status": "Accepted"})
            assert await client.call("Heartbeat", {}) == NOW
            big = "x" * 200_000  # several frames / reads
            res = await client.call("DataTransfer", {"vendorId": "v", "data": big})
            assert res["data"] == big
            conn = server.clients["CP1"]
            assert await conn.call("Reset", {"type": "Soft"}) == {"status": "Accepted"}
            await conn.close(4001, "bye")
            await client.wait_closed()
            assert client.connection is not None
            assert client.connection.close_code == 4001
            assert client.connection.close_reason == "bye"
            with pytest.raises(ConnectionClosed):
                await client.call("Heartbeat", {})


@pytest.mark.parametrize("server_backend", BACKENDS)
@pytest.mark.parametrize("client_backend", BACKENDS)
async def test_rejection_status_reaches_the_client(
    client_backend: str, server_backend: str
) -> None:
    def auth(request: HandshakeRequest) -> AuthAccept | AuthReject:
        return AuthReject(403)

    with trio.fail_after(10):
        async with serving(server_backend, auth=auth) as server:
            with pytest.raises(HandshakeRejected) as info:
                async with open_ocpp_client(
                    f"ws://127.0.0.1:{server.port}/ocpp",
                    identity="CP1",
                    websocket_backend=client_backend,
                    reconnect=False,
                ):
                    pytest.fail("must not connect")  # pragma: no cover
            assert info.value.status_code == 403


@pytest.mark.parametrize("server_backend", BACKENDS)
async def test_oversized_message_closes_with_1009(server_backend: str) -> None:
    with trio.fail_after(10):
        async with (
            serving(server_backend, max_message_size=1000) as server,
            open_ocpp_client(
                f"ws://127.0.0.1:{server.port}/ocpp",
                identity="CP1",
                ping_interval=0,
                reconnect=False,
            ) as client,
        ):
            with pytest.raises(ConnectionClosed) as info:
                await client.call("DataTransfer", {"vendorId": "v", "data": "x" * 5000})
            assert info.value.code == 1009
            # the server carries on
            async with open_ocpp_client(
                f"ws://127.0.0.1:{server.port}/ocpp",
                identity="CP2",
                ping_interval=0,
                reconnect=False,
            ) as other:
                assert await other.call("Heartbeat", {}) == NOW


async def test_permessage_deflate_is_negotiated_with_the_websockets_backend() -> None:
    with trio.fail_after(10):
        async with (
            serving("websockets") as server,
            open_ocpp_client(
                f"ws://127.0.0.1:{server.port}/ocpp",
                identity="CP1",
                ping_interval=0,
                reconnect=False,
                compression=True,
            ) as client,
        ):
            conn = server.clients["CP1"]
            answer = dict(client.connection.handshake.response_headers).get(  # type: ignore[union-attr]
                "sec-websocket-extensions", ""
            )
            assert "permessage-deflate" in answer
            # each message compressed on its own, both ways (the default)
            assert "server_no_context_takeover" in answer
            assert "client_no_context_takeover" in answer
            offer = dict(conn.handshake.request_headers)["sec-websocket-extensions"]
            assert "server_no_context_takeover" in offer
            assert conn.handshake.request_headers
            assert (
                await client.call("DataTransfer", {"vendorId": "v", "data": "y" * 50_000})
                is not None
            )
        async with (
            serving("websockets", compression=False) as server,
            open_ocpp_client(
                f"ws://127.0.0.1:{server.port}/ocpp",
                identity="CP1",
                ping_interval=0,
                reconnect=False,
                compression=True,
            ) as client,
        ):
            assert "sec-websocket-extensions" not in dict(
                client.connection.handshake.response_headers
            )  # type: ignore[union-attr]


@pytest.mark.parametrize("server_backend", BACKENDS)
async def test_pings_get_pongs(server_backend: str) -> None:
    with trio.fail_after(10):
        async with (
            serving(server_backend) as server,
            open_ocpp_client(
                f"ws://127.0.0.1:{server.port}/ocpp",
                identity="CP1",
                ping_interval=0.05,
                pong_timeout=5,
                reconnect=False,
            ) as client,
        ):
            pongs: list[object] = []
            three = trio.Event()

            def on_pong(event: object) -> None:
                pongs.append(event)
                if len(pongs) == 3:
                    three.set()

            client.on("pong", on_pong)
            await three.wait()
            assert await client.call("Heartbeat", {}) == NOW


async def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="websocket_backend"):
        OCPPServer(websocket_backend="tornado")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="websocket_backend"):
        async with open_ocpp_client("ws://h/ocpp", identity="CP1", websocket_backend="tornado"):
            pass  # pragma: no cover


@pytest.mark.parametrize("server_backend", BACKENDS)
async def test_a_binary_message_closes_with_1003(server_backend: str) -> None:
    """OCPP-J messages are text: either backend fails the connection with 1003
    (RFC 6455 §7.4.1) instead of handing bytes to the RPC layer."""
    closed: list[int | None] = []

    def on_client(conn: OCPPConnection) -> None:
        conn.on("close", lambda event: closed.append(event.code))

    with trio.fail_after(10):
        async with serving(server_backend, ping_interval=0) as server:
            server.on("client", on_client)
            received = bytearray()
            async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
                await stream.send_all(upgrade_request("/ocpp/BIN1"))
                while b"\r\n\r\n" not in received:
                    received += await stream.receive_some()
                assert status_of(bytes(received)) == 101
                await stream.send_all(frame(b'[2,"1","Heartbeat",{}]', BINARY))
                try:
                    while chunk := await stream.receive_some():
                        received += chunk
                except trio.BrokenResourceError:
                    pass
            frames = bytes(received).partition(b"\r\n\r\n")[2]
            assert close_code_of(frames) == 1003
            assert b"OCPP-J messages are text, not binary" in frames
            while not closed:  # the server's close event  # noqa: ASYNC110
                await trio.sleep(0.01)
    assert closed == [1003]
