"""The trio-websocket backend (``websocket_backend="trio-websocket"``), behind :class:`Transport`.

It wraps trio-websocket's ``WebSocketConnection`` (built on wsproto) over a
stream we opened and own ourselves, so that:

- the stream is always closed, whatever happens (trio-websocket leaks the
  socket when the server closes first or rejects);
- trio-websocket's exceptions become ours (``ConnectionClosed`` with the code
  and reason; ``HandshakeFailed`` / ``HandshakeRejectedStatus`` for the
  opening handshake, as the default driver raises them).

What trio-websocket 0.12.2 cannot do: permessage-deflate (RFC 7692) is not
negotiated (wsproto supports it, but trio-websocket does not pass extensions
through), and inbound pings are answered inside its reader without telling
us.  This module (and with it trio-websocket and wsproto) is imported only
when the backend is selected.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
import trio_websocket

from .._core.errors import ConnectionClosed
from .handshake import HandshakeFailed, HandshakeRejectedStatus
from .transport import (
    BINARY_REFUSED,
    CLOSE_ABNORMAL,
    CLOSE_NORMAL,
    CLOSE_UNSUPPORTED_DATA,
    Transport,
)

log = logging.getLogger("ocpp_trio.transport")

#: trio-websocket's errors a caller may meet (its own close, and a rejected handshake).
TWSConnectionClosed = trio_websocket.ConnectionClosed


#: Bound on the close handshake when this side fails the connection.
_FAIL_TIMEOUT = 1.0


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

    async def receive(self) -> str:
        try:
            msg: str | bytes = await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise _close_of(exc) from None
        if isinstance(msg, str):
            return msg
        # A binary message fails the connection (RFC 6455 §7.4.1), as the
        # default driver does: the close frame, bounded; aclose() then
        # closes the stream whatever happened.
        with trio.move_on_after(_FAIL_TIMEOUT):
            await self.aclose(CLOSE_UNSUPPORTED_DATA, BINARY_REFUSED)
        raise ConnectionClosed(
            f"connection closed ({CLOSE_UNSUPPORTED_DATA}: {BINARY_REFUSED})",
            code=CLOSE_UNSUPPORTED_DATA,
            reason=BINARY_REFUSED,
        )

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
    race or on a garbage request), which would tear down everything in the
    nursery.  This wrapper runs the reader in the real nursery but hands what
    it raises to ``on_error`` instead, so one connection's failure stays with
    that connection; ``on_done``, if given, is called when the reader ends for
    any reason (during the opening handshake: nobody is left to answer).
    """

    __slots__ = ("_nursery", "_on_done", "_on_error")

    def __init__(
        self,
        nursery: trio.Nursery,
        on_error: Callable[[BaseException], None],
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self._nursery = nursery
        self._on_error = on_error
        self._on_done = on_done

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``fn(*args)`` in the real nursery, guarded."""
        on_error, on_done = self._on_error, self._on_done

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                on_error(exc)
            finally:
                if on_done is not None:
                    on_done()

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


def log_reader_end(exc: BaseException) -> None:
    """``on_error`` for a server's reader: what it raised is only worth a DEBUG line."""
    log.debug("websocket reader ended with %s: %s", type(exc).__name__, exc)


async def client_handshake(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    *,
    host: str,
    resource: str,
    subprotocols: Sequence[str],
    headers: Sequence[tuple[bytes, bytes]],
    max_message_size: int,
) -> tuple[Transport, str | None, tuple[tuple[str, str], ...]]:
    """The client's opening handshake over ``stream`` (callers bound the wait).

    trio-websocket's reader task runs in ``nursery``, guarded (what it raises
    ends the handshake instead of the nursery).

    Raises:
        HandshakeRejectedStatus: the server answered with an HTTP error status.
        HandshakeFailed: anything else that stopped the handshake (its
            ``__cause__`` is the underlying error, if any).
    """
    failure: list[BaseException | None] = []
    handshake_scope = trio.CancelScope()

    def on_failure(exc: BaseException | None) -> None:
        failure.append(exc)
        handshake_scope.cancel()

    watched = WatchedStream(stream, on_failure)
    guard = GuardedNursery(nursery, on_failure)
    ws: trio_websocket.WebSocketConnection | None = None
    try:
        with handshake_scope:
            ws = await trio_websocket.wrap_client_stream(
                guard,  # type: ignore[arg-type]
                watched,  # type: ignore[arg-type]
                host,
                resource,
                subprotocols=list(subprotocols),
                extra_headers=list(headers),
                max_message_size=max_message_size,
            )
    except trio_websocket.HandshakeError as exc:
        failure.append(exc)
    watched.watching = False
    if ws is None or handshake_scope.cancelled_caught or failure:
        cause = failure[0] if failure else None
        if isinstance(cause, trio_websocket.ConnectionRejected):
            raise HandshakeRejectedStatus(cause.status_code)
        if cause is None:
            raise HandshakeFailed("the peer closed the connection during the handshake")
        raise HandshakeFailed(f"{type(cause).__name__}: {cause}") from cause
    response_headers = tuple(
        (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
        for k, v in ws.handshake_headers
    )
    return TrioWebsocketTransport(ws, stream), ws.subprotocol, response_headers
