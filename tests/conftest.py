"""Shared fixtures: a test PKI (trustme) and loopback helpers.

Certificates are session-scoped (key generation is the slow part); every
test builds the ``ssl.SSLContext`` it needs from them.
"""

from __future__ import annotations

import socket
import ssl

import pytest
import trio
import trustme

#: The station identity the certificate fixtures are issued for.
STATION_ID = "CP001"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """The CA that signs the CSMS certificate and the station certificates."""
    return trustme.CA()


@pytest.fixture(scope="session")
def foreign_ca() -> trustme.CA:
    """Another CA, trusted by nobody."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    """A CSMS certificate for 127.0.0.1 and localhost."""
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture(scope="session")
def station_cert(ca: trustme.CA) -> trustme.LeafCert:
    """A station certificate: CN is :data:`STATION_ID`, O is "Example CSO"."""
    return ca.issue_cert(STATION_ID, common_name=STATION_ID, organization_name="Example CSO")


@pytest.fixture(scope="session")
def foreign_station_cert(foreign_ca: trustme.CA) -> trustme.LeafCert:
    """The same station, signed by :func:`foreign_ca`."""
    return foreign_ca.issue_cert(
        STATION_ID, common_name=STATION_ID, organization_name="Example CSO"
    )


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (prefer binding port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def unused_port() -> int:
    """:func:`free_tcp_port` as a fixture."""
    return free_tcp_port()


# --- raw HTTP over TCP, for handshake tests -----------------------------------


def upgrade_request(
    path: str,
    *,
    protocols: tuple[str, ...] = ("ocpp1.6",),
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A WebSocket upgrade request (RFC 6455 §4.1) for ``path``, as bytes."""
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if protocols:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def raw_exchange(
    port: int, data: bytes, *, timeout: float = 5.0, ssl_context: ssl.SSLContext | None = None
) -> bytes:
    """Send ``data`` to 127.0.0.1:``port`` (over TLS with ``ssl_context``) and return
    what comes back until EOF.

    Raises ``trio.TooSlowError`` when the server neither answers nor closes in time.
    """
    stream: trio.abc.Stream
    if ssl_context is None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    else:
        stream = await trio.open_ssl_over_tcp_stream(
            "127.0.0.1", port, ssl_context=ssl_context, https_compatible=True
        )
    received = bytearray()
    async with stream:
        with trio.fail_after(timeout):
            try:
                await stream.send_all(data)
                while chunk := await stream.receive_some():
                    received += chunk
            except trio.BrokenResourceError:  # reset by the server
                pass
    return bytes(received)


def status_of(response: bytes) -> int | None:
    """The HTTP status code of a raw response, or None when there is none."""
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response.split(b" ", 2)[1])
