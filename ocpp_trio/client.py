"""The charging-station side: ``open_ocpp_client`` and its reconnect loop.

Theory of operation.  ``open_ocpp_client`` opens a nursery, connects once
(or keeps trying with ``retry_initial_connect``), and yields an
:class:`OCPPClient`.  A supervisor task owns the connections: for each attempt
it opens TCP (and TLS, with the TLS handshake run explicitly so its failure is
reported with its cause), runs the WebSocket handshake under
``connect_timeout``, and then runs an :class:`OCPPConnection` until it closes.
When the connection drops and ``reconnect`` is on it waits and connects again:

- delays grow exponentially from ``backoff_min`` to at most ``backoff_max``,
  with jitter (a random share ``backoff_jitter`` of each delay is taken off);
- the attempt counter is reset only after a connection stayed open for
  ``backoff_reset_after`` seconds, so a server that accepts and drops at once
  does not cause a tight loop;
- after the first success every reconnect offers only the subprotocol first
  negotiated (a station does not change version under the CSMS's feet);
- handlers and event callbacks live on the client and survive reconnects;
- calls made while disconnected wait for the next connection within their own
  timeout (in FIFO order, at most ``max_queued_calls`` waiting), or fail with
  ``CallTimeout``; none is dropped silently.
"""

from __future__ import annotations

import logging
import math
import os
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar, Unpack, cast, overload
from urllib.parse import quote, urlencode, urlsplit

import trio

from ._core.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    HandshakeRejected,
    OCPPError,
    ProtocolNegotiationError,
    ProtocolStateError,
    TLSError,
)
from ._core.frames import new_message_id
from ._core.protocol import Role
from ._rpc.connection import OCPPConnection, apply_options, hold_calls_until, run_connection
from ._rpc.link import Link
from ._rpc.logsafe import log_safe
from ._rpc.options import ConnectionKwargs, ConnectionOptions, split_options
from ._rpc.outbound import parse_call_args, prepare_validators, run_call
from ._rpc.state import ConnectionState
from ._rpc.surface import HandlerSurface
from ._version import package_ident
from ._websocket.deflate import DEFAULT_COMPRESSION_THRESHOLD, check_threshold
from ._websocket.handshake import HandshakeFailed, HandshakeRejectedStatus, client_handshake
from ._websocket.transport import (
    CLOSE_NORMAL,
    HandshakeInfo,
    Transport,
    WebSocketBackend,
)
from .events import ConnectingEvent, ErrorEvent, EventEmitter, LimitEvent, ReconnectEvent
from .observability._recorder import make_observer
from .observability.framelog import FrameLog
from .observability.telemetry import Telemetry
from .outbox import Outbox, OutboxHandle, OutboxStore
from .routing import Handler, Router
from .security import SecurityProfile, basic_auth_header, client_ssl_context
from .types import Action, SendAction

log = logging.getLogger("ocpp_trio.client")

F = TypeVar("F", bound=Handler)
Req = TypeVar("Req")
Res = TypeVar("Res")


def build_url(endpoint: str, identity: str, query: Mapping[str, str] | None = None) -> str:
    """``endpoint`` + ``/`` + the percent-encoded identity (+ ``?query``)."""
    if not identity:
        raise ValueError("identity must not be empty")
    url = endpoint.rstrip("/") + "/" + quote(identity, safe="")
    if query:
        url += "?" + urlencode(dict(query))
    return url


def _tls_cause(exc: BaseException) -> BaseException:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return exc


def _describe_tls(exc: BaseException) -> str:
    cause = _tls_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"server certificate rejected: {cause.verify_message}"
    if isinstance(cause, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "the server closed the connection during TLS setup (client certificate missing or rejected?)"
    if isinstance(cause, ssl.SSLError):
        return f"{cause.reason or type(cause).__name__}: {cause}"
    return f"connection lost during TLS setup ({type(exc).__name__})"


class ClientKwargs(ConnectionKwargs, total=False):
    """The options of :func:`open_ocpp_client`, as keyword arguments, every one optional.

    The connection options (:class:`ConnectionKwargs`: ``call_timeout``,
    ``strict_mode``, ``ping_interval``, ...) and these:

    Attributes:
        security_profile: 0-3 (``SecurityProfile``); 1 and 2 need
            ``password``, 2 and 3 a ``wss://`` endpoint, 3 an ``ssl_context``
            with the client certificate.  Default 0.
        password: the Basic Auth password (profiles 1 and 2); never logged.
        ssl_context: the TLS context for ``wss://`` (default: a verifying
            client context).
        headers: extra HTTP headers of the upgrade request.
        query: a query string to append to the URL.
        reconnect: reconnect when the connection drops (default True).
        max_reconnects: consecutive failed attempts before giving up
            (default ``math.inf``).
        backoff_min: the first reconnect delay, in seconds (default 1).
        backoff_max: the longest reconnect delay (default 30).
        backoff_jitter: the random share taken off each delay, 0-1
            (default 0.5).
        backoff_reset_after: seconds a connection must stay open before the
            attempt count starts again (default 30).
        retry_initial_connect: keep trying when the very first connection
            fails instead of raising (default False).
        connect_timeout: bound on TCP + TLS + WebSocket handshake (default 10).
        max_queued_calls: ``call()``s in progress at once, waiting ones
            included; one more raises ``ProtocolStateError`` (default 1000).
        id_factory: makes the message ids of our CALLs.
        rng: a ``random.Random`` for the jitter (default: the ``random``
            module's).
        open_stream: an async ``(host, port) -> trio.abc.Stream`` that
            replaces TCP, e.g. for in-memory tests or a proxy.
        compression: offer permessage-deflate (default False).
        compression_threshold: messages below it, in bytes, go uncompressed
            (default 1,024).
        compression_context_takeover: let both ends keep their zlib streams
            from one message to the next (smaller large messages, more memory,
            and Node's ``ws`` servers then compress every message); by default
            the offer asks for no context takeover either way.
        websocket_backend: ``"websockets"`` (the default) or
            ``"trio-websocket"``.
        wait_connected: False enters the ``async with`` body at once and
            keeps connecting meanwhile (a station that starts offline with an
            outbox); connection failures are ``error`` events then
            (default True).
        backoff: a function of the attempt number (from 0) giving the delay
            before the next reconnect; replaces ``backoff_min``,
            ``backoff_max`` and ``backoff_jitter`` (e.g.
            ``ocpp_trio.outbox.retry_backoff(...)``, OCPP 2.x's rule).
        outbox: the durable outbox: an ``ocpp_trio.outbox.Outbox``, a file
            path (the default SQLite store) or an ``OutboxStore``; see
            :meth:`OCPPClient.enqueue`.
        telemetry: metrics and spans (``ocpp_trio.observability.Telemetry``);
            None records none.
        frame_log: the structured frame log
            (``ocpp_trio.observability.FrameLog``); None writes none.
    """

    security_profile: SecurityProfile | int
    password: bytes | str | None
    ssl_context: ssl.SSLContext | None
    headers: Mapping[str, str] | None
    query: Mapping[str, str] | None
    reconnect: bool
    max_reconnects: float
    backoff_min: float
    backoff_max: float
    backoff_jitter: float
    backoff_reset_after: float
    retry_initial_connect: bool
    connect_timeout: float
    max_queued_calls: int
    id_factory: Callable[[], str]
    rng: random.Random | None
    open_stream: Callable[[str, int], Awaitable[trio.abc.Stream]] | None
    compression: bool
    compression_threshold: int
    compression_context_takeover: bool
    websocket_backend: WebSocketBackend
    wait_connected: bool
    backoff: Callable[[int], float] | None
    outbox: Outbox | str | os.PathLike[str] | OutboxStore | None
    telemetry: Telemetry | None
    frame_log: FrameLog | None


class OCPPClient(HandlerSurface):
    """A charging station's OCPP-J client; stays the same object across reconnects.

    Get one from :func:`open_ocpp_client`.  Its ``call``/``send``/``handle``/``on``
    work like :class:`~ocpp_trio.OCPPConnection`'s.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        identity: str,
        protocols: Sequence[str],
        options: ConnectionOptions,
        security_profile: SecurityProfile | int = SecurityProfile.NONE,
        password: bytes | str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        reconnect: bool = True,
        max_reconnects: float = math.inf,
        backoff_min: float = 1.0,
        backoff_max: float = 30.0,
        backoff_jitter: float = 0.5,
        backoff_reset_after: float = 30.0,
        retry_initial_connect: bool = False,
        wait_connected: bool = True,
        backoff: Callable[[int], float] | None = None,
        connect_timeout: float = 10.0,
        max_queued_calls: int = 1000,
        id_factory: Callable[[], str] = new_message_id,
        rng: random.Random | None = None,
        open_stream: Callable[[str, int], Awaitable[trio.abc.Stream]] | None = None,
        compression: bool = False,
        compression_threshold: int = DEFAULT_COMPRESSION_THRESHOLD,
        compression_context_takeover: bool = False,
        websocket_backend: WebSocketBackend = "websockets",
        outbox: Outbox | str | os.PathLike[str] | OutboxStore | None = None,
        telemetry: Telemetry | None = None,
        frame_log: FrameLog | None = None,
    ) -> None:
        if not protocols or any(not isinstance(p, str) or not p for p in protocols):
            raise ValueError("protocols must be a non-empty list of subprotocol names")
        if not 0 < backoff_min <= backoff_max:
            raise ValueError("need 0 < backoff_min <= backoff_max")
        if not 0 <= backoff_jitter <= 1:
            raise ValueError("backoff_jitter must be within [0, 1]")
        profile = SecurityProfile(security_profile)
        self.url = build_url(endpoint, identity, query)
        parts = urlsplit(self.url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"endpoint must be a ws:// or wss:// URL, got {parts.scheme!r}")
        if profile.requires_tls and parts.scheme != "wss":
            raise ValueError(f"security profile {int(profile)} requires a wss:// endpoint")
        if profile.requires_password and password is None:
            raise ValueError(f"security profile {int(profile)} requires a password")
        if profile.requires_client_cert and ssl_context is None:
            raise ValueError(
                "security profile 3 requires an ssl_context holding the client certificate"
            )
        if options.registration_gate is not None:
            raise ValueError("registration_gate is a CSMS option; a station has no use for it")
        self.identity = identity
        self.security_profile = profile
        self._protocols = list(protocols)
        self._options = options
        self._host = parts.hostname or "localhost"
        self._tls = parts.scheme == "wss"
        self._port = parts.port or (443 if self._tls else 80)
        host_header = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port:
            host_header += f":{parts.port}"
        self._host_header = host_header
        self._resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ssl_context = ssl_context
        if self._tls and ssl_context is None:
            self._ssl_context = client_ssl_context(profile=SecurityProfile.TLS_BASIC_AUTH)
        extra: dict[str, str] = {"User-Agent": package_ident()}
        extra.update(headers or {})
        if password is not None:
            name, value = basic_auth_header(identity, password)
            extra[name] = value
        self._headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        self._reconnect = reconnect
        self._max_reconnects = max_reconnects
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._backoff_jitter = backoff_jitter
        self._backoff_reset_after = backoff_reset_after
        self._retry_initial = retry_initial_connect
        self._wait_connected = wait_connected
        self._backoff = backoff
        self._connect_timeout = connect_timeout
        self._max_queued_calls = max_queued_calls
        self._id_factory = id_factory
        self._rng = rng  # None: the random module's shared generator (no seeding per client)
        self._open_stream = open_stream or trio.open_tcp_stream
        if websocket_backend not in ("websockets", "trio-websocket"):
            raise ValueError(
                f"websocket_backend must be 'websockets' or 'trio-websocket', got {websocket_backend!r}"
            )
        self._backend = websocket_backend
        self._compression = compression
        check_threshold(compression_threshold)
        self._compression_threshold = compression_threshold
        self._compression_context_takeover = bool(compression_context_takeover)
        self._ws_url = f"{parts.scheme}://{self._host_header}{self._resource}"
        super().__init__(Router(), EventEmitter())
        self._limiter = trio.CapacityLimiter(options.call_concurrency)
        self._conn: OCPPConnection | None = None
        self._state = ConnectionState.CONNECTING
        self._ready = trio.Event()
        self._closed = trio.Event()
        self._closing = False
        self._calls_open = 0  # calls in progress (max_queued_calls, max_pending_calls)
        # Set when open_ocpp_client hands the client to its body (see there).
        self._entered = trio.Event()
        self._reconnects = 0
        self.protocol: str | None = None
        self._last_error: str | None = None  # text only: an exception here would be a cycle
        if outbox is None or isinstance(outbox, Outbox):
            self._outbox = outbox
        else:
            self._outbox = Outbox(outbox)
        self._telemetry = telemetry
        self._observer = make_observer(telemetry, frame_log, "station")

    def __repr__(self) -> str:
        return f"<OCPPClient identity={self.identity!r} url={self.url!r} state={self._state.name}>"

    # --- public surface --------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """CONNECTING (also while reconnecting), OPEN, CLOSING or CLOSED."""
        return self._state

    @property
    def options(self) -> ConnectionOptions:
        """The connection options in force."""
        return self._options

    @property
    def connection(self) -> OCPPConnection | None:
        """The current connection, if one is open."""
        return self._conn

    @property
    def reconnects(self) -> int:
        """How many times the client has reconnected so far."""
        return self._reconnects

    @property
    def outbox(self) -> Outbox | None:
        """The durable outbox (``outbox=`` option), or None."""
        return self._outbox

    @property
    def offered_protocols(self) -> Sequence[str]:
        """The subprotocols offered on the next connection attempt."""
        return tuple(self._protocols)

    def reconfigure(self, **options: Unpack[ConnectionKwargs]) -> None:
        """Change connection options at run time; applies to this and later connections.

        Takes the keywords of :class:`ConnectionKwargs` (``call_timeout=5``,
        ``strict_mode=True``, ...).

        Raises:
            TypeError: an unknown option (the client's own options, such as
                ``reconnect``, cannot be changed here).
            ValueError: a bad value.
        """
        self._options = self._options.replace(**options)
        self._limiter.total_tokens = self._options.call_concurrency
        if self._conn is not None:
            apply_options(self._conn, self._options)

    @overload
    async def call(self, message: Action[Any, Res], /, *, timeout: float | None = None) -> Res: ...
    @overload
    async def call(
        self, method: str, params: Mapping[str, Any] = ..., /, *, timeout: float | None = None
    ) -> dict[str, Any]: ...
    @overload
    async def call(
        self,
        protocol: str,
        method: str,
        params: Mapping[str, Any],
        /,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]: ...

    async def call(self, *args: Any, timeout: float | None = None) -> Any:
        """Send a CALL and return the result; see ``OCPPConnection.call``.

        While the client is reconnecting the call waits for the connection
        within its timeout.  Raises ``ProtocolStateError`` when
        ``max_queued_calls`` calls are already waiting.

        With an outbox, the actions it queues (the transaction messages by
        default) go through it: stored first, then awaited within the
        timeout (``CallTimeout`` leaves them queued; ``MessageDropped`` when
        given up); the others wait for the registration gate first (see
        ``Outbox``'s ``hold_until_accepted``).
        """
        protocol, method, params = parse_call_args(args)
        if self._outbox is not None:
            return await self._outbox.call(protocol, method, params, timeout)
        return await self.call_direct(protocol, method, params, timeout)

    async def call_direct(
        self,
        protocol: str | None,
        method: str,
        params: Mapping[str, Any],
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """``call()`` past the outbox and its registration gate (e.g. a triggered message).

        Also what the outbox sends its messages with.  A BootNotification's
        answer still tells the outbox the registration status.
        """
        if self._calls_open >= self._max_queued_calls:
            raise ProtocolStateError(
                f"{self._calls_open} calls already waiting, at most max_queued_calls="
                f"{self._max_queued_calls}"
            )
        limit = self._options.max_pending_calls
        if self._calls_open >= limit:
            text = f"{self._calls_open} calls already pending, at most max_pending_calls={limit:g}"
            self._limit_reached("max_pending_calls", limit, text, method)
            raise ProtocolStateError(text)
        self._calls_open += 1
        try:
            result = await run_call(self, self._limiter, protocol, method, params, timeout)
        finally:
            self._calls_open -= 1
        if method == "BootNotification" and self._outbox is not None:
            self._outbox.observe_boot(result)
        return result

    @overload
    async def enqueue(
        self, message: Action[Any, Any], /, *, transaction_of: OutboxHandle | int | None = None
    ) -> OutboxHandle: ...
    @overload
    async def enqueue(
        self,
        method: str,
        params: Mapping[str, Any] = ...,
        /,
        *,
        transaction_of: OutboxHandle | int | None = None,
    ) -> OutboxHandle: ...
    @overload
    async def enqueue(
        self,
        protocol: str,
        method: str,
        params: Mapping[str, Any],
        /,
        *,
        transaction_of: OutboxHandle | int | None = None,
    ) -> OutboxHandle: ...

    async def enqueue(
        self, *args: Any, transaction_of: OutboxHandle | int | None = None
    ) -> OutboxHandle:
        """Store a message in the outbox and return its handle; it is on disk when this returns.

        Takes what ``call()`` takes.  The outbox delivers it when it can, in
        order, retried per its rules; ``await handle.result()`` waits for the
        answer, the ``outbox_*`` events report without waiting.

        Args:
            transaction_of: OCPP 1.6: the handle (or seq) of the
                StartTransaction whose ``transactionId`` this StopTransaction
                or MeterValues needs: the outbox writes the id the CSMS
                assigns into the payload before sending it (put any integer
                there meanwhile).

        Raises:
            RuntimeError: the client has no outbox.
            trio.ClosedResourceError: the client is closed.

        Cancelled, the message may or may not have been stored (``outbox.pending()`` tells).
        """
        if self._outbox is None:
            raise RuntimeError("this client has no outbox: pass outbox= to open_ocpp_client")
        protocol, method, params = parse_call_args(args)
        return await self._outbox.enqueue(protocol, method, params, transaction_of=transaction_of)

    def _limit_reached(self, limit: str, value: float, description: str, method: str) -> None:
        log.info("%s: %s reached (%s)", log_safe(self.identity), limit, description)
        self._emitter.emit(
            "limit",
            LimitEvent(limit=limit, value=value, description=description, method=method),
        )

    @overload
    async def send(self, message: SendAction[Any], /) -> None: ...
    @overload
    async def send(self, method: str, params: Mapping[str, Any] = ..., /) -> None: ...
    @overload
    async def send(self, protocol: str, method: str, params: Mapping[str, Any], /) -> None: ...

    async def send(self, *args: Any) -> None:
        """OCPP 2.1 SEND on the current connection (not queued while reconnecting)."""
        conn = self._current()
        await conn.send(*args)

    async def send_raw(self, text: str) -> None:
        """Write ``text`` unchecked on the current connection."""
        await self._current().send_raw(text)

    def _current(self) -> OCPPConnection:
        conn = self._conn
        if conn is None or conn.state is not ConnectionState.OPEN:
            if self._closing:
                raise trio.ClosedResourceError("the client is closed")
            raise ConnectionClosed("not connected (reconnecting)")
        return conn

    def _open_connection(self) -> OCPPConnection | None:
        """The open connection; None while (re)connecting; raises once closed for good."""
        if self._closing:
            raise trio.ClosedResourceError("the client is closed")
        if self._state is ConnectionState.CLOSED:
            raise ConnectionClosed(
                "the client gave up reconnecting"
                + (f": {self._last_error}" if self._last_error else "")
            )
        conn = self._conn
        if conn is not None and conn.state is ConnectionState.OPEN:
            return conn
        return None

    def open_link(self) -> Link | None:
        """For ``run_call``: the open connection's link; None while (re)connecting."""
        conn = self._open_connection()
        return conn.open_link() if conn is not None else None

    async def wait_link(self) -> Link:
        """For ``run_call``: wait for an open connection (within the call's scope)."""
        while True:
            conn = self._open_connection()
            if conn is not None:
                return conn.open_link()
            await self._ready.wait()

    async def close(
        self,
        code: int = CLOSE_NORMAL,
        reason: str = "",
        *,
        await_pending: bool = False,
        force: bool = False,
    ) -> None:
        """Close the connection and stop reconnecting; idempotent.

        See ``OCPPConnection.close`` for the arguments.  Callers waiting for a
        reconnect fail with ``trio.ClosedResourceError``.
        """
        if self._state is ConnectionState.CLOSED:
            return
        self._closing = True
        self._wake_waiters()
        conn = self._conn
        if conn is not None:
            self._state = ConnectionState.CLOSING
            await conn.close(code, reason, await_pending=await_pending, force=force)
        self._state = ConnectionState.CLOSED
        self._closed.set()

    async def wait_closed(self) -> None:
        """Wait until the client is closed for good (closed, or gave up reconnecting)."""
        await self._closed.wait()

    def _is_closing(self) -> bool:
        # a method, so that type checkers do not narrow the flag across awaits
        return self._closing

    def _wake_waiters(self) -> None:
        self._ready.set()
        self._ready = trio.Event()

    # --- connecting -------------------------------------------------------------

    def _next_delay(self, attempt: int) -> float:
        if self._backoff is not None:
            return float(self._backoff(attempt))
        base = min(self._backoff_max, self._backoff_min * 2.0 ** min(attempt, 60))
        share = self._rng.random() if self._rng is not None else random.random()
        return float(base * (1.0 - self._backoff_jitter * share))

    async def _open(self, nursery: trio.Nursery, protocols: Sequence[str]) -> OCPPConnection:
        """Connect once: TCP, TLS, WebSocket handshake, all within connect_timeout."""
        stream: trio.abc.Stream | None = None
        with trio.move_on_after(self._connect_timeout):
            try:
                tcp = await self._open_stream(self._host, self._port)
            except OSError as exc:
                raise ConnectError(
                    f"cannot connect to {self._host}:{self._port}: {exc.strerror or exc}"
                ) from exc
            stream = tcp
            try:
                if self._tls:
                    assert self._ssl_context is not None
                    tls = trio.SSLStream(tcp, self._ssl_context, server_hostname=self._host)
                    stream = tls
                    try:
                        await tls.do_handshake()
                    except (trio.BrokenResourceError, ssl.SSLError) as exc:
                        raise TLSError(
                            f"TLS handshake with {self._host}:{self._port} failed: {_describe_tls(exc)}"
                        ) from _tls_cause(exc)
                if self._backend == "websockets":
                    transport, sub, response_headers = await self._handshake_websockets(
                        stream, protocols
                    )
                else:
                    transport, sub, response_headers = await self._handshake_trio_websocket(
                        nursery, stream, protocols
                    )
            except BaseException:
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
                raise
            return await self._connected(transport, sub, response_headers, protocols)
        raise ConnectTimeout(
            f"no WebSocket connection to {self._host}:{self._port} within {self._connect_timeout:g} s"
        )

    async def _connected(
        self,
        transport: Transport,
        sub: str | None,
        response_headers: tuple[tuple[str, str], ...],
        protocols: Sequence[str],
    ) -> OCPPConnection:
        if sub is None or sub not in protocols:
            with trio.CancelScope(shield=True):
                await transport.abort()
            offered = ", ".join(protocols)
            raise ProtocolNegotiationError(
                f"the server accepted none of the offered subprotocols ({offered})"
                if sub is None
                else f"the server chose {sub!r}, which was not offered ({offered})"
            )
        conn = OCPPConnection(
            transport,
            identity=self.identity,
            protocol=sub,
            role=Role.CLIENT,
            options=self._options,
            router=self._router,
            emitter=self._emitter,
            limiter=self._limiter,
            handshake=HandshakeInfo(
                path=self._resource,
                subprotocol=sub,
                response_headers=response_headers,
                remote=(self._host, self._port),
            ),
            id_factory=self._id_factory,
            recorder=None
            if self._observer is None
            else self._observer.connection(self.identity, sub),
        )
        if not self._entered.is_set():
            hold_calls_until(conn, self._entered)
        return conn

    async def _handshake_websockets(
        self, stream: trio.abc.Stream, protocols: Sequence[str]
    ) -> tuple[Transport, str | None, tuple[tuple[str, str], ...]]:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._headers]
        try:
            ws, response = await client_handshake(
                stream,
                self._ws_url,
                subprotocols=protocols,
                headers=headers,
                max_message_size=self._options.max_message_size,
                compression=self._compression,
                compression_threshold=self._compression_threshold,
                compression_context_takeover=self._compression_context_takeover,
            )
        except HandshakeRejectedStatus as exc:
            raise HandshakeRejected(exc.status) from None
        except HandshakeFailed as exc:
            raise self._handshake_failure(exc.__cause__ or exc) from None
        response_headers = tuple((k.lower(), v) for k, v in response.headers.raw_items())
        return ws, ws.subprotocol, response_headers

    async def _handshake_trio_websocket(
        self, nursery: trio.Nursery, stream: trio.abc.Stream, protocols: Sequence[str]
    ) -> tuple[Transport, str | None, tuple[tuple[str, str], ...]]:
        from ._websocket import trio_websocket as tws  # only when selected

        try:
            return await tws.client_handshake(
                nursery,
                stream,
                host=self._host_header,
                resource=self._resource,
                subprotocols=protocols,
                headers=self._headers,
                max_message_size=self._options.max_message_size,
            )
        except HandshakeRejectedStatus as exc:
            raise HandshakeRejected(exc.status) from None
        except HandshakeFailed as exc:
            raise self._handshake_failure(exc.__cause__ or exc) from None

    def _handshake_failure(self, exc: BaseException | None) -> ConnectError:
        if isinstance(exc, HandshakeFailed) and "closed the connection" in str(exc):
            exc = None
        if self._tls and exc is not None and isinstance(_tls_cause(exc), ssl.SSLError):
            err: ConnectError = TLSError(
                f"TLS with {self._host}:{self._port} failed: {_describe_tls(exc)}"
            )
            err.__cause__ = _tls_cause(exc)
            return err
        if exc is None and self._tls:
            return TLSError(
                f"TLS with {self._host}:{self._port} failed: {_describe_tls(ssl.SSLEOFError())}"
            )
        what = "closed the connection" if exc is None else f"failed ({type(exc).__name__}: {exc})"
        return ConnectError(f"the server {what} during the WebSocket handshake")

    async def _supervise(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        attempt = 0  # consecutive failures (or too-short connections)
        started = False
        if not self._wait_connected:  # the body runs offline; connecting goes on meanwhile
            started = True
            task_status.started()
        protocols: Sequence[str] = self._protocols
        connections = 0
        while not self._closing:
            self._state = ConnectionState.CONNECTING
            self._emitter.emit("connecting", ConnectingEvent(url=self.url, attempt=attempt + 1))
            error: BaseException | None = None
            opened_at: float | None = None
            try:
                async with trio.open_nursery() as nursery:
                    conn = await self._open(nursery, protocols)
                    # Strict mode's validators for the negotiated protocol are
                    # built (in a worker thread, once per process) before the
                    # connection runs: its reader never compiles a schema.
                    try:
                        await prepare_validators(self._options, [conn.protocol])
                    except BaseException:
                        await conn.close(force=True)
                        raise
                    opened_at = trio.current_time()
                    self.protocol = conn.protocol
                    protocols = [conn.protocol]
                    self._conn = conn
                    if self._is_closing():  # closed while we were connecting
                        await conn.close(force=True)
                        return
                    connections += 1
                    if connections > 1:
                        self._reconnects += 1
                    try:
                        await nursery.start(
                            partial(run_connection, conn, None, reconnected=connections > 1)
                        )
                    except RuntimeError:
                        # closed (by close() from another task) before it ran:
                        # run_connection returns without starting
                        if self._is_closing():
                            return
                        raise
                    self._state = ConnectionState.OPEN
                    self._wake_waiters()
                    log.info(
                        "%s: connected to %s (%s)",
                        log_safe(self.identity),
                        self._ws_url,
                        conn.protocol,
                    )
                    if not started:
                        started = True
                        task_status.started()
                    await conn.wait_closed()
                    log.info(
                        "%s: disconnected (%s%s)",
                        log_safe(self.identity),
                        conn.close_code,
                        f": {log_safe(conn.close_reason, 123)}" if conn.close_reason else "",
                    )
            except (
                OCPPError,
                OSError,
                trio.BrokenResourceError,
            ) as exc:
                error = exc
            except BaseExceptionGroup as group:
                leaf = _single_leaf(group)
                if leaf is None or not isinstance(
                    leaf, OCPPError | OSError | trio.BrokenResourceError
                ):
                    raise
                error, leaf = leaf, None
            if self._is_closing():
                return
            if error is not None:
                self._last_error = str(error)
                log.info(
                    "%s: connection attempt failed: %s",
                    log_safe(self.identity),
                    log_safe(str(error)),
                )
                if not started and not self._retry_initial:
                    try:
                        raise error
                    finally:
                        error = None  # no cycle: traceback -> this frame -> error
                self._emitter.emit("error", ErrorEvent(error=error, context="connect"))
            if (
                opened_at is not None
                and trio.current_time() - opened_at >= self._backoff_reset_after
            ):
                attempt = 0
            if not self._reconnect or attempt >= self._max_reconnects:
                self._state = ConnectionState.CLOSED
                self._closed.set()
                self._wake_waiters()
                if not started:
                    assert error is not None
                    try:
                        raise error
                    finally:
                        error = None  # as above
                return
            delay = self._next_delay(attempt)
            attempt += 1
            self._state = ConnectionState.CONNECTING
            if self._observer is not None:
                self._observer.reconnect(self.identity)
            self._emitter.emit(
                "reconnect", ReconnectEvent(attempt=attempt, delay=delay, error=error)
            )
            log.info(
                "%s: reconnecting in %.2f s (attempt %d)", log_safe(self.identity), delay, attempt
            )
            await trio.sleep(delay)


def _single_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    # Iterative: a recursive local function would be a reference cycle holding
    # the exceptions (and through their tracebacks, the client) until a full
    # garbage collection.
    real: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))
        elif not isinstance(exc, trio.Cancelled):
            real.append(exc)
    return real[0] if len(real) == 1 else None


@asynccontextmanager
async def open_ocpp_client(
    endpoint: str,
    *,
    identity: str,
    protocols: Sequence[str] = ("ocpp1.6",),
    setup: Callable[[OCPPClient], object] | None = None,
    **kwargs: Unpack[ClientKwargs],
) -> AsyncIterator[OCPPClient]:
    """Connect to a CSMS as station ``identity`` and yield the client.

    A CSMS may call a station the moment it connects (GetConfiguration,
    TriggerMessage...), even in the same TCP segment as the ``101``.  No CALL
    is dispatched before the client is handed to the body of ``async with``,
    which runs without a checkpoint until its first ``await``: handlers
    registered at the top of the body answer the very first CALL.  ``setup``
    gets the client before the first connection attempt, for event callbacks
    that must see that attempt (``connecting``, the first ``open``)::

        def register(client):
            client.on("connecting", on_connecting)

        async with open_ocpp_client(url, identity="CP1", setup=register) as client:
            client.handle("Reset", on_reset)  # before the first await
            ...

    Args:
        endpoint: ``ws://`` or ``wss://`` URL of the CSMS; the percent-encoded
            identity is appended as the last path segment.
        identity: the station identity (also the Basic Auth username).
        protocols: subprotocols to offer, in order of preference.
        setup: called with the client before it connects (see above).
        **kwargs: the client's options and the connection options, each
            typed (see :class:`ClientKwargs`: ``security_profile``,
            ``password``, ``reconnect``, ``backoff_min``, ...,
            ``call_timeout``, ``strict_mode``, ``ping_interval``, ...;
            ``outbox``: an ``ocpp_trio.outbox.Outbox``, a file path for the
            default SQLite store, or an ``OutboxStore``, a durable queue (see
            ``enqueue``); ``wait_connected=False`` enters the body at once
            and keeps connecting, as a station that starts offline needs;
            ``backoff``, a function of the attempt number giving the delay
            before the next reconnect, e.g. ``ocpp_trio.outbox.retry_backoff``
            for OCPP 2.x's rule).

    Raises:
        ConnectError: the first connection failed and ``retry_initial_connect``
            is off; one of its subclasses says why (``ConnectTimeout``,
            ``TLSError``, ``HandshakeRejected``, ``ProtocolNegotiationError``).
        TypeError: an unknown option (a type checker flags it first).
        ValueError: a bad option value.

    On exit the connection is closed (1000) and reconnecting stops; an
    exception from the body propagates as itself, never inside an
    ExceptionGroup.
    """
    options, rest = split_options(cast("dict[str, Any]", dict(kwargs)))
    client = OCPPClient(endpoint, identity=identity, protocols=protocols, options=options, **rest)
    if setup is not None:
        setup(client)
    telemetry = client._telemetry
    unwatch = None
    if telemetry is not None and client.outbox is not None:
        unwatch = telemetry.watch_outbox(client.outbox.backlog, client.identity)
    try:
        async with trio.open_nursery() as nursery:
            if client.outbox is not None:
                # loaded before the first connection; drains in this nursery
                await nursery.start(client.outbox.run, client, client._emitter)
            await nursery.start(client._supervise)
            # The body runs from here to its first await with no checkpoint:
            # the CALLs the CSMS sent meanwhile are dispatched only after it,
            # so handlers registered at the top of the body answer them.
            client._entered.set()
            try:
                yield client
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(options.close_timeout + 1):
                    await client.close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaf = _single_leaf(group)
        if leaf is None:
            raise
        leaf.__suppress_context__ = True
        try:
            raise leaf from leaf.__cause__
        finally:
            # No reference cycles: this frame is in the traceback, and the
            # group (the implicit context) holds the leaf.
            leaf.__context__ = None
            del leaf, group
    finally:
        if unwatch is not None:
            unwatch()
