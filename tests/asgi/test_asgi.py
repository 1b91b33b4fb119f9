"""ocpp_trio.asgi under Hypercorn's Trio worker, in-process on port 0, driven by our client.

The example application (``examples/starlette_hypercorn.py``: Starlette, a
REST route that calls a station, the OCPP endpoint mounted at ``/ocpp``) is
the subject of most tests; a few build their own app for profiles and
policies.  Every test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from hypercorn.middleware import ProxyFixMiddleware
from starlette.applications import Starlette
from starlette.routing import Mount

from ocpp_trio import (
    CallErrorReceived,
    HandshakeRejected,
    HandshakeRequest,
    OCPPClient,
    OCPPConnection,
    OCPPServer,
    ProtocolNegotiationError,
    basic_auth_header,
    check_password,
    open_ocpp_client,
)
from ocpp_trio.asgi import OCPPASGIApp
from ocpp_trio.events import CloseEvent
from ocpp_trio.server import HandshakeRejectedEvent

from ..conftest import status_of, upgrade_request
from ..test_ws_hostile import BINARY, close_code_of, frame
from .helpers import (
    http_request,
    hypercorn,
    load_example,
    serve_with,
    upgrade_headers,
)

TIMEOUT = 10
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
CONFIG = {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]}


def station(port: int, identity: str = "CP001", **options: Any) -> Any:
    options.setdefault("protocols", ["ocpp1.6"])
    options.setdefault("reconnect", False)
    options.setdefault("ping_interval", 0)
    options.setdefault("connect_timeout", 5)
    return open_ocpp_client(f"ws://127.0.0.1:{port}/ocpp", identity=identity, **options)


def closes(client: OCPPClient) -> list[CloseEvent]:
    seen: list[CloseEvent] = []
    client.on("close", seen.append)
    return seen


@asynccontextmanager
async def example() -> AsyncIterator[tuple[Any, int, trio.Event]]:
    """The example app served as its ``run()`` serves it; (module, port, stop)."""
    module = load_example("starlette_hypercorn")
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        port = await serve_with(module.run, nursery, stop)
        try:
            yield module, port, stop
        finally:
            stop.set()


async def wait_until(predicate: Any) -> None:
    while not predicate():  # noqa: ASYNC110 - the server's state, no event to wait on
        await trio.sleep(0.01)


# --- the example: a REST route next to the OCPP endpoint ---------------------------


async def test_rest_route_calls_a_connected_station() -> None:
    with trio.fail_after(TIMEOUT):
        async with example() as (ex, port, _), station(port) as client:
            asked: list[dict[str, Any]] = []

            def get_configuration(ctx: Any) -> dict[str, Any]:
                asked.append(dict(ctx.params))
                return CONFIG

            client.handle("GetConfiguration", get_configuration)
            boot = await client.call("BootNotification", BOOT)
            assert boot["status"] == "Accepted"
            assert (await http_request(port, "/stations")).json() == ["CP001"]
            answer = await http_request(port, "/stations/CP001/config?key=HeartbeatInterval")
            assert answer.status == 200
            assert answer.json() == CONFIG
            assert asked == [{"key": ["HeartbeatInterval"]}]
            offline = await http_request(port, "/stations/CP002/config")
            assert offline.status == 404
            conn = ex.server.clients["CP001"]
            assert conn.handshake.endpoint == "/ocpp"
            assert conn.handshake.remote[0] == "127.0.0.1"
            assert conn.options.ping_interval == 0  # ASGI has no pings: Hypercorn's keep it alive


async def test_a_station_error_reaches_the_rest_caller() -> None:
    with trio.fail_after(TIMEOUT):
        async with example() as (_, port, _), station(port) as client:
            await client.call("BootNotification", BOOT)
            answer = await http_request(port, "/stations/CP001/config")  # no handler
            assert answer.status == 502
            assert answer.json()["error"] == "NotSupported"


async def test_http_request_to_the_ocpp_path_gets_426() -> None:
    with trio.fail_after(TIMEOUT):
        async with example() as (_, port, _):
            answer = await http_request(port, "/ocpp/CP001")
    assert answer.status == 426
    assert answer.headers["upgrade"] == "websocket"
    assert b"OCPP-J WebSocket endpoint" in answer.body


async def test_unknown_station_is_refused_by_auth() -> None:
    with trio.fail_after(TIMEOUT):
        async with example() as (ex, port, _):
            refused: list[HandshakeRejectedEvent] = []
            ex.server.on("handshake_rejected", refused.append)
            with pytest.raises(HandshakeRejected) as info:
                async with station(port, "INTRUDER"):
                    pass
            assert info.value.status_code == 404
            assert [(e.identity, e.status) for e in refused] == [("INTRUDER", 404)]
            raw = await http_request(port, "/ocpp/INTRUDER", headers=upgrade_headers("ocpp1.6"))
            assert raw.status == 404
            assert raw.body == b"404 Not Found\n"  # no reason text is sent
            assert ex.server.clients == {}


async def test_strict_mode_both_ways() -> None:
    with trio.fail_after(TIMEOUT):
        async with example() as (_, port, _), station(port) as client:
            with pytest.raises(CallErrorReceived) as info:
                await client.call("BootNotification", {**BOOT, "chargePointVendor": 5})
            assert info.value.code == "TypeConstraintViolation"
            too_long = "K" * 51  # CiString50Type
            answer = await http_request(port, f"/stations/CP001/config?key={too_long}")
            assert answer.status == 400  # never sent: our side validated it first


async def test_clean_shutdown_closes_stations_with_1001() -> None:
    with trio.fail_after(TIMEOUT):
        module = load_example("starlette_hypercorn")
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            port = await serve_with(module.run, nursery, stop)
            async with station(port) as client:
                seen = closes(client)
                await client.call("BootNotification", BOOT)
                started = trio.current_time()
                stop.set()
                await client.wait_closed()
        assert trio.current_time() - started < 3  # not Hypercorn's graceful_timeout
    assert [(e.code, e.reason, e.by_peer) for e in seen] == [(1001, "server shutting down", True)]
    assert module.server.clients == {}


# --- apps of their own: profiles, policies, what Hypercorn reports -----------------


def app_of(server: OCPPServer, **options: Any) -> tuple[OCPPASGIApp, Starlette]:
    ocpp = OCPPASGIApp(server, **options)
    return ocpp, Starlette(routes=[Mount("/ocpp", app=ocpp)], lifespan=ocpp.lifespan)


async def test_profile_1_basic_auth_and_the_401_challenge() -> None:
    def auth(request: HandshakeRequest) -> bool:
        return request.password is not None and check_password(request.password, b"s3cret-pass")

    server = OCPPServer(protocols=["ocpp1.6"], security_profile=1, auth=auth)
    _, app = app_of(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running:
            port = running.port
            bare = await http_request(port, "/ocpp/CP001", headers=upgrade_headers("ocpp1.6"))
            assert bare.status == 401
            assert bare.headers["www-authenticate"] == 'Basic realm="OCPP"'
            with pytest.raises(HandshakeRejected) as info:
                async with station(port, password=b"wrong-password"):
                    pass
            assert info.value.status_code == 401
            async with station(port, password=b"s3cret-pass") as client:
                conn = server.clients["CP001"]
                assert dict(conn.handshake.request_headers)["authorization"] == "<redacted>"
                assert client.protocol == "ocpp1.6"
            header = basic_auth_header("CP001", b"s3cret-pass")
            ok = await http_request(
                port, "/ocpp/CP001", headers=upgrade_headers("ocpp1.6", extra=(header,))
            )
            assert ok.status == 101
            assert ok.headers["sec-websocket-protocol"] == "ocpp1.6"


async def test_profile_2_needs_a_tls_scope() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server = OCPPServer(security_profile=2, ssl_context=context, auth=lambda r: True)
    _, app = app_of(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running:
            answer = await http_request(
                running.port, "/ocpp/CP001", headers=upgrade_headers("ocpp1.6")
            )
    assert answer.status == 403


def test_profile_3_needs_a_trusted_certificate_source() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.verify_mode = ssl.CERT_REQUIRED
    server = OCPPServer(security_profile=3, ssl_context=context)
    with pytest.raises(ValueError, match="profile 3"):
        OCPPASGIApp(server)


async def test_profile_3_from_a_trusted_proxy_header() -> None:
    # A TLS proxy verified the certificate and passes it on; the app turns
    # the header into the getpeercert() dict (here: a fixed one per station).
    certs = {
        "cp001-cert": {
            "subject": ((("commonName", "CP001"),), (("organizationName", "ACME"),)),
            "issuer": ((("commonName", "Test CA"),),),
            "serialNumber": "0A",
            "notBefore": "May  1 00:00:00 2024 GMT",
            "notAfter": "May  1 00:00:00 2034 GMT",
        }
    }
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.verify_mode = ssl.CERT_REQUIRED
    seen: list[HandshakeRequest] = []

    def auth(request: HandshakeRequest) -> bool:
        seen.append(request)
        cert = request.certificate
        return cert is not None and cert.subject_values("commonName") == (request.identity,)

    server = OCPPServer(security_profile=3, ssl_context=context, auth=auth)
    ocpp = OCPPASGIApp(server, client_certificate=lambda h: certs.get(h.get("x-client-cert", "")))
    proxied = (("x-forwarded-proto", "https"),)
    app = ProxyFixMiddleware(ocpp, mode="legacy", trusted_hops=1)  # type: ignore[arg-type]
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running:
            port = running.port
            ok = await http_request(
                port,
                "/ocpp/CP001",
                headers=upgrade_headers(
                    "ocpp1.6", extra=(*proxied, ("x-client-cert", "cp001-cert"))
                ),
            )
            assert ok.status == 101
            assert seen[0].certificate is not None
            assert seen[0].certificate.serial_number == 10
            no_cert = await http_request(
                port, "/ocpp/CP001", headers=upgrade_headers("ocpp1.6", extra=proxied)
            )
            assert no_cert.status == 401
            wrong = await http_request(
                port,
                "/ocpp/CP002",
                headers=upgrade_headers(
                    "ocpp1.6", extra=(*proxied, ("x-client-cert", "cp001-cert"))
                ),
            )
            assert wrong.status == 401
            plain = await http_request(
                port,
                "/ocpp/CP001",
                headers=upgrade_headers("ocpp1.6", extra=(("x-client-cert", "cp001-cert"),)),
            )
            assert plain.status == 403  # not TLS: the proxy did not say https


async def test_duplicate_replace_closes_the_older_with_4000() -> None:
    server = OCPPServer(protocols=["ocpp1.6"])
    _, app = app_of(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running, station(running.port) as first:
            seen = closes(first)
            async with station(running.port) as second:
                await first.wait_closed()
                assert [(e.code, e.reason) for e in seen] == [
                    (4000, "replaced by a new connection")
                ]
                assert server.clients["CP001"].state.name == "OPEN"
                assert second.protocol == "ocpp1.6"


async def test_duplicate_reject_answers_409() -> None:
    server = OCPPServer(protocols=["ocpp1.6"], duplicate_policy="reject")
    _, app = app_of(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running, station(running.port):
            with pytest.raises(HandshakeRejected) as info:
                async with station(running.port):
                    pass
            assert info.value.status_code == 409


async def test_no_common_subprotocol_is_accepted_then_closed_1002() -> None:
    server = OCPPServer(protocols=["ocpp2.0.1"])
    _, app = app_of(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running:
            with pytest.raises(ProtocolNegotiationError):
                async with station(running.port, protocols=["ocpp1.6"]):
                    pass


async def test_the_station_close_code_arrives_as_1006_under_hypercorn() -> None:
    # Hypercorn reports every close by the peer as 1006 (see ocpp_trio.asgi).
    closed: list[CloseEvent] = []
    connected = trio.Event()

    async def handler(conn: OCPPConnection) -> None:
        conn.on("close", closed.append)
        connected.set()

    server = OCPPServer(handler, protocols=["ocpp1.6"])
    _, app = app_of(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running:
            async with station(running.port) as client:
                await connected.wait()
                await client.close(1000, "bye")
            await wait_until(lambda: closed)
    assert [(e.code, e.by_peer) for e in closed] == [(1006, True)]


async def test_a_crashing_handler_closes_with_1011_and_the_app_serves_on() -> None:
    async def handler(conn: OCPPConnection) -> None:
        if conn.identity == "BAD":
            raise RuntimeError("boom")

    server = OCPPServer(handler, protocols=["ocpp1.6"])
    _, app = app_of(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running:
            async with station(running.port, "BAD") as bad:
                seen = closes(bad)
                await bad.wait_closed()
            assert [e.code for e in seen] == [1011]
            async with station(running.port, "GOOD") as good:
                assert good.protocol == "ocpp1.6"


async def test_the_app_alone_serves_lifespan_and_rejects_a_second_run() -> None:
    server = OCPPServer(protocols=["ocpp1.6"])
    ocpp = OCPPASGIApp(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(ocpp) as running, station(running.port) as client:
            await wait_until(lambda: "CP001" in server.clients)
            with pytest.raises(RuntimeError, match="already serving"):
                async with ocpp.running():
                    pass
            assert client.protocol == "ocpp1.6"
    assert server.clients == {}


def test_the_app_refuses_to_run_under_asyncio() -> None:
    ocpp = OCPPASGIApp(OCPPServer())

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        raise AssertionError("nothing is sent")

    with pytest.raises(RuntimeError, match="only under Trio"):
        asyncio.run(ocpp({"type": "websocket"}, receive, send))


async def test_max_message_size_is_enforced_with_1009() -> None:
    closed: list[CloseEvent] = []
    connected = trio.Event()

    async def handler(conn: OCPPConnection) -> None:
        conn.on("close", closed.append)
        connected.set()

    server = OCPPServer(handler, protocols=["ocpp1.6"], max_message_size=1000)
    _, app = app_of(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running, station(running.port) as client:
            seen = closes(client)
            await connected.wait()
            await client.send_raw('[2,"1","DataTransfer",{"vendorId":"' + "x" * 2000 + '"}]')
            await client.wait_closed()
            await wait_until(lambda: closed)
    assert [e.code for e in seen] == [1009]
    assert [e.code for e in closed] == [1009]


async def test_a_binary_message_closes_with_1003() -> None:
    closed: list[CloseEvent] = []

    async def handler(conn: OCPPConnection) -> None:
        conn.on("close", closed.append)

    server = OCPPServer(handler, protocols=["ocpp1.6"])
    _, app = app_of(server)
    received = bytearray()
    with trio.fail_after(TIMEOUT):
        async with (
            hypercorn(app) as running,
            await trio.open_tcp_stream("127.0.0.1", running.port) as stream,
        ):
            await stream.send_all(upgrade_request("/ocpp/BIN1"))
            while b"\r\n\r\n" not in received:
                received += await stream.receive_some()
            assert status_of(bytes(received)) == 101
            await stream.send_all(frame(b'[2,"1","Heartbeat",{}]', BINARY))
            while close_code_of(bytes(received).partition(b"\r\n\r\n")[2]) is None:
                received += await stream.receive_some()
            await stream.send_all(frame((1003).to_bytes(2, "big"), 0x8))  # the close reply
            await wait_until(lambda: closed)
    assert close_code_of(bytes(received).partition(b"\r\n\r\n")[2]) == 1003
    assert [e.code for e in closed] == [1003]
