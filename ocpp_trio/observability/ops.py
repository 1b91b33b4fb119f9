"""Operations endpoints: liveness, readiness and the Prometheus metrics, over HTTP.

Three routes, GET or HEAD (anything else is 405, any other path 404):

- ``/health``: liveness.  ``200 ok`` as long as the process's event loop
  answers at all; an orchestrator restarts the process when it stops.
- ``/ready``: readiness.  ``200 ready`` when the OCPP server is serving, is
  not shutting down, and its cluster adapter (if any) reaches its backend
  (:meth:`~ocpp_trio.OCPPServer.readiness`); else ``503`` with the reason
  in plain text.  A load balancer sends stations elsewhere meanwhile.
- ``/metrics``: :meth:`PrometheusMetrics.exposition` in Prometheus's text
  format; 404 when no metrics were given.

Two ways to serve them: :func:`serve_ops`, a small HTTP/1.1 server of its own
on a separate port (``ocpp-trio serve --ops-port``), and :func:`ops_app`,
the same routes as an ASGI application to mount beside
:class:`~ocpp_trio.asgi.OCPPASGIApp`.

:func:`serve_ops` parses HTTP with h11 (RFC 9112) and bounds every connection
the way the OCPP listeners are bounded: at most ``max_connections`` served at
once (the next waits in the kernel's accept backlog), one cancel scope per
request from its first byte (or the end of the previous response) to the end
of its answer, and at most ``max_request_size`` bytes of request head and
body.  A request it cannot parse gets 400 (431 for a head past the bound) and
the connection is closed; nothing a client sends ends the server.  Keep-alive
is honoured within those bounds.  It binds 127.0.0.1 by default: the metrics
say which stations are connected and how busy the CSMS is, so expose them
deliberately (``host="0.0.0.0"`` behind a firewall, or a scrape over a
private network).
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import trio

from .prometheus import CONTENT_TYPE

if TYPE_CHECKING:
    import h11

    from ..server import OCPPServer
    from .prometheus import PrometheusMetrics

__all__ = ["OpsApp", "ops_app", "serve_ops"]

log = logging.getLogger("ocpp_trio.ops")

Scope: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send: TypeAlias = Callable[[MutableMapping[str, Any]], Awaitable[None]]
#: An ASGI 3 application: ``await app(scope, receive, send)``.
OpsApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

_TEXT: Final = "text/plain; charset=utf-8"
_ALLOWED: Final = ("GET", "HEAD")
_RECEIVE_SIZE: Final = 4096
# accept() failures that mean "out of resources, try again shortly" (as trio.serve_listeners)
_ACCEPT_RETRY: Final = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_PAUSE: Final = 0.1
# after an answer that closes the connection: how long and how much to read and drop
_LINGER_TIME: Final = 1.0
_LINGER_BYTES: Final = 65536
_SCRAPE_LOCK: Final = threading.Lock()


async def _answer(
    server: OCPPServer, metrics: PrometheusMetrics | None, method: str, path: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """The response to ``method path``: status, headers (without the length), body."""
    if path not in ("/health", "/ready", "/metrics") or (path == "/metrics" and metrics is None):
        return _text(404, "not found: the routes are /health, /ready and /metrics")
    if method not in _ALLOWED:
        status, headers, body = _text(405, "method not allowed: use GET or HEAD")
        return status, [*headers, ("allow", ", ".join(_ALLOWED))], body
    if path == "/health":
        return _text(200, "ok")
    if path == "/ready":
        ready, reason = server.readiness()
        return _text(200 if ready else 503, reason)
    assert metrics is not None
    return 200, [("content-type", CONTENT_TYPE)], await _exposition(metrics)


async def _exposition(metrics: PrometheusMetrics) -> bytes:
    """The metrics text: in a worker thread under Trio, inline under another event loop.

    Writing it costs some 20 microseconds a line (tens of milliseconds for a
    CSMS with many actions), which the connections' event loop should not
    wait for.  The SDK's collection is made to run beside the recording
    threads; a scrape cancelled meanwhile finishes in its thread first.
    Scrapes take turns: the exporter hands each collection over through
    one queue, which two at once would share.
    """
    try:
        trio.lowlevel.current_task()
    except RuntimeError:  # an ASGI server on another event loop
        return _write(metrics)
    return await trio.to_thread.run_sync(_write, metrics)


def _write(metrics: PrometheusMetrics) -> bytes:
    with _SCRAPE_LOCK:
        return metrics.exposition()


def _text(status: int, text: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", _TEXT), ("cache-control", "no-store")], f"{text}\n".encode()


# --- the HTTP server -------------------------------------------------------------------


async def serve_ops(
    server: OCPPServer,
    metrics: PrometheusMetrics | None,
    port: int,
    host: str = "127.0.0.1",
    *,
    max_connections: int = 16,
    request_timeout: float = 10.0,
    max_request_size: int = 16384,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/health``, ``/ready`` and ``/metrics`` over HTTP/1.1 on ``host:port``.

    ``ops_port = await nursery.start(serve_ops, server, metrics, 9100)``,
    next to the OCPP server's own task.  Runs until cancelled; the
    connections being served are cancelled with it.  It does not stop when
    the OCPP server closes: ``/ready`` then answers 503.

    Args:
        server: the OCPP server whose readiness ``/ready`` reports.
        metrics: what ``/metrics`` serves (give ``metrics.telemetry()`` to
            the server); None: ``/metrics`` is 404.
        port: the TCP port; 0 lets the OS choose (the port given to
            ``task_status``).
        host: the address to bind (default loopback only).
        max_connections: connections served at once; the next one waits
            in the accept backlog until one ends.
        request_timeout: seconds for one request, from its first byte
            (or, on a kept-alive connection, the end of the previous
            response) to the end of its answer; then the connection is
            closed.
        max_request_size: bytes of request head plus body; past it, 431
            (head) or 413 (body) and the connection is closed.
        task_status: receives the port listened on.

    Raises:
        OSError: the address cannot be bound.
        ValueError: a bound that is not positive.
    """
    if max_connections < 1 or request_timeout <= 0 or max_request_size < 1:
        raise ValueError(
            "max_connections, request_timeout and max_request_size must be positive, got "
            f"{max_connections!r}, {request_timeout!r}, {max_request_size!r}"
        )
    listeners = await trio.open_tcp_listeners(port, host=host)
    slots = trio.Semaphore(max_connections)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            await _serve_connection(
                stream, server, metrics, request_timeout=request_timeout, limit=max_request_size
            )
        finally:
            slots.release()

    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, listener, slots, handle, nursery)
        bound: int = listeners[0].socket.getsockname()[1]
        log.info("operations endpoints on %s port %s", host, bound)
        task_status.started(bound)


async def _accept_loop(
    listener: trio.SocketListener,
    slots: trio.Semaphore,
    handle: Callable[[trio.SocketStream], Awaitable[None]],
    nursery: trio.Nursery,
) -> None:
    """Accept while a slot is free; each stream's task releases its slot when it ends."""
    async with listener:
        while True:
            await slots.acquire()
            try:
                stream = await listener.accept()
            except OSError as exc:
                slots.release()
                if exc.errno not in _ACCEPT_RETRY:
                    raise
                log.warning("operations endpoints: accept failed (%s); pausing", exc)
                await trio.sleep(_ACCEPT_PAUSE)
                continue
            except BaseException:
                slots.release()
                raise
            nursery.start_soon(handle, stream)


async def _serve_connection(
    stream: trio.abc.HalfCloseableStream,
    server: OCPPServer,
    metrics: PrometheusMetrics | None,
    *,
    request_timeout: float,
    limit: int,
) -> None:
    """Answer requests on one connection until it closes, fails or runs out of time."""
    import h11

    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limit)
    try:
        while True:
            with trio.move_on_after(request_timeout):
                await _one_exchange(conn, stream, server, metrics, limit)
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                    continue
                if conn.our_state is h11.MUST_CLOSE:
                    await _linger(stream)
            break
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client went away
    except h11.LocalProtocolError:  # pragma: no cover - an answer h11 refused to write
        log.exception("operations endpoints: could not answer")
    finally:
        await trio.aclose_forcefully(stream)


async def _one_exchange(
    conn: h11.Connection,
    stream: trio.abc.HalfCloseableStream,
    server: OCPPServer,
    metrics: PrometheusMetrics | None,
    limit: int,
) -> None:
    """Read one request (within ``limit`` bytes) and answer it, or answer the error."""
    import h11

    request: h11.Request | None = None
    size = 0
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(_RECEIVE_SIZE)
                size += len(data)
                conn.receive_data(bytes(data))  # b"": the peer closed; h11 says what it means
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data) and size > limit:
                await _send(conn, stream, *_text(413, "request too large"), close=True)
                return
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                break
            elif event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                return
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            await _send(conn, stream, *_text(status, HTTPStatus(status).phrase.lower()), close=True)
        return
    method = request.method.decode("ascii", "replace")
    path = request.target.decode("ascii", "replace").partition("?")[0]
    status, headers, body = await _answer(server, metrics, method, path)
    await _send(conn, stream, status, headers, b"" if method == "HEAD" else body, len(body))


async def _linger(stream: trio.abc.HalfCloseableStream) -> None:
    """After an answer that closes: let the client read it before we close.

    Closing a socket with unread input resets the connection, and the reset
    can destroy the answer before the client read it: so shut our side,
    then read and drop what the client is still sending, within a bound of
    time and bytes (RFC 9112 §9.6).
    """
    await stream.send_eof()
    dropped = 0
    with trio.move_on_after(_LINGER_TIME):
        while dropped < _LINGER_BYTES and (data := await stream.receive_some(_RECEIVE_SIZE)):
            dropped += len(data)


async def _send(
    conn: h11.Connection,
    stream: trio.abc.HalfCloseableStream,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    length: int | None = None,
    *,
    close: bool = False,
) -> None:
    import h11

    all_headers = [*headers, ("content-length", str(len(body) if length is None else length))]
    if close:
        all_headers.append(("connection", "close"))
    reason = HTTPStatus(status).phrase.encode()
    out = conn.send(h11.Response(status_code=status, headers=all_headers, reason=reason))
    if body:
        out += conn.send(h11.Data(data=body))
    out += conn.send(h11.EndOfMessage())
    await stream.send_all(out)


# --- the ASGI application ----------------------------------------------------------------


def ops_app(server: OCPPServer, metrics: PrometheusMetrics | None = None) -> OpsApp:
    """``/health``, ``/ready`` and ``/metrics`` as an ASGI application.

    For an application that serves OCPP through
    :class:`~ocpp_trio.asgi.OCPPASGIApp`: mount it beside it, as
    ``Mount("/ops", app=ops_app(server, metrics))`` in Starlette (then
    ``/ops/health``, ``/ops/ready``, ``/ops/metrics``); the routes are read
    after the mount's ``root_path``.  The answers are the same as
    :func:`serve_ops`'s.  It runs under any ASGI server and event loop; under
    Trio (as ``OCPPASGIApp`` needs) the metrics are written in a worker
    thread, elsewhere in the event loop's own.

    HTTP scopes are answered; a ``lifespan`` scope (when it is the whole
    application) is acknowledged; a WebSocket is refused (closed before it
    is accepted: 403).

    Args:
        server: the OCPP server whose readiness ``/ready`` reports.
        metrics: what ``/metrics`` serves; None: ``/metrics`` is 404.

    Raises:
        ValueError: (from the application) a scope type ASGI does not define.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "http":
            path: str = scope.get("path", "/")
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            method: str = scope.get("method", "GET")
            status, headers, body = await _answer(server, metrics, method, path or "/")
            headers = [*headers, ("content-length", str(len(body)))]
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers],
                }
            )
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message.get("type") == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message.get("type") == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    return app
