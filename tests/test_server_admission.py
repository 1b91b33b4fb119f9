"""Server admission under hostile input: one station must not hurt the others.

Over real loopback sockets, with our own client as the honest station:

- profile 3: a certificate that names another station is refused (401),
  unless ``certificate_identity_check=False`` hands the decision to ``auth``;
- every check (the upgrade, the identity, credentials, ``auth``) runs before
  the identity is claimed, so no bad request evicts the station's open
  connection;
- ``max_connections`` counts a stream from its accept and
  ``max_pending_handshakes`` bounds streams still in their handshake: at
  either bound, a new stream displaces the oldest one still silent (TLS or
  the upgrade request not complete), or with none silent is closed at once,
  before TLS, with nothing read; idle sockets cannot lock stations out;
- identities are printable ASCII and compare without regard to ASCII case,
  for the station table, the duplicate policy and the cluster;
- every function that takes a security profile takes its number too.
"""

from __future__ import annotations

import ssl
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio
import trio.testing
import trustme

from ocpp_trio import (
    HandshakeRejected,
    OCPPClient,
    OCPPConnection,
    SecurityProfile,
    basic_auth_header,
    check_password,
    client_ssl_context,
    open_ocpp_client,
    server_ssl_context,
)
from ocpp_trio._server.admission import Refusal, certificate_names, check_upgrade, station_key
from ocpp_trio._server.stream import Upgrade
from ocpp_trio.cluster import LocalAdapter, LocalHub
from ocpp_trio.security import certificate_info
from ocpp_trio.server import (
    CLOSE_REPLACED,
    AuthReject,
    HandshakeRejectedEvent,
    HandshakeRequest,
    OCPPServer,
)

from .conftest import raw_exchange, status_of, upgrade_request
from .helpers import serving_with_refusals

TIMEOUT = 10.0
NOW = {"currentTime": "2024-01-01T00:00:00Z"}
SECRET = "correct-horse-battery-staple"


def _heartbeat(conn: OCPPConnection) -> None:
    conn.handle("Heartbeat", lambda ctx: NOW)


async def _on_station(conn: OCPPConnection) -> None:
    _heartbeat(conn)


def serving(
    **options: Any,
) -> AbstractAsyncContextManager[tuple[OCPPServer, list[HandshakeRejectedEvent]]]:
    """``serve_ocpp`` on 127.0.0.1 port 0 answering Heartbeat; its rejections."""
    return serving_with_refusals(_on_station, **options)


def station(
    server: OCPPServer, identity: str, *, tls: bool = False, **options: Any
) -> AbstractAsyncContextManager[OCPPClient]:
    options.setdefault("reconnect", False)
    options.setdefault("ping_interval", 0)
    options.setdefault("connect_timeout", 5)
    options.setdefault("protocols", ["ocpp1.6"])
    scheme = "wss" if tls else "ws"
    return open_ocpp_client(
        f"{scheme}://127.0.0.1:{server.port}/ocpp", identity=identity, **options
    )


async def refused_status(server: OCPPServer, identity: str, **options: Any) -> int:
    with pytest.raises(HandshakeRejected) as info:
        async with station(server, identity, **options):
            pass
    return info.value.status_code


async def upgraded(port: int, data: bytes) -> int | None:
    """Send an upgrade request; the status of the answer (then hang up)."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(data)
        received = bytearray()
        with trio.fail_after(TIMEOUT):
            while b"\r\n\r\n" not in received and (chunk := await stream.receive_some()):
                received += chunk
    return status_of(bytes(received))


async def still_connected(server: OCPPServer, client: OCPPClient, conn: OCPPConnection) -> None:
    """The station's connection is the same one, open, and answers."""
    assert server.clients[conn.identity] is conn
    assert await client.call("Heartbeat", {}) == NOW


# --- profile 3: the certificate names the station -----------------------------------------


@pytest.fixture(scope="module")
def cp002_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("CP002", common_name="CP002", organization_name="Example CSO")


@pytest.fixture(scope="module")
def san_only_cert(ca: trustme.CA) -> trustme.LeafCert:
    """CN is a serial that is not the identity; the identity is a DNS SAN."""
    return ca.issue_cert("cp-san.example", common_name="SN-0042")


def _mtls_server(ca: trustme.CA, cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = server_ssl_context(None, cadata=ca.cert_pem.bytes().decode("ascii"), profile=3)
    cert.configure_cert(ctx)
    return ctx


def _mtls_client(ca: trustme.CA, cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = client_ssl_context(cadata=ca.cert_pem.bytes().decode("ascii"))
    cert.configure_cert(ctx)
    return ctx


async def test_profile_3_refuses_a_certificate_that_names_another_station(
    ca: trustme.CA,
    server_cert: trustme.LeafCert,
    station_cert: trustme.LeafCert,
    cp002_cert: trustme.LeafCert,
) -> None:
    mtls: dict[str, Any] = {"tls": True, "security_profile": 3}
    as_cp001 = _mtls_client(ca, station_cert)  # CN=CP001
    with trio.fail_after(TIMEOUT):
        async with serving(security_profile=3, ssl_context=_mtls_server(ca, server_cert)) as (
            server,
            rejected,
        ):
            async with station(
                server, "CP002", ssl_context=_mtls_client(ca, cp002_cert), **mtls
            ) as real:
                conn = server.clients["CP002"]
                for _ in range(3):
                    assert (
                        await refused_status(server, "CP002", ssl_context=as_cp001, **mtls) == 401
                    )
                await still_connected(server, real, conn)
                assert conn.close_code is None
            # Its own identity, in any case, it may use.
            async with station(server, "cp001", ssl_context=as_cp001, **mtls):
                assert list(server.clients) == ["cp001"]
    reasons = {e.reason for e in rejected if e.status == 401}
    assert reasons == {"the TLS client certificate does not name the station"}


async def test_profile_3_a_dns_san_names_the_station(
    ca: trustme.CA, server_cert: trustme.LeafCert, san_only_cert: trustme.LeafCert
) -> None:
    mtls: dict[str, Any] = {"tls": True, "security_profile": 3}
    client_ctx = _mtls_client(ca, san_only_cert)
    with trio.fail_after(TIMEOUT):
        async with serving(security_profile=3, ssl_context=_mtls_server(ca, server_cert)) as (
            server,
            _,
        ):
            async with station(server, "CP-SAN.example", ssl_context=client_ctx, **mtls):
                assert "cp-san.example" in server.clients
            assert await refused_status(server, "SN-0043", ssl_context=client_ctx, **mtls) == 401


async def test_profile_3_identity_check_can_be_left_to_auth(
    ca: trustme.CA, server_cert: trustme.LeafCert, station_cert: trustme.LeafCert
) -> None:
    seen: list[tuple[str, str | None]] = []

    def auth(request: HandshakeRequest) -> bool:
        assert request.certificate is not None
        seen.append((request.identity, request.certificate.common_name))
        return request.identity.startswith("CP")  # e.g. a gateway certificate for a fleet

    mtls: dict[str, Any] = {"tls": True, "security_profile": 3}
    as_cp001 = _mtls_client(ca, station_cert)
    with trio.fail_after(TIMEOUT):
        async with serving(
            security_profile=3,
            ssl_context=_mtls_server(ca, server_cert),
            certificate_identity_check=False,
            auth=auth,
        ) as (server, _):
            assert server.certificate_identity_check is False
            async with station(server, "CP777", ssl_context=as_cp001, **mtls):
                assert "CP777" in server.clients
            assert await refused_status(server, "XX1", ssl_context=as_cp001, **mtls) == 401
    assert seen == [("CP777", "CP001"), ("XX1", "CP001")]


def test_leaving_the_identity_check_to_auth_needs_an_auth(
    ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    ctx = _mtls_server(ca, server_cert)
    with pytest.raises(ValueError, match="certificate_identity_check=False"):
        OCPPServer(security_profile=3, ssl_context=ctx, certificate_identity_check=False)
    assert OCPPServer(security_profile=3, ssl_context=ctx).certificate_identity_check is True


def test_certificate_names_compares_cn_and_dns_sans_without_case() -> None:
    peercert: dict[str, Any] = {
        "subject": ((("commonName", "CP001"),), (("organizationName", "CSO"),)),
        "issuer": ((("commonName", "CA"),),),
        "serialNumber": "0A",
        "subjectAltName": (("DNS", "alias.example"), ("IP Address", "10.0.0.9")),
        "notBefore": "Jan  1 00:00:00 2024 GMT",
        "notAfter": "Jan  1 00:00:00 2034 GMT",
    }
    info = certificate_info(peercert)
    assert certificate_names(info, "CP001")
    assert certificate_names(info, "cp001")
    assert certificate_names(info, "ALIAS.example")
    assert not certificate_names(info, "10.0.0.9")  # only DNS names name a station
    assert not certificate_names(info, "CP0012")
    assert not certificate_names(info, "CP00")
    two_cns = dict(peercert, subject=((("commonName", "CP001"),), (("commonName", "CP002"),)))
    assert not certificate_names(certificate_info(two_cns), "CP001")


# --- every check before the claim -----------------------------------------------------------


def _without(name: bytes, request: bytes) -> bytes:
    return b"".join(line for line in request.splitlines(keepends=True) if not line.startswith(name))


_AUTH = basic_auth_header("CP1", SECRET)
_GOOD = upgrade_request("/ocpp/CP1", headers=(_AUTH,))
#: Requests carrying the station's own identity and credentials, each wrong in
#: one way: (what is wrong, bytes, the status it gets).
_BAD_REQUESTS = [
    ("GET without Upgrade", _without(b"Upgrade:", _without(b"Connection:", _GOOD)), 426),
    ("no Upgrade header", _without(b"Upgrade:", _GOOD), 426),
    ("no Connection header", _without(b"Connection:", _GOOD), 426),
    ("no Sec-WebSocket-Version", _without(b"Sec-WebSocket-Version", _GOOD), 400),
    ("Sec-WebSocket-Version 8", _GOOD.replace(b"Version: 13", b"Version: 8"), 400),
    ("no Sec-WebSocket-Key", _without(b"Sec-WebSocket-Key", _GOOD), 400),
    ("short Sec-WebSocket-Key", _GOOD.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ="), 400),
    ("malformed subprotocols", _GOOD.replace(b"Protocol: ocpp1.6", b"Protocol: ocpp1.6 x"), 400),
    ("wrong password", upgrade_request("/ocpp/CP1", headers=(basic_auth_header("CP1", "x"),)), 401),
    ("refused by auth", upgrade_request("/ocpp/CP1", headers=(_AUTH, ("X-Evil", "1"))), 403),
]
#: Wrong in the request line: the runner reads it only when the request tells it
#: (``ServerHandshake.method``/``http_version``).
_BAD_REQUEST_LINES = [
    ("lower-case get", _GOOD.replace(b"GET ", b"get ", 1), 405),
    ("POST", _GOOD.replace(b"GET ", b"POST ", 1), 405),
    ("HTTP/1.0", _GOOD.replace(b"HTTP/1.1", b"HTTP/1.0", 1), 505),
]


def _password_auth(request: HandshakeRequest) -> bool | AuthReject:
    if "x-evil" in request.headers:
        return AuthReject(403)
    return request.password is not None and check_password(SECRET, request.password)


@pytest.mark.parametrize(
    ("data", "status"),
    [case[1:] for case in _BAD_REQUESTS + _BAD_REQUEST_LINES],
    ids=[case[0] for case in _BAD_REQUESTS + _BAD_REQUEST_LINES],
)
async def test_a_bad_request_never_evicts_the_open_connection(data: bytes, status: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            serving(security_profile=1, auth=_password_auth) as (server, rejected),
            station(server, "CP1", security_profile=1, password=SECRET) as client,
        ):
            conn = server.clients["CP1"]
            assert status_of(await raw_exchange(server.port, data)) == status
            await still_connected(server, client, conn)
            assert conn.close_code is None
            # A good request still replaces it (duplicate_policy="replace" is intact).
            assert await upgraded(server.port, _GOOD) == 101
            with trio.fail_after(TIMEOUT):
                await conn.wait_closed()
            assert conn.close_code == CLOSE_REPLACED
    assert [e.status for e in rejected] == [status]


class _LineTellingRequest:
    """An upgrade request as a front end that tells its request line hands it over."""

    def __init__(self, method: str, http_version: str = "HTTP/1.1") -> None:
        self.method = method
        self.http_version = http_version
        self.path = "/ocpp/CP1"
        self.headers = [
            (b"Host", b"127.0.0.1"),
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"Sec-WebSocket-Version", b"13"),
            (b"Sec-WebSocket-Protocol", b"ocpp1.6"),
        ]
        self.proposed_subprotocols = ("ocpp1.6",)
        self.answers: list[int] = []

    async def reject(self, status: int, /, *, extra_headers: Any = ()) -> None:
        self.answers.append(status)


@pytest.mark.parametrize(
    ("method", "http_version", "status"),
    [("get", "HTTP/1.1", 405), ("POST", "HTTP/1.1", 405), ("GET", "HTTP/1.0", 505)],
)
async def test_a_bad_request_line_is_refused_before_the_claim(
    method: str, http_version: str, status: int
) -> None:
    async def accept(protocol: str | None) -> None:
        raise AssertionError("a bad request line must not be accepted")

    async def cleanup() -> None:
        pass

    request = _LineTellingRequest(method, http_version)
    upgrade = Upgrade(peercert=None, accept=accept, deadline=trio.current_time() + TIMEOUT)
    with trio.fail_after(TIMEOUT):
        async with serving() as (server, rejected), station(server, "CP1") as client:
            conn = server.clients["CP1"]
            await server.serve_upgrade(request, upgrade, remote=None, cleanup=cleanup)
            assert request.answers == [status]
            await still_connected(server, client, conn)
    assert [e.status for e in rejected] == [status]


def test_check_upgrade_mirrors_websockets() -> None:
    good = {
        "connection": "keep-alive, Upgrade",
        "upgrade": "WebSocket",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "ocpp1.6, ocpp2.0.1",
        "sec-websocket-extensions": "permessage-deflate; client_max_window_bits",
    }
    check_upgrade(good)

    def status(headers: dict[str, str], **line: Any) -> tuple[int, tuple[tuple[str, str], ...]]:
        with pytest.raises(Refusal) as info:
            check_upgrade(headers, **line)
        return info.value.status, info.value.headers

    assert status(good, method="get") == (405, (("Allow", "GET"),))
    assert status(good, http_version="HTTP/1.0")[0] == 505
    assert status(dict(good, upgrade="h2c")) == (426, (("Upgrade", "websocket"),))
    assert status(dict(good, upgrade="websocket, h2c"))[0] == 426
    assert status(dict(good, connection="close"))[0] == 426
    assert status(dict(good, **{"sec-websocket-version": "13, 13"})) == (
        400,
        (("Sec-WebSocket-Version", "13"),),
    )
    assert status(dict(good, **{"sec-websocket-key": "%%%"}))[0] == 400
    assert status(dict(good, **{"sec-websocket-extensions": "permessage-deflate;;"}))[0] == 400
    # Extensions are not read when the server does not negotiate them (as websockets).
    check_upgrade(dict(good, **{"sec-websocket-extensions": ";;"}), extensions=False)


# --- connections counted from accept -----------------------------------------------------


async def _idle(port: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await trio.testing.wait_all_tasks_blocked()  # the server has taken it in
    return stream


async def _closed_at_once(port: int) -> bool:
    """Connect and send nothing: True when the server closes at once (EOF or reset)."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        with trio.move_on_after(2.0):
            try:
                return await stream.receive_some() == b""
            except trio.BrokenResourceError:
                return True
    return False


async def _displaced(stream: trio.SocketStream) -> bool:
    """True when the server has closed this stream (EOF or reset), within a bound."""
    with trio.move_on_after(2.0):
        try:
            while await stream.receive_some():  # a silent TLS peer got a ServerHello
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


async def test_max_connections_counts_streams_from_accept() -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(max_connections=2, handshake_timeout=30) as (server, rejected):
            first = await _idle(server.port)
            second = await _idle(server.port)
            # Full of silent sockets: a station takes the place of the oldest.
            async with station(server, "CP1") as cp1:
                assert await _displaced(first)
                async with station(server, "CP2"):
                    assert await _displaced(second)
                    # Full of stations: nothing is displaced, a newcomer is
                    # closed at once (not after the handshake timeout).
                    start = trio.current_time()
                    assert await _closed_at_once(server.port)
                    assert trio.current_time() - start < 1.0
                    assert (
                        status_of(await raw_exchange(server.port, upgrade_request("/ocpp/CP3")))
                        is None
                    )
                    assert await cp1.call("Heartbeat", {}) == NOW
                async with station(server, "CP3"):
                    assert set(server.clients) == {"CP1", "CP3"}
            await first.aclose()
            await second.aclose()
    reasons = [e.reason for e in rejected if e.identity is None and e.status is None]
    displaced = "max_connections=2 reached; closed, still silent, to make room for a new stream"
    assert reasons.count(displaced) == 2
    assert reasons.count("max_connections=2 reached; closed at accept") == 2


async def test_idle_sockets_cannot_lock_stations_out() -> None:
    """The attack: idle sockets reopened as fast as they are dropped, against a full server."""
    with trio.fail_after(TIMEOUT):
        async with serving(max_connections=10, handshake_timeout=30) as (server, _):
            reopened = 0

            async def attacker() -> None:
                nonlocal reopened
                while True:  # until cancelled
                    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
                        with trio.move_on_after(30):
                            try:
                                await stream.receive_some()
                            except trio.BrokenResourceError:
                                pass
                    reopened += 1

            async with trio.open_nursery() as attackers:
                for _ in range(10):
                    attackers.start_soon(attacker)
                await trio.testing.wait_all_tasks_blocked()
                for n in range(5):
                    async with station(server, f"CP{n}") as client:
                        assert await client.call("Heartbeat", {}) == NOW
                attackers.cancel_scope.cancel()
            assert reopened >= 5  # each station displaced one of them


async def test_a_request_being_decided_is_not_displaced() -> None:
    release = trio.Event()

    async def slow_auth(request: HandshakeRequest) -> bool:
        await release.wait()
        return True

    with trio.fail_after(TIMEOUT):
        async with (
            serving(max_pending_handshakes=1, handshake_timeout=30, auth=slow_auth) as (
                server,
                rejected,
            ),
            trio.open_nursery() as nursery,
        ):
            connected = trio.Event()

            async def slow_station() -> None:
                async with station(server, "SLOW"):
                    connected.set()

            nursery.start_soon(slow_station)
            await trio.testing.wait_all_tasks_blocked()  # SLOW's request is being decided
            assert await _closed_at_once(server.port)
            release.set()
            await connected.wait()
    assert "max_pending_handshakes=1 reached; closed at accept" in {e.reason for e in rejected}


def _profile_2(
    ca: trustme.CA, server_cert: trustme.LeafCert
) -> tuple[ssl.SSLContext, dict[str, Any]]:
    """A profile-2 server context, and the options of a station that connects to it."""
    ctx = server_ssl_context(None, profile=2)
    server_cert.configure_cert(ctx)
    tls: dict[str, Any] = {
        "tls": True,
        "security_profile": 2,
        "password": SECRET,
        "ssl_context": client_ssl_context(cadata=ca.cert_pem.bytes().decode("ascii")),
    }
    return ctx, tls


async def test_max_connections_closes_before_tls(
    ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    ctx, tls = _profile_2(ca, server_cert)
    with trio.fail_after(TIMEOUT):
        async with (
            serving(
                max_connections=1, ssl_context=ctx, security_profile=2, auth=lambda r: True
            ) as (server, _),
            station(server, "CP1", **tls),
        ):
            # A ClientHello gets no ServerHello: the stream is closed unread.
            hello = ssl.create_default_context().wrap_bio(
                ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="x"
            )
            with pytest.raises(ssl.SSLWantReadError):
                hello.do_handshake()
            assert await raw_exchange(server.port, outgoing.read()) == b""


async def test_a_silent_tls_peer_is_displaced(
    ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    """Silent until the upgrade request is read: a stalled TLS handshake counts too."""
    ctx, tls = _profile_2(ca, server_cert)
    with trio.fail_after(TIMEOUT):
        async with serving(
            max_connections=1, ssl_context=ctx, security_profile=2, auth=lambda r: True
        ) as (server, _):
            stalled = await _idle(server.port)
            hello = ssl.create_default_context().wrap_bio(
                ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="x"
            )
            with pytest.raises(ssl.SSLWantReadError):
                hello.do_handshake()
            await stalled.send_all(outgoing.read())  # a ClientHello, then nothing
            async with station(server, "CP1", **tls) as client:
                assert await _displaced(stalled)
                assert await client.call("Heartbeat", {}) == NOW
            await stalled.aclose()


async def test_max_pending_handshakes_displaces_the_oldest_silent() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            serving(max_pending_handshakes=2, handshake_timeout=30) as (server, rejected),
            station(server, "CP1") as client,
            station(server, "CP2"),
        ):
            # Open connections are not pending: two more may still shake hands.
            first = await _idle(server.port)
            second = await _idle(server.port)
            async with station(server, "CP3"):
                assert await _displaced(first)
                assert set(server.clients) == {"CP1", "CP2", "CP3"}
            assert await client.call("Heartbeat", {}) == NOW
            third = await _idle(server.port)  # second and third pending now
            fourth = await _idle(server.port)
            assert await _displaced(second)  # the oldest silent one goes first
            for stream in (first, second, third, fourth):
                await stream.aclose()
    reasons = [e.reason for e in rejected if e.identity is None and e.status is None]
    assert (
        reasons.count(
            "max_pending_handshakes=2 reached; closed, still silent, to make room for a new stream"
        )
        == 2
    )


async def refused_or_closed(server: OCPPServer, identity: str) -> bool:
    """Our client could not connect (the server closed the stream at once)."""
    try:
        async with station(server, identity, connect_timeout=3):
            return False
    except Exception:
        return True


@pytest.mark.parametrize("value", [0, -1, 1.5, "10"])
def test_max_pending_handshakes_is_checked(value: Any) -> None:
    with pytest.raises(ValueError, match="max_pending_handshakes"):
        OCPPServer(max_pending_handshakes=value)


def test_max_pending_handshakes_default() -> None:
    assert OCPPServer().max_pending_handshakes == 1024


# --- identities: printable ASCII, compared without case ---------------------------------


def test_station_key() -> None:
    assert station_key("CP-001.Site:A") == "cp-001.site:a"
    assert station_key("cp001") == station_key("CP001")
    # Only ASCII letters fold: a Kelvin sign is not a "k".
    assert station_key("\u212a1") == "\u212a1"
    assert station_key("\u212aA") == "\u212aa"


def _answer_configuration(client: OCPPClient) -> None:
    client.handle("GetConfiguration", lambda ctx: {"configurationKey": []})


async def test_case_variants_are_one_station() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            serving() as (server, _),
            station(server, "CP1", setup=_answer_configuration),
        ):
            conn = server.clients["CP1"]
            assert server.clients["cp1"] is conn
            assert "Cp1" in server.clients
            assert "CP2" not in server.clients
            answer = await server.call_station("cP1", "GetConfiguration", {})
            assert answer == {"configurationKey": []}
            assert await server.locate_station("cp1") is not None
            async with station(server, "cp1") as second:
                with trio.fail_after(TIMEOUT):
                    await conn.wait_closed()
                assert conn.close_code == CLOSE_REPLACED
                assert list(server.clients) == ["cp1"]  # as the station sent it
                assert server.clients["CP1"].identity == "cp1"
                assert await second.call("Heartbeat", {}) == NOW
        async with serving(duplicate_policy="reject") as (server, _), station(server, "CP1"):
            assert await refused_status(server, "cp1") == 409
            assert await refused_status(server, "CP1") == 409


@pytest.mark.parametrize(
    "path",
    [
        "/ocpp/%EF%BC%A3%EF%BC%B0%EF%BC%91",  # fullwidth CP1
        "/ocpp/CP%E2%84%AA",  # a Kelvin sign
        "/ocpp/CP1%C3%A9",
        "/ocpp/CP1%7F",
    ],
    ids=["fullwidth", "kelvin", "latin-1 letter", "DEL"],
)
async def test_a_non_ascii_identity_is_refused_and_hurts_nobody(path: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving() as (server, rejected), station(server, "CP1") as client:
            conn = server.clients["CP1"]
            assert status_of(await raw_exchange(server.port, upgrade_request(path))) == 400
            await still_connected(server, client, conn)
    assert [(e.status, e.reason) for e in rejected] == [
        (400, "the station identity is not printable ASCII")
    ]


async def test_printable_ascii_identities_are_let_through() -> None:
    with trio.fail_after(TIMEOUT):
        async with serving() as (server, _):
            for identity in ("RDAM 123", "CP*-_=:+|@.1", "a/b~!"):
                async with station(server, identity):
                    assert list(server.clients) == [identity]


async def test_cluster_claims_use_the_station_key() -> None:
    hub = LocalHub()
    servers: list[OCPPServer] = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for i in range(2):
                server = OCPPServer(_on_station, ping_interval=0)
                server.set_adapter(LocalAdapter(hub, instance_id=f"i{i}"))
                await nursery.start(server.listen, 0, "127.0.0.1")
                servers.append(server)
            a, b = servers
            async with station(a, "CP1", setup=_answer_configuration):
                conn = a.clients["CP1"]
                assert await b.locate_station("cp1") == "i0"
                answer = await b.call_station("Cp1", "GetConfiguration", {})
                assert answer == {"configurationKey": []}
                async with station(b, "cp1") as moved:
                    with trio.fail_after(TIMEOUT):
                        await conn.wait_closed()
                    assert conn.close_code == CLOSE_REPLACED
                    await trio.testing.wait_all_tasks_blocked()
                    assert await a.locate_station("CP1") == "i1"
                    assert await moved.call("Heartbeat", {}) == NOW
            for server in servers:
                await server.close()


# --- security profiles by number ----------------------------------------------------------


def test_ssl_context_helpers_take_the_profile_number(
    ca: trustme.CA, station_cert: trustme.LeafCert, tmp_path: Any
) -> None:
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    certfile = tmp_path / "cp001.pem"
    station_cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    client3 = client_ssl_context(cafile=cafile, certfile=certfile, profile=3)
    client2 = client_ssl_context(cafile=cafile, profile=2)
    server3 = server_ssl_context(None, cafile=cafile, profile=3)
    server2 = server_ssl_context(None, profile=2)
    assert client3.verify_mode == client2.verify_mode == ssl.CERT_REQUIRED
    assert server3.verify_mode == ssl.CERT_REQUIRED
    assert server2.verify_mode == ssl.CERT_NONE
    with pytest.raises(ValueError, match="needs the station's client certificate"):
        client_ssl_context(cafile=cafile, profile=3)
    with pytest.raises(ValueError, match="does not use TLS"):
        server_ssl_context(None, profile=1)
    with pytest.raises(ValueError):
        client_ssl_context(cafile=cafile, profile=7)
    assert SecurityProfile(3) is SecurityProfile.TLS_CLIENT_CERT
