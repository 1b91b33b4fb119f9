"""The ASGI adapter: a :class:`~ocpp_trio._websocket.transport.Transport` over one accepted ASGI WebSocket.

``ocpp_trio.asgi`` turns a ``websocket`` scope into the server's upgrade
request and, once it sent ``websocket.accept``, hands the connection this
transport: ``websocket.receive`` in, ``websocket.send`` out,
``websocket.close`` / ``websocket.disconnect`` (ASGI 3, spec 2.3+).

ASGI has no ping event (``ping()`` returns at once: the ASGI server's own
pings keep the link alive), and an ASGI application cannot drop the TCP
connection itself (``abort()`` sends ``websocket.close`` 1001, bounded).  The
ASGI server negotiates compression and caps message sizes; the size is
checked again here (1009).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, NoReturn, TypeAlias, final

import trio

from .._core.errors import ConnectionClosed
from .transport import (
    BINARY_REFUSED,
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    CLOSE_UNSUPPORTED_DATA,
)

__all__ = ["AsgiTransport", "Message", "Receive", "Send"]

Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]

#: Bound on sending the close frame when a connection is dropped.
ABORT_TIMEOUT: Final = 1.0


@final
class AsgiTransport:
    """A :class:`~ocpp_trio._websocket.transport.Transport` over one accepted ASGI WebSocket.

    ``ping()`` returns at once (ASGI has no ping); ``abort()`` sends
    ``websocket.close`` 1001 if the WebSocket is still open (bounded), since
    an ASGI application cannot drop the TCP connection itself.
    """

    __slots__ = (
        "_closed",
        "_closed_event",
        "_lock",
        "_max_size",
        "_reading",
        "_receive",
        "_send",
        "_sent_close",
        "_subprotocol",
    )

    def __init__(
        self, receive: Receive, send: Send, *, subprotocol: str | None, max_message_size: int
    ) -> None:
        self._receive = receive
        self._send = send
        self._subprotocol = subprotocol
        self._max_size = max_message_size
        self._lock = trio.StrictFIFOLock()
        self._closed: ConnectionClosed | None = None
        self._closed_event = trio.Event()
        self._reading = False
        self._sent_close: tuple[int, str] | None = None

    @property
    def subprotocol(self) -> str | None:
        return self._subprotocol

    @property
    def close_code(self) -> int | None:
        return self._closed.code if self._closed is not None else None

    @property
    def close_reason(self) -> str:
        return self._closed.reason if self._closed is not None else ""

    def _set_closed(self, code: int, reason: str) -> ConnectionClosed:
        if self._closed is None:
            if self._sent_close is not None:  # our close: report what we sent
                code, reason = self._sent_close
            what = f"{code}: {reason}" if reason else str(code)
            self._closed = ConnectionClosed(f"connection closed ({what})", code=code, reason=reason)
            self._closed_event.set()
        return self._closed

    async def _send_event(self, event: Message) -> None:
        async with self._lock:
            try:
                await self._send(event)
            except OSError as exc:  # ASGI: sending on a closed connection
                raise self._set_closed(CLOSE_ABNORMAL, "") from exc

    async def receive(self) -> str:
        while True:
            if self._closed is not None:
                raise self._closed
            self._reading = True
            try:
                event = await self._receive()
            finally:
                self._reading = False
            kind = event.get("type")
            if kind == "websocket.receive":
                text = event.get("text")
                if text is not None:
                    if len(text) * 4 > self._max_size and len(text.encode()) > self._max_size:
                        await self._fail(
                            CLOSE_MESSAGE_TOO_BIG, f"message larger than {self._max_size} bytes"
                        )
                    return str(text)
                # OCPP-J is text only: a binary message fails the connection.
                await self._fail(CLOSE_UNSUPPORTED_DATA, BINARY_REFUSED)
            if kind == "websocket.disconnect":
                code = event.get("code")
                raise self._set_closed(
                    int(code) if code is not None else 1005, str(event.get("reason") or "")
                )

    async def _fail(self, code: int, reason: str) -> NoReturn:
        """Fail the connection: the close frame, then the closed state raised."""
        await self.aclose(code, reason)
        raise self._set_closed(code, reason)

    async def send(self, text: str) -> None:
        if self._closed is not None:
            raise self._closed
        if self._sent_close is not None:
            raise ConnectionClosed("connection is closing", code=self._sent_close[0])
        await self._send_event({"type": "websocket.send", "text": text})

    async def ping(self, payload: bytes) -> None:
        if self._closed is not None:
            raise self._closed

    async def aclose(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        try:
            if self._closed is None and self._sent_close is None:
                self._sent_close = (code, reason)
                try:
                    await self._send_event(
                        {"type": "websocket.close", "code": code, "reason": reason}
                    )
                except ConnectionClosed:
                    return
            while self._closed is None:
                if self._reading:  # the reader task sees the disconnect
                    await self._closed_event.wait()
                else:
                    try:
                        await self.receive()
                    except ConnectionClosed:
                        return
        finally:
            await self.abort()

    async def abort(self) -> None:
        if self._closed is None and self._sent_close is None:
            self._sent_close = (CLOSE_GOING_AWAY, "connection aborted")
            with trio.move_on_after(ABORT_TIMEOUT):
                try:
                    await self._send_event(
                        {"type": "websocket.close", "code": CLOSE_GOING_AWAY, "reason": ""}
                    )
                except ConnectionClosed:
                    pass
        self._set_closed(CLOSE_ABNORMAL, "")
