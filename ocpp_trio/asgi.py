"""The CSMS as an ASGI application: OCPP next to a REST API, on one port, under Trio.

``OCPPASGIApp(server)`` serves the WebSocket scope of any ASGI server that
runs on Trio (Hypercorn's Trio worker is the reference; Starlette mounts it
and runs on Trio through AnyIO).  Everything after the upgrade request is the
very code of :class:`~ocpp_trio.server.OCPPServer`'s own listeners
(``OCPPServer.serve_upgrade``): the identity from the path,
``max_connections``, the security profile's credentials, ``auth``, the
duplicate policy, ``server.clients``, the server events and the cluster
adapter behave the same.  Only the WebSocket underneath is the ASGI server's.

Per ``websocket`` scope (ASGI 3, spec 2.3+):

1. ``websocket.connect``; the request target is ``raw_path`` (the whole path
   as sent, also under a Starlette ``Mount``) plus ``query_string``; the
   offered subprotocols are ``scope["subprotocols"]``.
2. A refusal is an HTTP answer through the ``websocket.http.response``
   extension (status, ``WWW-Authenticate`` for 401, a short body without the
   reason, or the list of our subprotocols for ``refuse_unknown_subprotocol``'s
   400); an ASGI server without it gets ``websocket.close`` before
   ``websocket.accept``, which ASGI turns into 403.
3. ``websocket.accept`` with the chosen subprotocol; then an
   :class:`AsgiTransport` (``_websocket/asgi.py``) carries the connection: ``websocket.receive`` in,
   ``websocket.send`` out, ``websocket.close`` / ``websocket.disconnect``.

What an ASGI server does not give, and what to do instead:

- No TLS facts: the scope carries no client certificate, so security profile
  3 cannot bind a certificate to a station.  Serve profile 3 on ocpp_trio's
  own listener (``server.listen``/``serve_listeners`` with a TLS context), or
  terminate mTLS in a trusted proxy that verifies the certificate and passes
  it in a header, and give ``client_certificate=`` (off by default) a
  function that turns the request headers into the ``getpeercert()`` dict.
  Profiles 2 and 3 (the server's, or a station's from ``profile_for``)
  require a TLS scope (``scope["scheme"]`` ``"wss"``; behind a proxy, let
  Hypercorn's ``ProxyFixMiddleware`` set it from ``X-Forwarded-Proto``),
  else 403.  A station ``profile_for`` puts on profile 3 gets 401 here
  unless ``client_certificate`` gives its certificate.
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
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any, Final, TypeAlias, final
from urllib.parse import quote

import trio

from ._server.admission import Refusal, header_map
from ._server.stream import Upgrade
from ._websocket.asgi import ABORT_TIMEOUT, AsgiTransport, Receive, Send
from ._websocket.transport import Transport
from .server import OCPPServer

__all__ = ["AsgiTransport", "ClientCertificate", "OCPPASGIApp"]

log = logging.getLogger("ocpp_trio.server")

Scope: TypeAlias = MutableMapping[str, Any]
#: ``client_certificate(headers)``: the verified client certificate a trusted
#: TLS proxy passed in the (lower-cased) request headers, in the dict form of
#: ``ssl.SSLSocket.getpeercert()``, or None when there is none.
ClientCertificate: TypeAlias = Callable[[Mapping[str, str]], Mapping[str, Any] | None]

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
        self,
        status: int,
        /,
        *,
        extra_headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
    ) -> None:
        self.rejected = True
        extensions = self._scope.get("extensions") or {}
        try:
            if "websocket.http.response" in extensions:
                body = body or f"{status} {HTTPStatus(status).phrase}\n".encode()
                headers = [(bytes(k).lower(), bytes(v)) for k, v in extra_headers]
                if not any(name == b"content-type" for name, _ in headers):
                    headers.append((b"content-type", b"text/plain; charset=utf-8"))
                headers.append((b"content-length", str(len(body)).encode()))
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
        async with self.server.hosted():
            yield self.server

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
        request = _AsgiRequest(scope, send)
        transport: AsgiTransport | None = None
        refusal: Refusal | None = None
        peercert: Mapping[str, Any] | None = None
        if self._client_certificate is not None:
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

        async def cleanup() -> None:
            if transport is not None:
                await transport.abort()
            elif not request.rejected:  # e.g. cancelled during auth: refuse, bounded
                with trio.move_on_after(ABORT_TIMEOUT):
                    await request.reject(503)

        upgrade = Upgrade(
            peercert=peercert,
            accept=accept,
            deadline=deadline,
            options=self._options,
            refusal=refusal,
            tls=scope.get("scheme") in ("wss", "https"),
        )
        await server.serve_upgrade(request, upgrade, remote=_remote(scope), cleanup=cleanup)
