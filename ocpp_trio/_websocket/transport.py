"""The WebSocket seam: what the RPC runtime needs from a WebSocket, and nothing more.

The runtime (``_rpc/``) talks to a :class:`Transport`: send text, receive a
message, ping and wait for the pong, close gracefully, abort.  Three
implementations sit behind it: the default driver over websockets' Sans-I/O
core (``driver.py``), trio-websocket (``trio_websocket.py``, imported only
when selected) and an accepted ASGI WebSocket (``ocpp_trio.asgi``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

log = logging.getLogger("ocpp_trio.transport")

#: The WebSocket implementations behind the seam: our driver over websockets'
#: Sans-I/O core (``driver.py``, the default) or trio-websocket (``trio_websocket.py``).
WebSocketBackend = Literal["websockets", "trio-websocket"]

#: RFC 6455 §7.4.1 close codes used by the runtime.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
#: RFC 6455 §7.4.1: data of a type the endpoint cannot accept (OCPP-J is text only).
CLOSE_UNSUPPORTED_DATA = 1003
BINARY_REFUSED = "OCPP-J messages are text, not binary"
CLOSE_ABNORMAL = 1006
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeInfo:
    """What the WebSocket opening handshake established.

    Attributes:
        path: the request target (path and query) as sent.
        subprotocol: the negotiated subprotocol.
        request_headers: the client's request headers (server side), lower-cased names.
        response_headers: the server's response headers (client side).
        remote: ``(host, port)`` of the peer, when it is a TCP peer.
        peer_certificate: the peer's certificate (``ssl.getpeercert()`` dict), for TLS.
    """

    path: str = "/"
    subprotocol: str | None = None
    request_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    response_headers: tuple[tuple[str, str], ...] = ()
    remote: tuple[str, int] | None = None
    peer_certificate: dict[str, Any] | None = field(default=None, repr=False)


class Transport(Protocol):
    """One open WebSocket, as the RPC runtime uses it."""

    @property
    def subprotocol(self) -> str | None: ...

    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str: ...

    async def send(self, text: str) -> None:
        """Send one text message; raise ``ConnectionClosed`` when closed."""
        ...

    async def receive(self) -> str:
        """Return the next message; raise ``ConnectionClosed`` when closed.

        Always text: a binary message fails the connection with 1003
        (``CLOSE_UNSUPPORTED_DATA``), whichever the backend.
        """
        ...

    async def ping(self, payload: bytes) -> None:
        """Send a ping and return when its pong arrives (callers bound the wait)."""
        ...

    async def aclose(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close gracefully (callers bound the wait), then close the stream."""
        ...

    async def abort(self) -> None:
        """Close the stream at once, without a closing handshake."""
        ...
