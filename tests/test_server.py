"""Tests for ocpp_trio.server over real loopback sockets, with our own client as the station."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.lowlevel

from ocpp_trio import (
    ConnectionState,
    HandlerContext,
    HandshakeRejected,
    OCPPClient,
    OCPPConnection,
    ProtocolNegotiationError,
    open_ocpp_client,
)
from ocpp_trio.server import (
    CLOSE_REPLACED,
    AuthAccept,
    AuthReject,
    HandshakeRejectedEvent,
    HandshakeRequest,
    OCPPServer,
    StationHandshake,
    serve_ocpp,
)

from .conftest import raw_exchange, status_of, upgrade_request

TIMEOUT = 10.0
NOW = {"currentTime": "2024-01-01T00:00:00Z"}
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}

Handler = Callable[[OCPPConnection], Awaitable[object]]


@asynccontextmanager
async def serving(handler: Handler | None = None, **options: Any) -> AsyncIterator[OCPPServer]:
    """Run ``serve_ocpp`` on 127.0.0.1, port 0; close the server on exit."""
    options.setdefault("ping_interval", 0)
    async with trio.open_nursery() as nursery:
        server: OCPPServer = await nursery.start(
            partial(serve_ocpp, handler, 0, host="127.0.0.1", **options)
        )
        try:
            yield server
        finally:
            with trio.fail_after(TIMEOUT):
                await server.close()


def station(
    server: OCPPServer, identity: str = "CP001", **options: Any
) -> AbstractAsyncContextManager[OCPPClient]:
    """Open our client against ``server`` (no reconnect, no pings)."""
    options.setdefault("reconnect", False)
    options.setdefault("ping_interval", 0)
    options.setdefault("connect_timeout", 5)
    return open_ocpp_client(f"ws://127.0.0.1:{server.port}/ocpp", identity=identity, **options)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true, within ``timeout``."""
    with trio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - state of other objects, no event to wait on
            await trio.sleep(0.01)


async def rejected_status(server: OCPPServer, identity: str, **options: Any) -> int:
    with pytest.raises(HandshakeRejected) as info:
        async with station(server, identity, **options):
            pass
    return info.value.status_code


# --- calls both ways, lifecycle of the handler --------------------------------------


async def test_handlers_registered_in_setup_answer_a_call_made_on_connect() -> None:
    """A CSMS calling the moment the station connects finds its handlers there."""
    answers: list[dict[str, Any]] = []

    async def handler(conn: OCPPConnection) -> None:
        answers.append(await conn.call("GetConfiguration", {}))  # at once

    def setup(client: OCPPClient) -> None:
        client.handle("GetConfiguration", lambda ctx: {"configurationKey": []})

    with trio.fail_after(TIMEOUT):
        async with serving(handler) as server:
            for n in range(5):
                async with station(server, f"CP{n:03d}", setup=setup):
                    await wait_for(lambda n=n: len(answers) > n)  # type: ignore[misc]
    assert answers == [{"configurationKey": []}] * 5


async def test_serve_and_call_both_ways() -> None:
    answered: list[dict[str, Any]] = []

    async def handler(conn: OCPPConnection) -> None:
        # Call the station once it has called us: its handlers are registered
        # by then (a call at once could beat the body of open_ocpp_client).
        called = trio.Event()

        def heartbeat(ctx: HandlerContext) -> dict[str, Any]:
            called.set()
            return NOW

        conn.handle("Heartbeat", heartbeat)
        await called.wait()
        answered.append(await conn.call("GetConfiguration", {"key": ["HeartbeatInterval"]}))

    with trio.fail_after(TIMEOUT):
        async with serving(handler) as server:
            assert server.port > 0
            async with station(server) as client:
                client.handle(
                    "GetConfiguration",
                    lambda ctx: {
                        "configurationKey": [
                            {"key": "HeartbeatInterval", "readonly": False, "value": "60"}
                        ]
                    },
                )
                assert await client.call("Heartbeat", {}) == NOW
                await wait_for(lambda: bool(answered))
                assert answered[0]["configurationKey"][0]["value"] == "60"
                conn = server.clients["CP001"]
                assert conn.protocol == "ocpp1.6"
                assert isinstance(conn.handshake, StationHandshake)
                assert conn.handshake.identity == "CP001"
                assert conn.handshake.endpoint == "/ocpp"
                assert conn.handshake.remote is not None
                assert "CP001" in repr(server) or "clients=1" in repr(server)
            await wait_for(lambda: "CP001" not in server.clients)


async def test_handler_returning_keeps_the_connection() -> None:
    async def handler(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)

    with trio.fail_after(TIMEOUT):
        async with serving(handler) as server, station(server) as client:
            await trio.sleep(0.2)  # the handler has long returned
            assert await client.call("Heartbeat", {}) == NOW
            assert server.clients["CP001"].state is ConnectionState.OPEN


async def test_handler_raising_closes_1011_and_others_carry_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)
        if conn.identity == "BAD":
            raise RuntimeError("boom")

    with trio.fail_after(TIMEOUT):
        async with serving(handler) as server, station(server, "GOOD") as good:
            async with station(server, "BAD") as bad:
                await bad.wait_closed()
                assert bad.connection is not None
                assert bad.connection.close_code == 1011
            assert await good.call("Heartbeat", {}) == NOW
            assert list(server.clients) == ["GOOD"]
    assert any("BAD" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


async def test_server_level_events() -> None:
    seen: list[object] = []

    with trio.fail_after(TIMEOUT):
        async with serving() as server:
            server.on("client", seen.append)
            server.on("handshake_rejected", seen.append)
            with pytest.raises(ValueError, match="unknown server event"):
                server.on("nope", seen.append)
            async with station(server, "CP1"):
                pass
            assert await rejected_status(server, "x" * 49) == 400
    assert isinstance(seen[0], OCPPConnection)
    assert isinstance(seen[1], HandshakeRejectedEvent)
    assert seen[1].status == 400


def _without(header: str, request: bytes) -> bytes:
    return b"".join(
        line for line in request.splitlines(keepends=True) if not line.startswith(header.encode())
    )


GOOD_REQUEST = upgrade_request("/ocpp/CP1")

#: Requests the WebSocket layer itself refuses: (what is wrong, bytes, status, reason).
REFUSED_UPGRADES = [
    (
        "missing key",
        _without("Sec-WebSocket-Key", GOOD_REQUEST),
        400,
        "not a valid WebSocket upgrade: missing Sec-WebSocket-Key header",
    ),
    (
        "POST",
        GOOD_REQUEST.replace(b"GET ", b"POST ", 1),
        405,
        "not a valid WebSocket upgrade: unsupported HTTP method: POST",
    ),
    (
        "missing Upgrade",
        _without("Upgrade:", GOOD_REQUEST),
        426,
        "not a valid WebSocket upgrade: missing Upgrade header",
    ),
    (
        "HTTP/1.0",
        GOOD_REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        505,
        "not a valid WebSocket upgrade: unsupported HTTP version: HTTP/1.0",
    ),
    (
        "long request line",
        b"GET /ocpp/" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n",
        414,
        "bad upgrade request: ",
    ),
    (
        "too many headers",
        GOOD_REQUEST[:-2] + b"".join(b"X-%d: 1\r\n" % n for n in range(200)) + b"\r\n",
        431,
        "bad upgrade request: ",
    ),
    # RFC 9112 §2.2: bytes that are not an HTTP request get a 400, then the close
    ("not HTTP", b"\x16\x03\x01 hello\r\n\r\n", 400, "bad upgrade request: "),
]


async def refused_with(data: bytes, status: int | None, **options: Any) -> HandshakeRejectedEvent:
    """Send ``data`` as the upgrade request; check the status on the wire and in the event."""
    events: list[HandshakeRejectedEvent] = []
    with trio.fail_after(TIMEOUT):
        async with serving(**options) as server:
            server.on("handshake_rejected", events.append)
            response = await raw_exchange(server.port, data)
            await wait_for(lambda: bool(events))
    assert status_of(response) == status
    [event] = events
    assert event.status == status
    return event


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [case[1:] for case in REFUSED_UPGRADES],
    ids=[case[0] for case in REFUSED_UPGRADES],
)
async def test_handshake_rejected_by_the_websocket_layer_reports_the_status_sent(
    data: bytes, status: int | None, reason: str
) -> None:
    event = await refused_with(data, status)
    assert event.reason.startswith(reason), event.reason


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (_without("Sec-WebSocket-Key", GOOD_REQUEST), 400),
        (GOOD_REQUEST.replace(b"Version: 13", b"Version: 8"), 426),
    ],
    ids=["missing key", "wrong version"],
)
async def test_trio_websocket_backend_reports_the_status_it_sent(data: bytes, status: int) -> None:
    event = await refused_with(data, status, websocket_backend="trio-websocket")
    assert event.reason == "not a valid WebSocket upgrade (refused by wsproto)"


# --- identity -------------------------------------------------------------------


async def test_percent_encoded_identity_is_decoded() -> None:
    with trio.fail_after(TIMEOUT):
        async with serving() as server, station(server, "CP/1 x"):
            assert list(server.clients) == ["CP/1 x"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ocpp/%ZZ", 400),
        ("/ocpp/CP%2", 400),
        ("/", 400),
        ("//", 400),
        ("/ocpp/%FF%FE", 400),  # not UTF-8
        ("/ocpp/CP%0A1", 400),  # control character
        ("/ocpp/" + "x" * 49, 400),
    ],
)
async def test_bad_identities_get_400(path: str, status: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving() as server:
            response = await raw_exchange(server.port, upgrade_request(path))
            assert status_of(response) == status
            async with station(server, "x" * 48):  # the longest allowed
                pass


async def test_identity_endpoint_and_query_reach_auth() -> None:
    requests: list[HandshakeRequest] = []

    def auth(request: HandshakeRequest) -> bool:
        requests.append(request)
        return True

    with trio.fail_after(TIMEOUT):
        async with serving(auth=auth) as server:
            response_stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with response_stream:
                await response_stream.send_all(
                    upgrade_request("/csms/v1/CP7/?site=north&x=", headers=(("X-Extra", "1"),))
                )
                data = await response_stream.receive_some()
                assert status_of(data) == 101
    (request,) = requests
    assert request.identity == "CP7"
    assert request.endpoint == "/csms/v1"
    assert dict(request.query) == {"site": "north", "x": ""}
    assert request.headers["x-extra"] == "1"
    assert request.protocols == ("ocpp1.6",)
    assert request.password is None


async def test_request_headers_are_kept_whole_and_fleet_wide_pairs_once() -> None:
    """Every station's headers stay on ``conn.handshake``; the pairs most stations
    send alike (host, user agent...) are one object for all connections."""
    with trio.fail_after(TIMEOUT):
        async with serving() as server:
            extra = {"headers": [("X-Fleet", "north"), ("Authorization", "Basic Q1AxOnNlY3JldA==")]}
            async with station(server, "CP1", **extra), station(server, "CP2", **extra):
                pairs = [
                    {pair[0]: pair for pair in server.clients[i].handshake.request_headers}
                    for i in ("CP1", "CP2")
                ]
    first, second = ({name: pair[1] for name, pair in p.items()} for p in pairs)
    for headers in (first, second):
        assert {"host", "upgrade", "connection", "sec-websocket-key", "x-fleet"} <= set(headers)
        assert headers["authorization"] == "<redacted>"
        assert headers["x-fleet"] == "north"
    assert first["sec-websocket-key"] != second["sec-websocket-key"]
    for name in ("host", "upgrade", "user-agent", "authorization"):
        assert pairs[0][name] is pairs[1][name]


# --- subprotocols ---------------------------------------------------------------


async def test_subprotocol_in_server_order_of_preference() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            serving() as server,
            station(server, protocols=["ocpp1.6", "ocpp2.0.1"]) as client,
        ):
            assert client.protocol == "ocpp2.0.1"
        async with (
            serving(protocols=["ocpp1.6", "ocpp2.0.1"]) as server,
            station(server, protocols=["ocpp2.0.1", "ocpp1.6"]) as client,
        ):
            assert client.protocol == "ocpp1.6"


async def test_no_subprotocol_in_common_completes_then_closes_1002() -> None:
    events: list[HandshakeRejectedEvent] = []
    with trio.fail_after(TIMEOUT):
        async with serving(close_timeout=0.5) as server:
            server.on("handshake_rejected", events.append)
            with pytest.raises(ProtocolNegotiationError):
                async with station(server, protocols=["ocpp1.5"]):
                    pass
            # Raw: 101 without Sec-WebSocket-Protocol, then a close frame 1002.
            for protocols in [(), ("ocpp1.2",)]:
                stream = await trio.open_tcp_stream("127.0.0.1", server.port)
                async with stream:
                    await stream.send_all(upgrade_request("/ocpp/RAW", protocols=protocols))
                    data = b""
                    while b"\x88" not in data.partition(b"\r\n\r\n")[2]:
                        chunk = await stream.receive_some()
                        assert chunk
                        data += chunk
                head, _, frame = data.partition(b"\r\n\r\n")
                assert status_of(head) == 101
                assert b"sec-websocket-protocol" not in head.lower()
                assert frame[0] == 0x88
                assert int.from_bytes(frame[2:4], "big") == 1002
            assert server.clients == {}
    assert events
    assert all(e.status is None and "subprotocol" in e.reason for e in events)


# --- duplicates and capacity ----------------------------------------------------


async def test_duplicate_identity_replaces_the_older_connection() -> None:
    handlers_cancelled: list[str] = []

    async def handler(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)
        try:
            await trio.sleep_forever()
        finally:
            handlers_cancelled.append(conn.handshake.path)

    with trio.fail_after(TIMEOUT):
        async with serving(handler) as server, station(server, "CP1", query={"n": "1"}) as old:
            old_conn = server.clients["CP1"]
            async with station(server, "CP1", query={"n": "2"}) as new:
                # The older connection is gone, its handler cancelled, before the newer opens.
                assert old_conn.state is ConnectionState.CLOSED
                assert handlers_cancelled == ["/ocpp/CP1?n=1"]
                await old.wait_closed()
                assert old.connection is not None
                assert old.connection.close_code == CLOSE_REPLACED
                assert old.connection.close_reason == "replaced by a new connection"
                assert server.clients["CP1"] is not old_conn
                assert server.clients["CP1"].handshake.path == "/ocpp/CP1?n=2"
                assert await new.call("Heartbeat", {}) == NOW


async def test_duplicate_identity_rejected_with_409() -> None:
    async def handler(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)

    with trio.fail_after(TIMEOUT):
        async with (
            serving(handler, duplicate_policy="reject") as server,
            station(server, "CP1") as first,
        ):
            assert await rejected_status(server, "CP1") == 409
            assert await first.call("Heartbeat", {}) == NOW
            async with station(server, "CP2"):
                assert set(server.clients) == {"CP1", "CP2"}


async def test_max_connections_closes_the_newest_stream_at_accept() -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(max_connections=1) as server:
            async with station(server, "CP1"):
                # Counted from accept: closed before TLS or HTTP, no answer.
                assert await raw_exchange(server.port, upgrade_request("/ocpp/CP2")) == b""
            await wait_for(lambda: not server.clients)
            async with station(server, "CP3"):
                pass


# --- handshake timeout ----------------------------------------------------------


async def test_handshake_timeout_drops_silent_and_half_requests() -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(handshake_timeout=0.5) as server:
            for partial_request in [b"", b"GET /ocpp/CP1 HTTP/1.1\r\nHost: x\r\n"]:
                start = trio.current_time()
                dropped: list[bytes] = []
                async with trio.open_nursery() as nursery:

                    async def slow_peer(
                        data: bytes = partial_request, out: list[bytes] = dropped
                    ) -> None:
                        out.append(await raw_exchange(server.port, data, timeout=3))

                    nursery.start_soon(slow_peer)
                    async with station(server, "FINE"):  # not held up by the silent peer
                        assert "FINE" in server.clients
                assert dropped == [b""]
                assert 0.4 < trio.current_time() - start < 2.5


async def test_slow_auth_times_out_with_503() -> None:
    async def auth(request: HandshakeRequest) -> bool:
        await trio.sleep(5)
        return True

    with trio.fail_after(TIMEOUT):
        async with serving(auth=auth, handshake_timeout=0.3) as server:
            assert await rejected_status(server, "CP1") == 503


# --- closing --------------------------------------------------------------------


@pytest.mark.parametrize("await_pending", [False, True])
async def test_server_close_closes_stations_with_1001(await_pending: bool) -> None:
    started = trio.Event()

    async def slow_heartbeat(ctx: Any) -> dict[str, Any]:
        started.set()
        await trio.sleep(0.3)
        return NOW

    async def handler(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", slow_heartbeat)

    outcome: list[object] = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server: OCPPServer = await nursery.start(
                partial(serve_ocpp, handler, 0, host="127.0.0.1", ping_interval=0)
            )
            async with station(server) as client:

                async def call() -> None:
                    try:
                        outcome.append(await client.call("Heartbeat", {}))
                    except Exception as exc:
                        outcome.append(exc)

                nursery.start_soon(call)
                await started.wait()
                await server.close(await_pending=await_pending)
                assert server.clients == {}
                await client.wait_closed()
                assert client.connection is not None
                assert client.connection.close_code == 1001
                await wait_for(lambda: bool(outcome))
            # serve_ocpp returns after close(): the nursery can exit.
    if await_pending:
        assert outcome == [NOW]
    else:
        assert isinstance(outcome[0], Exception)


async def test_closed_server_refuses_to_serve_again() -> None:
    server = OCPPServer()
    await server.close()
    with pytest.raises(RuntimeError):
        await server.listen(0, "127.0.0.1")


# --- auth -----------------------------------------------------------------------


async def test_auth_accept_session_is_visible_on_the_connection() -> None:
    async def auth(request: HandshakeRequest) -> AuthAccept:
        await trio.lowlevel.checkpoint()
        return AuthAccept(session={"tenant": "t1", "who": request.identity}, protocol="ocpp1.6")

    with trio.fail_after(TIMEOUT):
        async with (
            serving(auth=auth) as server,
            station(server, protocols=["ocpp2.0.1", "ocpp1.6"]) as client,
        ):
            assert client.protocol == "ocpp1.6"  # the callback's choice wins
            assert server.clients["CP001"].session == {"tenant": "t1", "who": "CP001"}


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (AuthReject(404), 404),
        (AuthReject(403), 403),
        (False, 401),
        (AuthReject(200), 500),  # not an error status: a bug in the callback
        (AuthAccept(protocol="ocpp9"), 500),  # not offered
        ("yes", 500),
    ],
)
async def test_auth_reject_statuses(result: object, status: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(auth=lambda request: result) as server:
            assert await rejected_status(server, "CP1") == status
            assert server.clients == {}


async def test_auth_raising_answers_500_and_leaks_nothing() -> None:
    def auth(request: HandshakeRequest) -> bool:
        raise KeyError("database password is hunter2")

    with trio.fail_after(TIMEOUT):
        async with serving(auth=auth) as server:
            response = await raw_exchange(server.port, upgrade_request("/ocpp/CP1"))
            assert status_of(response) == 500
            assert b"hunter2" not in response
            assert b"KeyError" not in response
            assert response.endswith(b"\r\n\r\n")  # no body
            assert await rejected_status(server, "CP2") == 500


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="protocols"):
        OCPPServer(protocols=[])
    with pytest.raises(ValueError, match="max_connections"):
        OCPPServer(max_connections=0)
    with pytest.raises(ValueError, match="handshake_timeout"):
        OCPPServer(handshake_timeout=0)
    with pytest.raises(ValueError, match="duplicate_policy"):
        OCPPServer(duplicate_policy="ignore")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        OCPPServer(no_such_option=1)
    assert OCPPServer(call_timeout=3).options.call_timeout == 3
    assert OCPPServer().max_connections == math.inf


async def test_stations_can_run_in_a_handler_nursery_of_ours() -> None:
    server = OCPPServer(ping_interval=0)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as outer, trio.open_nursery() as nursery:
            await nursery.start(partial(server.listen, 0, "127.0.0.1", handler_nursery=outer))
            async with station(server):
                assert "CP001" in server.clients
                await server.close()
            assert server.clients == {}
