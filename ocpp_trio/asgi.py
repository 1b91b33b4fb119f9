"""The CSMS as an ASGI application: OCPP next to a REST API, on one port, under Trio.

``OCPPASGIApp(server)`` serves the WebSocket scope of any ASGI server that
runs on Trio (Hypercorn's Trio worker is the reference; Starlette mounts it
and runs on Trio through AnyIO).  Everything after the upgrade request is the
very code of :class:`~ocpp_trio.server.OCPPServer`'s own listeners
(``_serve_stream.StreamHandling._upgrade``): the identity from the path,
``max_connections``, the security profile's credentials, ``auth``, the
duplicate policy, ``server.clients``, the server events and the cluster
adapter behave the same.  Only the WebSocket underneath is the ASGI server's.

Per ``websocket`` scope (ASGI 3, spec 2.3+):

1. ``websocket.connect``; the request target is ``raw_path`` (the whole path
   as sent, also under a Starlette ``Mount``) plus ``query_string``; the
   offered subprotocols are ``scope["subprotocols"]``.
2. A refusal is an HTTP answer through the ``websocket.http.response``
   extension (status, ``WWW-Authenticate`` for 401, a short body without the
   reason); an ASGI server without it gets ``websocket.close`` before
   ``websocket.accept``, which ASGI turns into 403.
3. ``websocket.accept`` with the chosen subprotocol; then an
   :class:`AsgiTransport` carries the connection: ``websocket.receive`` in,
   ``websocket.send`` out, ``websocket.close`` / ``websocket.disconnect``.

What an ASGI server does not give, and what to do instead:

- No TLS facts: the scope carries no client certificate, so security profile
  3 cannot bind a certificate to a station.  Serve profile 3 on ocpp_trio's
  own listener (``server.listen``/``serve_listeners`` with a TLS context), or
  terminate mTLS in a trusted proxy that verifies the certificate and passes
  it in a header, and give ``client_certificate=`` (off by default) a
  function that turns the request headers into the ``getpeercert()`` dict.
  Profiles 2 and 3 require a TLS scope (``scope["scheme"]`` ``"wss"``; behind
  a proxy, let Hypercorn's ``ProxyFixMiddleware`` set it from
  ``X-Forwarded-Proto``), else 403.
- No pings: ASGI has no ping event.  Connections served here run with
  ``ping_interval=0`` (``AsgiTransport.ping`` returns at once); the ASGI
  server's own pings keep the link alive (Hypercorn:
  ``config.websocket_ping_interval``).
- Close codes: the ASGI server reports the peer's close as it likes;
  Hypercorn reports 1006 whatever code the station sent.  Our own closes send
  the code and reason asked for.
- Compression and message size: negotiated and enforced by the ASGI server
  (Hypercorn offers permessage-deflate and caps messages at
  ``websocket_max_message_size``); the server's ``compression`` option does
  not apply; ``max_message_size`` is checked again here (1009).
- Shutdown: Hypercorn stops accepting when its ``shutdown_trigger`` returns
  and cancels open WebSockets after ``graceful_timeout``.  Close the stations
  first (``await ocpp.close()`` at the end of the trigger) so each gets 1001.

Only Trio: called under asyncio (or any other loop) the app raises
``RuntimeError`` at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any, Final, TypeAlias, final
from urllib.parse import quote

import trio

from ._core.errors import ConnectionClosed
from ._server.admission import Refusal, header_map
from ._server.stream import Upgrade, _Peer
from ._websocket.transport import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    Transport,
)
from .server import OCPPServer

__all__ = ["AsgiTransport", "ClientCertificate", "OCPPASGIApp"]

log = logging.getLogger("ocpp_trio.server")

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
#: ``client_certificate(headers)``: the verified client certificate a trusted
#: TLS proxy passed in the (lower-cased) request headers, in the dict form of
#: ``ssl.SSLSocket.getpeercert()``, or None when there is none.
ClientCertificate: TypeAlias = Callable[[Mapping[str, str]], Mapping[str, Any] | None]

#: Bound on sending the close frame when a connection is dropped.
_ABORT_TIMEOUT: Final = 1.0
_HTTP_BODY: Final = (
    b"This is an OCPP-J WebSocket endpoint: connect with a WebSocket client "
    b"(Upgrade: websocket) and an OCPP subprotocol.\n"
)


def _require_trio() -> None:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        raise RuntimeError(
            "ocpp_trio.asgi runs only under Trio: serve it with Hypercorn's Trio worker "
            "(hypercorn.trio.serve, or `hypercorn --worker-class trio`), not under asyncio"
        ) from None


@final
class AsgiTransport:
    """A :class:`~ocpp_trio._transport.Transport` over one accepted ASGI WebSocket.

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

    async def receive(self) -> str | bytes:
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
                        await self._too_big()
                    return str(text)
                data = bytes(event.get("bytes") or b"")
                if len(data) > self._max_size:
                    await self._too_big()
                return data
            if kind == "websocket.disconnect":
                code = event.get("code")
                raise self._set_closed(
                    int(code) if code is not None else 1005, str(event.get("reason") or "")
                )

    async def _too_big(self) -> None:
        reason = f"message larger than {self._max_size} bytes"
        await self.aclose(CLOSE_MESSAGE_TOO_BIG, reason)
        raise self._set_closed(CLOSE_MESSAGE_TOO_BIG, reason)

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
            with trio.move_on_after(_ABORT_TIMEOUT):
                try:
                    await self._send_event(
                        {"type": "websocket.close", "code": CLOSE_GOING_AWAY, "reason": ""}
                    )
                except ConnectionClosed:
                    pass
        self._set_closed(CLOSE_ABNORMAL, "")


class _AsgiRequest:
    """The upgrade request of a ``websocket`` scope, as the server's handshake reads it."""

    __slots__ = ("_scope", "_send", "path", "rejected")

    def __init__(self, scope: Scope, send: Send) -> None:
        self._scope = scope
        self._send = send
        raw = scope.get("raw_path")
        path = bytes(raw).decode("latin-1") if raw else quote(str(scope.get("path") or "/"))
        query = bytes(scope.get("query_string") or b"").decode("latin-1")
        self.path = f"{path}?{query}" if query else path
        self.rejected = False

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in self._scope.get("headers") or ()]

    @property
    def proposed_subprotocols(self) -> tuple[str, ...]:
        return tuple(str(p) for p in self._scope.get("subprotocols") or ())

    async def reject(
        self, status: int, /, *, extra_headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        self.rejected = True
        extensions = self._scope.get("extensions") or {}
        try:
            if "websocket.http.response" in extensions:
                body = f"{status} {HTTPStatus(status).phrase}\n".encode()
                headers = [(bytes(k).lower(), bytes(v)) for k, v in extra_headers]
                headers += [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await self._send(
                    {"type": "websocket.http.response.start", "status": status, "headers": headers}
                )
                await self._send({"type": "websocket.http.response.body", "body": body})
            else:  # ASGI: a close before the accept is answered with 403
                await self._send({"type": "websocket.close", "code": 1008, "reason": ""})
        except OSError:
            pass  # the station went away


def _remote(scope: Scope) -> tuple[str, int] | None:
    client = scope.get("client")
    if client is None or len(client) < 2:
        return None
    return (str(client[0]), int(client[1]))


@final
class OCPPASGIApp:
    """An :class:`~ocpp_trio.server.OCPPServer` as an ASGI application (Trio only).

    Mount it where stations connect (``Mount("/ocpp", app=ocpp)`` in
    Starlette: a station then connects to ``/ocpp/<identity>``) or give it
    to the ASGI server as the whole application.  The server's handler,
    ``auth``, options, events, ``clients``, ``call_station`` and cluster
    adapter apply as with its own listeners; its ``ssl_context`` and
    ``compression`` do not (TLS and compression are the ASGI server's).
    HTTP requests get ``426 Upgrade Required``.

    Run the server's background part (the cluster adapter) and close the
    stations on exit with ``async with ocpp.running():``, or with
    ``lifespan=ocpp.lifespan`` in Starlette; as the top-level application it
    answers the ASGI ``lifespan`` scope itself.  Without either, stations
    are served all the same, without cluster presence.

    Args:
        server: the server whose decisions and handler apply.  Serve it
            either here or with its own ``listen``/``serve_listeners``.
        client_certificate: opt-in, for profile 3 behind a trusted TLS
            proxy: ``client_certificate(headers)`` returns the certificate
            the proxy verified, in ``getpeercert()`` dict form, or None.
            Only use it when the proxy strips that header from what clients
            send.

    Raises:
        ValueError: security profile 3 without ``client_certificate``.
    """

    def __init__(
        self, server: OCPPServer, *, client_certificate: ClientCertificate | None = None
    ) -> None:
        if server.security_profile.requires_client_cert and client_certificate is None:
            raise ValueError(
                "security profile 3 needs the client certificate, which ASGI servers do not "
                "pass on: serve profile 3 with OCPPServer.listen()/serve_listeners(), or give "
                "client_certificate= to read it from a trusted TLS proxy's header"
            )
        self.server = server
        self._client_certificate = client_certificate
        self._options = server.options.replace(ping_interval=0)

    def __repr__(self) -> str:
        return f"<OCPPASGIApp {self.server!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point (``websocket``, ``http`` and ``lifespan`` scopes)."""
        _require_trio()
        kind = scope.get("type")
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    # --- lifetime ----------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[OCPPServer]:
        """Run the server's background tasks (cluster) here; close it on exit.

        Raises:
            RuntimeError: the server is already serving, or closed.
        """
        server = self.server
        if server._serving or server._closing:
            raise RuntimeError("this server is already serving or closed; create a new one")
        server._serving = True
        async with trio.open_nursery() as nursery:
            # Always run the cluster glue (a LocalAdapter unless one was set):
            # call_station() creates it on first use, and closing a glue that
            # never ran would wait for its release queue in vain.
            await nursery.start(server._glue().run)
            try:
                yield server
            finally:
                await server.close()

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """Starlette's ``lifespan=`` hook: ``Starlette(..., lifespan=ocpp.lifespan)``.

        :meth:`running` for the application's lifetime; it yields no state.
        """
        async with self.running():
            yield

    async def close(
        self, reason: str = "server shutting down", *, await_pending: bool = False
    ) -> None:
        """Close every station with 1001 and refuse new ones (``OCPPServer.close``)."""
        await self.server.close(reason, await_pending=await_pending)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        event = await receive()
        if event.get("type") != "lifespan.startup":
            return
        try:
            async with self.running():
                await send({"type": "lifespan.startup.complete"})
                while (await receive()).get("type") != "lifespan.shutdown":
                    pass
        except Exception as exc:
            await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})

    # --- scopes --------------------------------------------------------------------

    async def _http(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 426,
                "headers": [
                    (b"upgrade", b"websocket"),
                    (b"connection", b"Upgrade"),
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(_HTTP_BODY)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _HTTP_BODY})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive()).get("type") != "websocket.connect":
            return  # disconnected already
        server = self.server
        deadline = trio.current_time() + server.handshake_timeout
        peer = _Peer()
        peer.remote = _remote(scope)
        request = _AsgiRequest(scope, send)
        transport: AsgiTransport | None = None
        refusal: Refusal | None = None
        peercert: Mapping[str, Any] | None = None
        if server.security_profile.requires_tls and scope.get("scheme") not in ("wss", "https"):
            refusal = Refusal(
                403, f"security profile {int(server.security_profile)} requires TLS (wss)"
            )
        elif self._client_certificate is not None:
            try:
                peercert = self._client_certificate(header_map(request.headers))
            except Exception as exc:
                log.error("client_certificate raised %s", type(exc).__name__, exc_info=exc)
                refusal = Refusal(500, f"client_certificate raised {type(exc).__name__}")

        async def accept(protocol: str | None) -> Transport | None:
            nonlocal transport
            try:
                await send({"type": "websocket.accept", "subprotocol": protocol, "headers": []})
            except OSError:
                return None
            transport = AsgiTransport(
                receive,
                send,
                subprotocol=protocol,
                max_message_size=self._options.max_message_size,
            )
            return transport

        async def body() -> None:
            await server._upgrade(
                peer,
                request,
                Upgrade(
                    peercert=peercert,
                    accept=accept,
                    deadline=deadline,
                    options=self._options,
                    refusal=refusal,
                ),
            )

        async def cleanup() -> None:
            if transport is not None:
                await transport.abort()
            elif not request.rejected:  # e.g. cancelled during auth: refuse, bounded
                with trio.move_on_after(_ABORT_TIMEOUT):
                    await request.reject(503)

        await server._guarded(peer, body, cleanup)
