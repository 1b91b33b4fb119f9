"""Per-station security profiles (``profile_for``): stations of profiles 1, 2 and 3 on one port.

Over loopback with a trustme PKI, against our own client and raw upgrade
requests; the lookup's own behaviour (deadline, cancellation, errors) on the
in-memory server under virtual time.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trustme

from ocpp_trio import (
    ConnectError,
    HandshakeRejected,
    OCPPClient,
    SecurityProfile,
    basic_auth_header,
    check_password,
    client_ssl_context,
    open_ocpp_client,
    server_ssl_context,
)
from ocpp_trio.asgi import OCPPASGIApp
from ocpp_trio.server import HandshakeRejectedEvent, HandshakeRequest, OCPPServer, serve_ocpp
from ocpp_trio.testing import open_memory_server

from .asgi.helpers import http_request, hypercorn, upgrade_headers
from .conftest import raw_exchange, status_of, upgrade_request

TIMEOUT = 10.0
PASSWORDS = {"CP1": "password-of-cp1-0123", "CP2": "password-of-cp2-4567"}


# --- the PKI and the CSMS ---------------------------------------------------------


@pytest.fixture(scope="module")
def station_certs(ca: trustme.CA) -> dict[str, trustme.LeafCert]:
    """A certificate of our CA for each station, its identity as CN (and DNS SAN)."""
    return {name: ca.issue_cert(name, common_name=name) for name in ("CP1", "CP2", "CP3")}


def csms_tls(ca: trustme.CA, server_cert: trustme.LeafCert) -> ssl.SSLContext:
    """The mixed-profile server context: client certificates requested, not required."""
    ctx = server_ssl_context(None, cadata=ca.cert_pem.bytes().decode("ascii"))
    server_cert.configure_cert(ctx)
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    return ctx


def station_tls(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    ctx = client_ssl_context(cadata=ca.cert_pem.bytes().decode("ascii"))
    if cert is not None:
        cert.configure_cert(ctx)
    return ctx


class Auth:
    """The CSMS's auth: the stored password of profile 1-2 stations; records what it saw."""

    def __init__(self) -> None:
        self.requests: list[HandshakeRequest] = []

    def __call__(self, request: HandshakeRequest) -> bool:
        self.requests.append(request)
        if request.security_profile.requires_password:
            stored = PASSWORDS.get(request.identity.upper())
            return (
                stored is not None
                and request.password is not None
                and check_password(stored, request.password)
            )
        return True


class Csms:
    """One server, its TLS port (and a plain one), a profile table the test may change."""

    def __init__(self, server: OCPPServer, plain_port: int | None, tls_port: int) -> None:
        self.server = server
        self.plain_port = plain_port
        self.tls_port = tls_port
        self.rejected: list[HandshakeRejectedEvent] = []
        server.on("handshake_rejected", self.rejected.append)


@asynccontextmanager
async def csms(
    ctx: ssl.SSLContext,
    profiles: dict[str, int],
    auth: Auth,
    *,
    plain_port: bool = False,
    **options: Any,
) -> AsyncIterator[Csms]:
    """The CSMS: one TLS port (``listen`` with ``ssl_context``, unknown stations on profile 3).

    ``plain_port``: a ``ws://`` listener too (``serve_listeners`` with a plain
    and a TLS listener; no ``ssl_context``, which would wrap the plain one, so
    stations not in the table default to profile 1, whose ``auth`` refuses
    them).
    """
    options.setdefault("ping_interval", 0)
    async with trio.open_nursery() as nursery:
        if not plain_port:
            server: OCPPServer = await nursery.start(
                partial(
                    serve_ocpp,
                    None,
                    0,
                    host="127.0.0.1",
                    ssl_context=ctx,
                    security_profile=SecurityProfile.TLS_CLIENT_CERT,
                    profile_for=profiles.get,
                    auth=auth,
                    **options,
                )
            )
            running = Csms(server, None, server.port)
        else:
            server = OCPPServer(
                auth=auth,
                security_profile=SecurityProfile.BASIC_AUTH,
                profile_for=profiles.get,
                **options,
            )
            plain = await trio.open_tcp_listeners(0, host="127.0.0.1")
            tls = await trio.open_ssl_over_tcp_listeners(
                0, ctx, host="127.0.0.1", https_compatible=True
            )
            await nursery.start(partial(server.serve_listeners, [*plain, *tls]))
            running = Csms(
                server,
                plain[0].socket.getsockname()[1],
                tls[0].transport_listener.socket.getsockname()[1],
            )
        try:
            yield running
        finally:
            with trio.fail_after(TIMEOUT):
                await server.close()


def station(
    csms: Csms, identity: str, *, tls: bool = True, port: int | None = None, **options: Any
) -> AbstractAsyncContextManager[OCPPClient]:
    """A station of ``csms``: ``wss://`` to its TLS port, or ``ws://`` to its plain one."""
    options.setdefault("reconnect", False)
    options.setdefault("ping_interval", 0)
    options.setdefault("connect_timeout", 5)
    options.setdefault("protocols", ["ocpp1.6"])
    if port is None:
        port = csms.tls_port if tls else csms.plain_port
    assert port is not None
    url = f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/ocpp"
    return open_ocpp_client(url, identity=identity, **options)


# The credentials of each profile, as a station of that profile presents them.
def as_profile_1(ca: trustme.CA, identity: str) -> dict[str, Any]:
    return {"tls": False, "security_profile": 1, "password": PASSWORDS.get(identity, "x" * 20)}


def as_profile_2(ca: trustme.CA, identity: str) -> dict[str, Any]:
    return {
        "security_profile": 2,
        "password": PASSWORDS.get(identity, "x" * 20),
        "ssl_context": station_tls(ca),
    }


def as_profile_3(ca: trustme.CA, cert: trustme.LeafCert) -> dict[str, Any]:
    return {"security_profile": 3, "ssl_context": station_tls(ca, cert)}


async def accepted(csms: Csms, identity: str, **options: Any) -> SecurityProfile:
    """Connect; the profile the server admitted the station with."""
    async with station(csms, identity, **options):
        conn = csms.server.clients[identity]
        profile: SecurityProfile = conn.handshake.security_profile  # type: ignore[attr-defined]
        return profile


async def refused(csms: Csms, identity: str, **options: Any) -> int | None:
    """Connect and fail: the HTTP status, or None for a failure below HTTP (TLS)."""
    with pytest.raises(ConnectError) as info:
        async with station(csms, identity, **options):
            pass
    return info.value.status_code if isinstance(info.value, HandshakeRejected) else None


# --- one TLS port, three profiles ---------------------------------------------------


@pytest.mark.parametrize("backend", ["websockets", "trio-websocket"])
async def test_stations_of_profiles_1_2_3_share_one_tls_port(
    ca: trustme.CA,
    server_cert: trustme.LeafCert,
    station_certs: dict[str, trustme.LeafCert],
    backend: str,
) -> None:
    profiles = {"CP1": 1, "CP2": 2, "CP3": 3}
    auth = Auth()
    with trio.fail_after(TIMEOUT):
        async with csms(
            csms_tls(ca, server_cert), profiles, auth, websocket_backend=backend
        ) as srv:
            p1 = {**as_profile_1(ca, "CP1"), "tls": True, "ssl_context": station_tls(ca)}
            assert await accepted(srv, "CP1", **p1) is SecurityProfile.BASIC_AUTH
            assert await accepted(srv, "CP2", **as_profile_2(ca, "CP2")) == 2
            assert await accepted(srv, "CP3", **as_profile_3(ca, station_certs["CP3"])) == 3
            # All three at once, on the one port.
            async with (
                station(srv, "CP1", **p1),
                station(srv, "CP2", **as_profile_2(ca, "CP2")),
                station(srv, "CP3", **as_profile_3(ca, station_certs["CP3"])),
            ):
                assert sorted(srv.server.clients) == ["CP1", "CP2", "CP3"]
    seen = {(r.identity, r.security_profile) for r in auth.requests}
    assert seen == {("CP1", 1), ("CP2", 2), ("CP3", 3)}
    by_identity = {r.identity: r for r in auth.requests}
    assert by_identity["CP1"].password == PASSWORDS["CP1"].encode()
    assert by_identity["CP2"].password == PASSWORDS["CP2"].encode()
    assert by_identity["CP3"].password is None
    cert = by_identity["CP3"].certificate
    assert cert is not None
    assert cert.common_name == "CP3"
    assert srv.rejected == []


async def test_each_profile_refuses_the_credentials_of_another(
    ca: trustme.CA, server_cert: trustme.LeafCert, station_certs: dict[str, trustme.LeafCert]
) -> None:
    profiles = {"CP1": 1, "CP2": 2, "CP3": 3}
    auth = Auth()
    with trio.fail_after(TIMEOUT):
        async with csms(csms_tls(ca, server_cert), profiles, auth, plain_port=True) as srv:
            # Profile 1 and 2 stations presenting a certificate of their own (profile 3's
            # credentials) and no password: 401, before auth is asked.
            for name in ("CP1", "CP2"):
                assert await refused(srv, name, **as_profile_3(ca, station_certs[name])) == 401
            # Profile 2 with profile 1's: plain ws:// -> 403 (profile 2 needs TLS).
            assert await refused(srv, "CP2", **as_profile_1(ca, "CP2")) == 403
            # Profile 3 with profile 2's (TLS + password, no certificate): 401.
            assert await refused(srv, "CP3", **as_profile_2(ca, "CP3")) == 401
            # Profile 3 with profile 1's (plain ws://): 403.
            assert await refused(srv, "CP3", **as_profile_1(ca, "CP3")) == 403
            # Profile 3 with a certificate that names another station: 401, with a
            # password or without.
            other = station_certs["CP2"]
            assert await refused(srv, "CP3", **as_profile_3(ca, other)) == 401
            with_password = {**as_profile_3(ca, other), "security_profile": 2, "password": "p" * 20}
            assert await refused(srv, "CP3", **with_password) == 401
            # Speaking plain WebSocket to the TLS port is a TLS failure, not an HTTP one.
            plain_to_tls = {**as_profile_1(ca, "CP1"), "port": srv.tls_port}
            assert await refused(srv, "CP1", **plain_to_tls) is None
            # A wrong password for profile 1 and 2: auth says no -> 401.
            wrong = {**as_profile_2(ca, "CP2"), "password": "not-the-password-of-cp2"}
            assert await refused(srv, "CP2", **wrong) == 401
            assert srv.server.clients == {}
            # Every station still gets in with its own credentials.
            assert await accepted(srv, "CP1", **as_profile_1(ca, "CP1")) == 1
            assert await accepted(srv, "CP2", **as_profile_2(ca, "CP2")) == 2
            assert await accepted(srv, "CP3", **as_profile_3(ca, station_certs["CP3"])) == 3
    # Only the wrong password reached auth, among the refused.
    assert [r.identity for r in auth.requests] == ["CP2", "CP1", "CP2", "CP3"]
    reasons = [e.reason for e in srv.rejected if e.status is not None]
    assert "the TLS client certificate does not name the station (security profile 3)" in reasons
    assert "no verified TLS client certificate (security profile 3)" in reasons
    assert "security profile 2 requires TLS (wss://)" in reasons


async def test_refusals_say_what_each_profile_wants(
    ca: trustme.CA, server_cert: trustme.LeafCert, station_certs: dict[str, trustme.LeafCert]
) -> None:
    """401 for Basic Auth comes with ``WWW-Authenticate: Basic``; profile 3's 401 without it."""
    profiles = {"CP1": 1, "CP2": 2, "CP3": 3}
    challenge = b'WWW-Authenticate: Basic realm="OCPP"'
    with trio.fail_after(TIMEOUT):
        async with csms(csms_tls(ca, server_cert), profiles, Auth(), plain_port=True) as srv:
            for name in ("CP1", "CP2"):
                for headers in [
                    (),
                    (basic_auth_header("CP9", PASSWORDS[name]),),
                    (basic_auth_header(name, "wrong" * 4),),
                ]:
                    answer = await raw_exchange(
                        srv.tls_port,
                        upgrade_request(f"/ocpp/{name}", headers=headers),
                        ssl_context=station_tls(ca, station_certs[name]),
                    )
                    assert status_of(answer) == 401
                    assert challenge in answer
            # Profile 3 with the password of a profile 2 station and no certificate.
            answer = await raw_exchange(
                srv.tls_port,
                upgrade_request("/ocpp/CP3", headers=(basic_auth_header("CP3", PASSWORDS["CP2"]),)),
                ssl_context=station_tls(ca),
            )
            assert status_of(answer) == 401
            assert b"WWW-Authenticate" not in answer
            # Profile 2 over plain TCP.
            assert srv.plain_port is not None
            answer = await raw_exchange(
                srv.plain_port,
                upgrade_request("/ocpp/CP2", headers=(basic_auth_header("CP2", "x" * 20),)),
            )
            assert status_of(answer) == 403
            # Profile 1 over plain TCP, right password: 101.
            stream = await trio.open_tcp_stream("127.0.0.1", srv.plain_port)
            async with stream:
                await stream.send_all(
                    upgrade_request(
                        "/ocpp/CP1", headers=(basic_auth_header("CP1", PASSWORDS["CP1"]),)
                    )
                )
                answer = b""
                while b"\r\n\r\n" not in answer:
                    answer += await stream.receive_some()
            assert status_of(answer) == 101


async def test_a_profile_upgrade_a05_takes_effect_at_the_next_connection(
    ca: trustme.CA, server_cert: trustme.LeafCert, station_certs: dict[str, trustme.LeafCert]
) -> None:
    """1 -> 2 -> 3 for one station: each new profile is required, the old one refused.

    The open connection is never disturbed by a refused attempt; the first
    connection with the new profile replaces it.
    """
    profiles = {"CP1": 1}
    auth = Auth()
    closed: list[int | None] = []
    with trio.fail_after(TIMEOUT):
        async with (
            csms(csms_tls(ca, server_cert), profiles, auth, plain_port=True) as srv,
            station(srv, "CP1", **as_profile_1(ca, "CP1")) as first,
        ):
            first.on("close", lambda event: closed.append(event.code))
            open_conn = srv.server.clients["CP1"]
            # The CSMS sets SecurityProfile (A05); the station reconnects later.
            profiles["CP1"] = 2
            assert srv.server.clients["CP1"] is open_conn  # nothing happens by itself
            assert await refused(srv, "CP1", **as_profile_1(ca, "CP1")) == 403
            assert srv.server.clients["CP1"] is open_conn  # not evicted
            async with station(srv, "CP1", **as_profile_2(ca, "CP1")):
                assert srv.server.clients["CP1"] is not open_conn
                assert srv.server.clients["CP1"].handshake.security_profile == 2  # type: ignore[attr-defined]
                await first.wait_closed()
                assert closed == [4000]  # replaced
                profiles["CP1"] = 3
                assert await refused(srv, "CP1", **as_profile_2(ca, "CP1")) == 401
                assert await refused(srv, "CP1", **as_profile_1(ca, "CP1")) == 403
                assert await accepted(srv, "CP1", **as_profile_3(ca, station_certs["CP1"])) == 3
                # And never back: a password alone stays refused.
                assert await refused(srv, "CP1", **as_profile_2(ca, "CP1")) == 401
    assert [r.security_profile for r in auth.requests] == [1, 2, 3]


async def test_plain_listener_only_lets_profiles_0_and_1_in() -> None:
    """Without TLS anywhere, a station the lookup puts on profile 2 or 3 gets 403."""
    profiles = {"CP0": 0, "CP1": 1, "CP2": 2, "CP3": 3}
    with trio.fail_after(TIMEOUT):
        async with open_memory_server(
            profile_for=profiles.get, auth=Auth(), protocols=["ocpp1.6"]
        ) as srv:
            async with srv.connect("CP0"):
                pass
            async with srv.connect("CP1", security_profile=1, password=PASSWORDS["CP1"]):
                pass
            for name in ("CP2", "CP3"):
                with pytest.raises(HandshakeRejected) as info:
                    async with srv.connect(name):
                        pass
                assert info.value.status_code == 403


# --- the lookup ------------------------------------------------------------------------


async def test_the_lookup_is_asked_after_the_request_parsed_and_before_credentials() -> None:
    calls: list[str] = []

    async def profile_for(identity: str) -> SecurityProfile:
        calls.append(identity)
        await trio.lowlevel.checkpoint()
        return SecurityProfile.BASIC_AUTH

    auth = Auth()
    with trio.fail_after(TIMEOUT):
        async with open_memory_server(
            profile_for=profile_for, auth=auth, protocols=["ocpp1.6"]
        ) as srv:
            assert srv.server.profile_for is profile_for
            async with srv.connect("cp1", security_profile=1, password=PASSWORDS["CP1"]):
                pass
            # The identity as sent: the table is the application's to normalize.
            assert calls == ["cp1"]
            assert auth.requests[-1].security_profile is SecurityProfile.BASIC_AUTH
            # A request refused before the credentials (bad identity) asks nothing.
            stream = await srv.open_stream("", 0)
            await stream.send_all(upgrade_request("/ocpp/bad%ZZ"))
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
            assert status_of(answer) == 400
            assert calls == ["cp1"]
            # No password: 401 after the lookup, before auth.
            asked = len(auth.requests)
            with pytest.raises(HandshakeRejected) as info:
                async with srv.connect("CP1"):
                    pass
            assert info.value.status_code == 401
            assert calls == ["cp1", "CP1"]
            assert len(auth.requests) == asked


async def test_a_lookup_that_raises_refuses_with_503_once_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def profile_for(identity: str) -> int:
        if identity == "BROKEN":
            raise RuntimeError("profile store down: secret-connection-string")
        return 1

    rejected: list[HandshakeRejectedEvent] = []
    with trio.fail_after(TIMEOUT):
        async with open_memory_server(
            profile_for=profile_for, auth=Auth(), protocols=["ocpp1.6"]
        ) as srv:
            srv.server.on("handshake_rejected", rejected.append)
            with pytest.raises(HandshakeRejected) as info:
                async with srv.connect("BROKEN"):
                    pass
            assert info.value.status_code == 503
            # The server carries on.
            async with srv.connect("CP1", security_profile=1, password=PASSWORDS["CP1"]):
                assert "CP1" in srv.clients
    tracebacks = [r for r in caplog.records if r.exc_info and "profile_for raised" in r.message]
    assert len(tracebacks) == 1
    assert tracebacks[0].levelno == logging.ERROR
    assert [(e.identity, e.status, e.reason) for e in rejected] == [
        ("BROKEN", 503, "profile_for raised RuntimeError")
    ]


@pytest.mark.parametrize("answer", ["2", 4, -1, True, 2.0, object()])
async def test_a_lookup_that_returns_no_profile_refuses_with_500(answer: object) -> None:
    def profile_for(identity: str) -> Any:
        return answer

    with trio.fail_after(TIMEOUT):
        async with open_memory_server(
            profile_for=profile_for, auth=Auth(), protocols=["ocpp1.6"]
        ) as srv:
            with pytest.raises(HandshakeRejected) as info:
                async with srv.connect("CP1"):
                    pass
            assert info.value.status_code == 500


async def test_none_from_the_lookup_means_the_server_profile() -> None:
    auth = Auth()
    with trio.fail_after(TIMEOUT):
        async with open_memory_server(
            security_profile=1, profile_for={"CP0": 0}.get, auth=auth, protocols=["ocpp1.6"]
        ) as srv:
            async with srv.connect("CP0"):
                pass
            with pytest.raises(HandshakeRejected) as info:
                async with srv.connect("CP1"):
                    pass
            assert info.value.status_code == 401
            async with srv.connect("CP1", security_profile=1, password=PASSWORDS["CP1"]):
                pass
    assert [r.security_profile for r in auth.requests] == [0, 1]


async def test_a_slow_lookup_ends_at_the_handshake_deadline(autojump_clock: object) -> None:
    cancelled: list[float] = []

    async def profile_for(identity: str) -> int:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(trio.current_time())
        raise AssertionError("unreachable")

    async with open_memory_server(
        profile_for=profile_for, auth=Auth(), handshake_timeout=7.0, protocols=["ocpp1.6"]
    ) as srv:
        start = trio.current_time()
        with pytest.raises(HandshakeRejected) as info:
            async with srv.connect("CP1", connect_timeout=60):
                pass
        assert info.value.status_code == 503
        assert cancelled == [pytest.approx(start + 7.0)]
        assert srv.clients == {}


async def test_closing_the_server_cancels_a_pending_lookup(autojump_clock: object) -> None:
    started = trio.Event()
    cancelled = trio.Event()

    async def profile_for(identity: str) -> int:
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    async with (
        open_memory_server(
            profile_for=profile_for, auth=Auth(), handshake_timeout=60.0, protocols=["ocpp1.6"]
        ) as srv,
        trio.open_nursery() as nursery,
    ):

        async def connect() -> None:
            with pytest.raises(ConnectError):
                async with srv.connect("CP1", connect_timeout=100):
                    pass

        nursery.start_soon(connect)
        await started.wait()
        start = trio.current_time()
        await srv.server.close()
        assert cancelled.is_set()
        assert trio.current_time() - start < 1.0


async def test_a_password_profile_without_auth_is_refused_not_waved_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_memory_server(profile_for={"CP1": 1}.get, protocols=["ocpp1.6"]) as srv:
            async with srv.connect("CP0"):  # profile 0 (the default): no auth needed
                pass
            with pytest.raises(HandshakeRejected) as info:
                async with srv.connect("CP1", security_profile=1, password=PASSWORDS["CP1"]):
                    pass
            assert info.value.status_code == 500
    assert "the server has none" in caplog.text
    assert PASSWORDS["CP1"] not in caplog.text


def test_profile_for_options_are_checked(ca: trustme.CA, server_cert: trustme.LeafCert) -> None:
    with pytest.raises(TypeError, match="profile_for"):
        OCPPServer(profile_for={"CP1": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="certificate_identity_check"):
        OCPPServer(profile_for={"CP1": 3}.get, certificate_identity_check=False)
    ctx = csms_tls(ca, server_cert)
    lookup = {"CP1": 3}.get
    server = OCPPServer(ssl_context=ctx, profile_for=lookup, security_profile=3)
    assert server.profile_for is lookup
    assert server.security_profile is SecurityProfile.TLS_CLIENT_CERT
    assert server.refuse_unknown_subprotocol is False


# --- the security guide's mixed-profile CSMS, as written --------------------------------------

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guides" / "security.md"


def readme_block(marker: str) -> str:
    """The security guide's one Python block that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


async def test_the_readme_mixed_profile_csms_and_its_a05_upgrade(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """The guide's CSMS serves CP001-CP003 on one port and upgrades CP002 from 2 to 3."""
    files = {
        "csms-ecdsa": ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.ECDSA),
        "csms-rsa": ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.RSA),
    }
    source = readme_block("def upgrade_to_profile_3")
    for name, cert in files.items():
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / f"{name}.pem"))
        cert.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
        for ext in ("pem", "key"):
            source = source.replace(f'"{name}.{ext}"', repr(str(tmp_path / f"{name}.{ext}")))
    ca.cert_pem.write_to_path(str(tmp_path / "stations-ca.pem"))
    source = source.replace('"stations-ca.pem"', repr(str(tmp_path / "stations-ca.pem")))

    async def on_station(conn: object) -> None:
        pass

    namespace: dict[str, Any] = {"on_station": on_station}
    exec(source, namespace)
    csms: OCPPServer = namespace["csms"]
    passwords: dict[str, bytes] = namespace["PASSWORDS"]
    certs = {name: ca.issue_cert(name, common_name=name) for name in ("CP001", "CP002", "CP003")}

    def client(identity: str, **options: Any) -> AbstractAsyncContextManager[OCPPClient]:
        options.setdefault("reconnect", False)
        options.setdefault("ping_interval", 0)
        options.setdefault("protocols", ["ocpp2.0.1"])
        url = f"wss://127.0.0.1:{csms.port}/ocpp"
        return open_ocpp_client(url, identity=identity, **options)

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(csms.listen, 0, "127.0.0.1"))
            p1 = {"security_profile": 1, "password": passwords["CP001"]}
            p2 = {"security_profile": 2, "password": passwords["CP002"]}
            async with (
                client("CP001", ssl_context=station_tls(ca), **p1),
                client("CP002", ssl_context=station_tls(ca), **p2) as cp002,
                client("CP003", security_profile=3, ssl_context=station_tls(ca, certs["CP003"])),
            ):
                profiles = {
                    name: conn.handshake.security_profile  # type: ignore[attr-defined]
                    for name, conn in csms.clients.items()
                }
                assert profiles == {"CP001": 1, "CP002": 2, "CP003": 3}
                seen: list[str] = []

                def accept(ctx: Any) -> dict[str, Any]:
                    seen.append(ctx.method)
                    if ctx.method == "SetVariables":
                        (data,) = ctx.params["setVariableData"]
                        result = {k: data[k] for k in ("component", "variable")}
                        return {"setVariableResult": [{"attributeStatus": "Accepted", **result}]}
                    return {"status": "Accepted"}

                for method in ("SetNetworkProfile", "SetVariables", "Reset"):
                    cp002.handle(method, accept)
                upgrade = namespace["upgrade_to_profile_3"]
                assert await upgrade("CP002", f"wss://127.0.0.1:{csms.port}/ocpp") is True
                assert seen == ["SetNetworkProfile", "SetVariables", "Reset"]
            # CP002 comes back: its password no longer opens the door, its certificate does.
            with pytest.raises(HandshakeRejected) as info:
                async with client("CP002", ssl_context=station_tls(ca), **p2):
                    pass
            assert info.value.status_code == 401
            async with client(
                "CP002", security_profile=3, ssl_context=station_tls(ca, certs["CP002"])
            ):
                assert csms.clients["CP002"].handshake.security_profile == 3  # type: ignore[attr-defined]
            await csms.close()


async def test_the_asgi_app_applies_each_stations_profile() -> None:
    """Behind an ASGI server the lookup applies too: profile 2 needs a TLS scope."""
    server = OCPPServer(
        protocols=["ocpp1.6"], security_profile=1, profile_for={"CP2": 2}.get, auth=Auth()
    )
    app = OCPPASGIApp(server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn(app) as running:  # plain HTTP: scope["scheme"] is "ws"
            for name, status in [("CP1", 101), ("CP2", 403)]:
                credentials = basic_auth_header(name, PASSWORDS[name])
                answer = await http_request(
                    running.port,
                    f"/ocpp/{name}",
                    headers=upgrade_headers("ocpp1.6", extra=(credentials,)),
                )
                assert answer.status == status
            answer = await http_request(
                running.port, "/ocpp/CP1", headers=upgrade_headers("ocpp1.6")
            )
            assert answer.status == 401
            assert answer.headers["www-authenticate"] == 'Basic realm="OCPP"'
