"""The WebSocket seam: what the RPC runtime needs from a WebSocket, and nothing more.

The runtime (``connection.py``) talks to a :class:`Transport`: send text,
receive a message, ping and wait for the pong, close gracefully, abort.  The
implementation here wraps trio-websocket's ``WebSocketConnection`` (built on
wsproto) over a stream we opened and own ourselves, so that:

- the stream is always closed, whatever happens (trio-websocket leaks the
  socket when the server closes first or rejects);
- trio-websocket's exceptions become ours (``ConnectionClosed`` with the code
  and reason);
- another WebSocket implementation can be put behind the same few methods and
  measured against this one.

What trio-websocket 0.12.2 cannot do and a different transport would have to:
permessage-deflate (RFC 7692) is not negotiated (wsproto supports it, but
trio-websocket does not pass extensions through), and inbound pings are
answered inside its reader without telling us.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import trio
import trio_websocket

from .._core.errors import ConnectionClosed

log = logging.getLogger("ocpp_trio.transport")

#: The WebSocket implementations behind the seam: our driver over websockets'
#: Sans-I/O core (``_ws.py``, the default) or trio-websocket (this module).
WebSocketBackend = Literal["websockets", "trio-websocket"]

#: RFC 6455 §7.4.1 close codes used by the runtime.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
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

    async def receive(self) -> str | bytes:
        """Return the next message; raise ``ConnectionClosed`` when closed."""
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


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple(
        (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1")) for k, v in raw or ()
    )


def _close_of(exc: trio_websocket.ConnectionClosed) -> ConnectionClosed:
    reason = exc.reason
    code = reason.code if reason is not None else CLOSE_ABNORMAL
    text = (reason.reason or "") if reason is not None else ""
    msg = f"connection closed ({code}{': ' + text if text else ''})"
    return ConnectionClosed(msg, code=code, reason=text)


class TrioWebsocketTransport:
    """A :class:`Transport` over a trio-websocket connection and the stream under it."""

    __slots__ = ("_stream", "_ws")

    def __init__(self, ws: trio_websocket.WebSocketConnection, stream: trio.abc.Stream) -> None:
        self._ws = ws
        self._stream = stream

    @property
    def subprotocol(self) -> str | None:
        sub: str | None = self._ws.subprotocol
        return sub

    @property
    def close_code(self) -> int | None:
        closed = self._ws.closed
        return closed.code if closed is not None else None

    @property
    def close_reason(self) -> str:
        closed = self._ws.closed
        return (closed.reason or "") if closed is not None else ""

    async def send(self, text: str) -> None:
        try:
            await self._ws.send_message(text)
        except trio_websocket.ConnectionClosed as exc:
            raise _close_of(exc) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionClosed(f"connection lost: {exc}", code=CLOSE_ABNORMAL) from None

    async def receive(self) -> str | bytes:
        try:
            msg: str | bytes = await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise _close_of(exc) from None
        return msg

    async def ping(self, payload: bytes) -> None:
        try:
            await self._ws.ping(payload)
        except trio_websocket.ConnectionClosed as exc:
            raise _close_of(exc) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionClosed(f"connection lost: {exc}", code=CLOSE_ABNORMAL) from None

    async def aclose(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        try:
            await self._ws.aclose(code, reason or None)
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            trio_websocket.ConnectionClosed,
        ):
            pass
        except Exception:  # wsproto LocalProtocolError in a close race (upstream #184)
            log.debug("error while closing the websocket", exc_info=True)
        finally:
            await self.abort()

    async def abort(self) -> None:
        await trio.aclose_forcefully(self._stream)


class GuardedNursery:
    """A stand-in nursery for trio-websocket's internal reader task.

    trio-websocket starts its reader with ``nursery.start_soon`` and lets
    exceptions escape from it (a rejected handshake, a wsproto error in a close
    race), which would tear down everything in the nursery.  This wrapper runs
    the reader in the real nursery but catches what it raises and hands it to
    ``on_error`` instead, so one connection's failure stays with that
    connection.
    """

    __slots__ = ("_nursery", "_on_error")

    def __init__(self, nursery: trio.Nursery, on_error: Callable[[BaseException], None]) -> None:
        self._nursery = nursery
        self._on_error = on_error

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        on_error = self._on_error

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                on_error(exc)

        self._nursery.start_soon(guarded)


class WatchedStream(trio.abc.Stream):
    """A stream that reports its first receive failure (error or EOF) while watched.

    During the opening handshake trio-websocket does not notice that the peer
    went away (it waits for the handshake until a timeout).  This wrapper calls
    ``on_failure`` at once instead, with the exception (or None for EOF), so
    the handshake fails fast with the real cause, e.g. a TLS alert.
    """

    __slots__ = ("_on_failure", "_stream", "watching")

    def __init__(
        self, stream: trio.abc.Stream, on_failure: Callable[[BaseException | None], None]
    ) -> None:
        self._stream = stream
        self._on_failure = on_failure
        self.watching = True

    @property
    def inner(self) -> trio.abc.Stream:
        """The wrapped stream."""
        return self._stream

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self._stream.receive_some(max_bytes)
        except Exception as exc:
            if self.watching:
                self.watching = False
                self._on_failure(exc)
            raise
        if not data and self.watching:
            self.watching = False
            self._on_failure(None)
        return data

    async def aclose(self) -> None:
        await self._stream.aclose()


class AnswerStream(trio.abc.Stream):
    """A server's stream that notes the HTTP status of the first thing written to it.

    trio-websocket answers a request that is not a valid WebSocket upgrade
    itself (wsproto's HTTP error, e.g. 400 or 426) and ends its reader without
    telling us; the status it wrote is then in :attr:`status`.
    """

    __slots__ = ("_first", "_stream", "status")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._first = True
        #: The status of the HTTP answer written first, if it was not a 101.
        self.status: int | None = None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._first:
            self._first = False
            head = bytes(data[:13])  # b"HTTP/1.1 400 "
            if head.startswith(b"HTTP/1.1 ") and head[9:12].isdigit() and head[9:12] != b"101":
                self.status = int(head[9:12])
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()
