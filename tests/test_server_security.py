"""Security profiles 0-3 on the server, against our own client over loopback (trustme PKI)."""

from __future__ import annotations

import base64
import logging
import ssl
import warnings
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio
import trustme

from ocpp_trio import (
    ConnectError,
    HandshakeRejected,
    OCPPClient,
    SecurityProfile,
    TLSError,
    check_password,
    client_ssl_context,
    open_ocpp_client,
    server_ssl_context,
)
from ocpp_trio.server import HandshakeRejectedEvent, HandshakeRequest, OCPPServer

from .conftest import raw_exchange, status_of, upgrade_request
from .helpers import serving_with_refusals

TIMEOUT = 10.0
IDENTITY = "CP001"  # the CN of the conftest station certificates
SECRET = "correct-horse-battery-staple"


def server_context(ca: trustme.CA, cert: trustme.LeafCert, profile: int) -> ssl.SSLContext:
    ctx = server_ssl_context(
        None,
        cadata=ca.cert_pem.bytes().decode("ascii"),
        profile=SecurityProfile(profile),
    )
    cert.configure_cert(ctx)
    return ctx


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    ctx = client_ssl_context(cadata=ca.cert_pem.bytes().decode("ascii"))
    if cert is not None:
        cert.configure_cert(ctx)
    return ctx


class Auth:
    """An auth callback that records its requests and checks SECRET when a password came."""

    def __init__(self) -> None:
        self.requests: list[HandshakeRequest] = []

    def __call__(self, request: HandshakeRequest) -> bool:
        self.requests.append(request)
        if request.security_profile.requires_password:
            return request.password is not None and check_password(SECRET, request.password)
        return True


def serving(
    **options: Any,
) -> AbstractAsyncContextManager[tuple[OCPPServer, list[HandshakeRejectedEvent]]]:
    return serving_with_refusals(None, **options)


def station(
    server: OCPPServer, *, tls: bool = False, identity: str = IDENTITY, **options: Any
) -> AbstractAsyncContextManager[OCPPClient]:
    options.setdefault("reconnect", False)
    options.setdefault("ping_interval", 0)
    options.setdefault("connect_timeout", 5)
    scheme = "wss" if tls else "ws"
    return open_ocpp_client(
        f"{scheme}://127.0.0.1:{server.port}/ocpp", identity=identity, **options
    )


async def connects(server: OCPPServer, **options: Any) -> bool:
    async with station(server, **options):
        return IDENTITY in server.clients


async def rejected_with(server: OCPPServer, **options: Any) -> int:
    with pytest.raises(HandshakeRejected) as info:
        async with station(server, **options):
            pass
    return info.value.status_code


def basic(user: str, password: str) -> tuple[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return ("Authorization", f"Basic {token}")


# --- profile 0 and 1 ------------------------------------------------------------


async def test_profile_0_needs_nothing() -> None:
    auth = Auth()
    with trio.fail_after(TIMEOUT):
        async with serving(auth=auth) as (server, _):
            assert await connects(server)
    (request,) = auth.requests
    assert request.security_profile is SecurityProfile.NONE
    assert request.password is None
    assert request.certificate is None


async def test_profile_1_basic_auth(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = Auth()
    with trio.fail_after(TIMEOUT):
        async with serving(auth=auth, security_profile=1) as (server, rejected):
            assert await connects(server, security_profile=1, password=SECRET)
            assert auth.requests[-1].password == SECRET.encode()
            conn_repr = repr(auth.requests[-1])
            assert SECRET not in conn_repr
            assert "authorization" not in conn_repr.lower()
            # Wrong password: the callback says no -> 401 with the Basic challenge.
            assert (
                await rejected_with(server, security_profile=1, password="wrong-password!!") == 401
            )
            # No Authorization header, a user-id that is not the identity, garbage: 401,
            # before the callback is even asked.
            asked = len(auth.requests)
            for headers in [(), (basic("CP002", SECRET),), (("Authorization", "Basic !!!"),)]:
                response = await raw_exchange(
                    server.port, upgrade_request(f"/ocpp/{IDENTITY}", headers=headers)
                )
                assert status_of(response) == 401
                assert b'WWW-Authenticate: Basic realm="OCPP"' in response
            assert len(auth.requests) == asked
            assert [e.status for e in rejected] == [401, 401, 401, 401]
            assert await connects(server, security_profile=1, password=SECRET)  # still serving
    token = base64.b64encode(f"{IDENTITY}:{SECRET}".encode()).decode("ascii")
    assert SECRET not in caplog.text
    assert token not in caplog.text


# --- profile 2 ------------------------------------------------------------------


async def test_profile_2_tls_and_basic_auth(
    ca: trustme.CA, foreign_ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    auth = Auth()
    ctx = server_context(ca, server_cert, 2)
    with trio.fail_after(TIMEOUT):
        async with serving(auth=auth, security_profile=2, ssl_context=ctx) as (server, rejected):
            good: dict[str, Any] = {"tls": True, "security_profile": 2, "password": SECRET}
            assert await connects(server, ssl_context=client_context(ca), **good)
            assert server.clients == {}
            with pytest.raises(TLSError, match="certificate"):
                await connects(server, ssl_context=client_context(foreign_ca), **good)
            assert (
                await rejected_with(
                    server,
                    tls=True,
                    security_profile=2,
                    password="nope-nope-nope-nope",
                    ssl_context=client_context(ca),
                )
                == 401
            )
            assert await connects(server, ssl_context=client_context(ca), **good)
    assert any("TLS handshake failed" in e.reason for e in rejected)


# --- profile 3 ------------------------------------------------------------------


async def test_profile_3_client_certificate(
    ca: trustme.CA,
    server_cert: trustme.LeafCert,
    station_cert: trustme.LeafCert,
    foreign_station_cert: trustme.LeafCert,
) -> None:
    auth = Auth()
    ctx = server_context(ca, server_cert, 3)
    good: dict[str, Any] = {"tls": True, "security_profile": 3}
    with trio.fail_after(TIMEOUT):
        async with serving(auth=auth, security_profile=3, ssl_context=ctx) as (server, rejected):
            async with station(server, ssl_context=client_context(ca, station_cert), **good):
                conn = server.clients[IDENTITY]
                assert conn.handshake.certificate is not None  # type: ignore[attr-defined]
            (request,) = auth.requests
            assert request.certificate is not None
            assert request.certificate.common_name == IDENTITY
            assert request.certificate.organization_name == "Example CSO"

            # No client certificate: refused promptly, not after a timeout.
            start = trio.current_time()
            with pytest.raises(ConnectError):
                await connects(server, ssl_context=client_context(ca), **good)
            assert trio.current_time() - start < 3

            # A certificate from another CA.
            with pytest.raises(ConnectError):
                await connects(server, ssl_context=client_context(ca, foreign_station_cert), **good)

            # TLS 1.1 is not spoken.
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.load_verify_locations(cadata=ca.cert_pem.bytes().decode("ascii"))
            station_cert.configure_cert(old)
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is, indeed
                old.minimum_version = ssl.TLSVersion.TLSv1_1
                old.maximum_version = ssl.TLSVersion.TLSv1_1
            with pytest.raises(TLSError):
                await connects(server, ssl_context=old, **good)

            # Still serving.
            async with station(server, ssl_context=client_context(ca, station_cert), **good):
                assert IDENTITY in server.clients
    assert len(auth.requests) == 2  # the refused ones never reached the callback
    assert len([e for e in rejected if e.reason.startswith("TLS handshake failed")]) >= 2


async def test_profile_3_without_verification_is_refused_by_the_server(
    ca: trustme.CA, server_cert: trustme.LeafCert, station_cert: trustme.LeafCert
) -> None:
    # A CERT_OPTIONAL context (profile 2 style) serving profile 3: a station without a
    # certificate passes TLS but gets 401.
    ctx = server_context(ca, server_cert, 2)
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    with trio.fail_after(TIMEOUT):
        async with serving(security_profile=3, ssl_context=ctx) as (server, _):
            assert (
                await rejected_with(
                    server,
                    tls=True,
                    security_profile=2,
                    password="unused-unused-unused",
                    ssl_context=client_context(ca),
                )
                == 401
            )
            assert await connects(
                server, tls=True, security_profile=3, ssl_context=client_context(ca, station_cert)
            )


def test_server_refuses_to_start_without_what_the_profile_needs(
    ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    for profile in (2, 3):
        with pytest.raises(ValueError, match="ssl_context"):
            OCPPServer(security_profile=profile, auth=Auth())
    with pytest.raises(ValueError, match="auth"):
        OCPPServer(security_profile=1)
    no_verify = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(no_verify)
    with pytest.raises(ValueError, match="verif"):
        OCPPServer(security_profile=3, ssl_context=no_verify)


async def test_serve_listeners_with_an_ssl_listener(
    ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    ctx = server_context(ca, server_cert, 2)
    server = OCPPServer(security_profile=2, ssl_context=ctx, auth=Auth(), ping_interval=0)
    with trio.fail_after(TIMEOUT):
        listeners = await trio.open_ssl_over_tcp_listeners(
            0, ctx, host="127.0.0.1", https_compatible=True
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_listeners, listeners)
            assert await connects(
                server,
                tls=True,
                security_profile=2,
                password=SECRET,
                ssl_context=client_context(ca),
            )
            await server.close()
