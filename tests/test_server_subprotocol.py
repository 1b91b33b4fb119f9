"""No subprotocol in common: OCPP-J's 101 + close (default), or HTTP 400 (``refuse_unknown_subprotocol``).

Both WebSocket backends of our own listener and the ASGI front end (Hypercorn).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio

from ocpp_trio import (
    HandshakeRejected,
    ProtocolNegotiationError,
    basic_auth_header,
    open_ocpp_client,
)
from ocpp_trio.asgi import OCPPASGIApp
from ocpp_trio.server import HandshakeRejectedEvent, HandshakeRequest, OCPPServer

from .asgi.helpers import http_request, hypercorn, upgrade_headers
from .conftest import raw_exchange, status_of, upgrade_request
from .helpers import serving_with_refusals

TIMEOUT = 10.0
BACKENDS = ["websockets", "trio-websocket"]
BODY = (
    b"No OCPP subprotocol in common: offer one of these in Sec-WebSocket-Protocol: "
    b"ocpp2.0.1, ocpp1.6\n"
)


def serving(
    **options: Any,
) -> AbstractAsyncContextManager[tuple[OCPPServer, list[HandshakeRejectedEvent]]]:
    options.setdefault("close_timeout", 0.5)
    return serving_with_refusals(None, protocols=["ocpp2.0.1", "ocpp1.6"], **options)


async def head_of_answer(port: int, request: bytes) -> bytes:
    """The status line and headers the server answers ``request`` with."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some()
            assert chunk
            data += chunk
    return data.partition(b"\r\n\r\n")[0]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_by_default_no_common_subprotocol_is_101_then_close(backend: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(websocket_backend=backend) as (server, rejected):
            assert server.refuse_unknown_subprotocol is False
            for protocols in [(), ("ocpp1.5",)]:
                head = await head_of_answer(
                    server.port, upgrade_request("/ocpp/CP1", protocols=protocols)
                )
                assert status_of(head) == 101
                assert b"sec-websocket-protocol" not in head.lower()
            with pytest.raises(ProtocolNegotiationError):
                async with open_ocpp_client(
                    f"ws://127.0.0.1:{server.port}/ocpp",
                    identity="CP1",
                    protocols=["ocpp1.5"],
                    reconnect=False,
                ):
                    pass
    assert all(e.status is None for e in rejected)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_refuse_unknown_subprotocol_answers_400_with_our_list(backend: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(websocket_backend=backend, refuse_unknown_subprotocol=True) as (
            server,
            rejected,
        ):
            assert server.refuse_unknown_subprotocol is True
            for protocols in [(), ("ocpp1.5", "ocpp2.1")]:
                answer = await raw_exchange(
                    server.port, upgrade_request("/ocpp/CP1", protocols=protocols)
                )
                head, _, body = answer.partition(b"\r\n\r\n")
                assert status_of(head) == 400
                assert body == BODY
                assert b"content-type: text/plain; charset=utf-8" in head.lower()
            # One in common: accepted as ever, in the server's order of preference.
            head = await head_of_answer(
                server.port, upgrade_request("/ocpp/CP1", protocols=("ocpp1.6", "ocpp2.0.1"))
            )
            assert status_of(head) == 101
            assert b"sec-websocket-protocol: ocpp2.0.1" in head.lower()
            # Our client reports it as a refusal.
            with pytest.raises(HandshakeRejected) as info:
                async with open_ocpp_client(
                    f"ws://127.0.0.1:{server.port}/ocpp",
                    identity="CP1",
                    protocols=["ocpp1.5"],
                    reconnect=False,
                ):
                    pass
            assert info.value.status_code == 400
    assert [e.reason for e in rejected if e.status == 400][:2] == [
        "no subprotocol offered (Sec-WebSocket-Protocol)",
        "none of the offered subprotocols (ocpp1.5, ocpp2.1) is spoken here",
    ]


async def test_credentials_and_auth_come_before_the_subprotocol_refusal() -> None:
    asked: list[str] = []

    def auth(request: HandshakeRequest) -> bool:
        asked.append(request.identity)
        return request.identity != "NOPE"

    with trio.fail_after(TIMEOUT):
        async with serving(refuse_unknown_subprotocol=True, security_profile=1, auth=auth) as (
            server,
            _,
        ):
            # No password: 401, not 400.
            answer = await raw_exchange(server.port, upgrade_request("/ocpp/CP1", protocols=()))
            assert status_of(answer) == 401
            # Refused by auth: its status.
            nope = basic_auth_header("NOPE", "p" * 20)
            answer = await raw_exchange(
                server.port, upgrade_request("/ocpp/NOPE", protocols=(), headers=(nope,))
            )
            assert status_of(answer) == 401
            ok = basic_auth_header("CP1", "p" * 20)
            answer = await raw_exchange(
                server.port, upgrade_request("/ocpp/CP1", protocols=(), headers=(ok,))
            )
            assert status_of(answer) == 400
    assert asked == ["NOPE", "CP1"]


@pytest.mark.parametrize("refuse", [False, True])
async def test_the_asgi_app_follows_the_server_option(refuse: bool) -> None:
    server = OCPPServer(protocols=["ocpp2.0.1", "ocpp1.6"], refuse_unknown_subprotocol=refuse)
    app = OCPPASGIApp(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running:  # the app runs the server in its lifespan
            answer = await http_request(
                running.port, "/ocpp/CP1", headers=upgrade_headers("ocpp1.5")
            )
            if refuse:
                assert answer.status == 400
                assert answer.body == BODY
            else:
                assert answer.status == 101
                assert "sec-websocket-protocol" not in answer.headers
