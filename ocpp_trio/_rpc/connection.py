"""OCPPConnection: the Trio side of one OCPP-J connection, for both roles.

Theory of operation.  Each connection runs in a nursery of its own
(:func:`run_connection`, entered by the client's supervisor or the server's
per-station task) holding:

- the reader, run by the connection's own task in the nursery's body (a task
  of its own would cost each idle connection memory for nothing): one message
  per ``transport.receive()`` -> ``RPCProtocol.receive()`` -> an event
  (``inbound.py``).  Answers wake the waiting ``call()``; a CALL for a *sync*
  handler is answered right in the reader; a CALL for an *async* handler gets
  a task of its own in this nursery, at most ``inbound_call_concurrency`` at
  once.  The reader never waits on user code, so WebSocket pings keep being
  answered.
- the ping task (``pings.py``): a WebSocket ping every ``ping_interval``
  (deferred while messages arrive when ``defer_pings_on_activity``), the pong
  deadline a cancel scope; no pong and the connection is aborted (1006).
- the async handler tasks, and the server's per-station handler.

Nothing the library starts outlives the connection: when it closes, the
nursery's scope is cancelled and :func:`run_connection` returns once every
task in it has ended.

Outbound, ``call()`` runs in one cancel scope ending at its deadline: a FIFO
slot (``call_concurrency``, 1 by default as OCPP-J 1.6 §4.1.1 / 2.0.1 §4.1.1
ask), validation in strict mode, the id registered in the core, the write,
the wait for the answer (``outbound.py``).  Every failure is raised; nothing
is returned as None.

Closing (``close()``) is idempotent: CLOSING refuses new calls, optionally
waits for the calls in flight in both directions (``await_pending``), runs the
WebSocket closing handshake within ``close_timeout`` and then closes the stream
whatever happened.  Calls still pending then fail with ``ConnectionClosed``
(peer or network) or ``trio.ClosedResourceError`` (our own close).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar, Unpack, overload

import trio

from .._core.errors import (
    ProtocolMismatchError,
    ProtocolStateError,
    ValidationError,
)
from .._core.frames import new_message_id
from .._core.protocol import Role, RPCProtocol
from .._websocket.transport import (
    CLOSE_ABNORMAL,
    CLOSE_NORMAL,
    HandshakeInfo,
    Transport,
)
from ..events import CallEvent, CloseEvent, ErrorEvent, EventEmitter, OpenEvent
from ..observability._recorder import ConnectionRecorder
from ..routing import Handler, Router
from ..types import Action, SendAction
from .flag import Flag
from .inbound import Dispatcher, report_peer_pings
from .link import Link
from .options import ConnectionKwargs, ConnectionOptions
from .outbound import cap_reason, parse_call_args, resolve_validator, run_call
from .pings import Pinger
from .state import ConnectionState, transition
from .surface import HandlerSurface

log = logging.getLogger("ocpp_trio.connection")

F = TypeVar("F", bound=Handler)
Req = TypeVar("Req")
Res = TypeVar("Res")


class OCPPConnection(HandlerSurface):
    """One OCPP-J connection over an open WebSocket, in either role.

    Users get one from ``open_ocpp_client`` (behind the client) or from the
    server (one per station).  All methods are safe to call from any task.

    Attributes:
        identity: the station identity.
        protocol: the negotiated subprotocol.
        handshake: what the opening handshake established.
        session: data the server's auth callback attached (server side), else {}.

    ``recorder`` (from the server's or client's observer) receives what the
    connection does for metrics, traces and the frame log.
    """

    __slots__ = (
        "__weakref__",
        "_call_limiter",
        "_calls_open",
        "_cancel_scope",
        "_closed",
        "_dispatcher",
        "_link",
        "_pinger",
        "_tasks_done",
        "handshake",
        "identity",
        "protocol",
        "role",
        "session",
    )

    def __init__(
        self,
        transport: Transport,
        *,
        identity: str,
        protocol: str,
        role: Role,
        options: ConnectionOptions | None = None,
        router: Router | None = None,
        emitter: EventEmitter | None = None,
        limiter: trio.CapacityLimiter | None = None,
        handshake: HandshakeInfo | None = None,
        session: Mapping[str, Any] | None = None,
        id_factory: Callable[[], str] = new_message_id,
        recorder: ConnectionRecorder | None = None,
    ) -> None:
        options = options or ConnectionOptions()
        emitter = emitter if emitter is not None else EventEmitter()
        super().__init__(router if router is not None else Router(), emitter)
        self.identity = identity
        self.protocol = protocol
        self.role = role
        self.handshake = handshake or HandshakeInfo(subprotocol=protocol)
        self.session: dict[str, Any] = dict(session or {})
        report_peer_pings(transport, emitter)
        link = self._link = Link(
            identity=identity,
            protocol=protocol,
            transport=transport,
            proto=RPCProtocol(
                protocol=protocol,
                role=role,
                id_factory=id_factory,
                max_bad_messages=options.max_bad_messages,
                max_outstanding_calls=math.inf,  # the limiter enforces call_concurrency
            ),
            options=options,
            emitter=emitter,
            router=self._router,
            validator=resolve_validator(options, protocol),
        )
        link.rec = recorder
        self._dispatcher = Dispatcher(link, self)
        self._pinger = Pinger(link, self._ping_timeout)
        self._call_limiter = limiter  # see _limiter: made by the first call() when None
        self._calls_open = 0
        self._closed = Flag()
        self._tasks_done = Flag()
        self._cancel_scope: trio.CancelScope | None = None

    def __repr__(self) -> str:
        return (
            f"<OCPPConnection {self.role.value} identity={self.identity!r} "
            f"protocol={self.protocol!r} state={self._link.state.name}>"
        )

    # --- properties ----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        return self._link.state

    @property
    def options(self) -> ConnectionOptions:
        """The options in force (change them with :meth:`reconfigure`)."""
        return self._link.options

    @property
    def close_code(self) -> int | None:
        """The WebSocket close code once closed (1006 when the network dropped)."""
        return self._link.close_code

    @property
    def close_reason(self) -> str:
        """The WebSocket close reason once closed."""
        return self._link.close_reason

    @property
    def bad_message_count(self) -> int:
        """Consecutive malformed frames received so far."""
        return self._link.proto.bad_message_count

    @property
    def validation_counts(self) -> Mapping[str, int]:
        """Schema failures in strict mode so far, by what became of them.

        ``"reject"`` (refused), ``"report"`` and ``"ignore"`` (let through by
        the ``validation_policy``), ``"relaxed"`` (repaired by its
        relaxations); a key appears with its first failure.  A copy.
        """
        return dict(self._link.validation_counts or {})

    @property
    def pending_calls(self) -> int:
        """Our calls waiting for an answer."""
        return len(self._link.pending)

    @property
    def _limiter(self) -> trio.CapacityLimiter:
        """The ``call_concurrency`` limiter, made on first use (most stations are rarely called)."""
        limiter = self._call_limiter
        if limiter is None:
            limiter = self._call_limiter = trio.CapacityLimiter(self._link.options.call_concurrency)
        return limiter

    def reconfigure(self, **options: Unpack[ConnectionKwargs]) -> None:
        """Change options at run time (``call_timeout=5``, ``strict_mode=True``, ...).

        Takes effect for the next call, frame or ping.  Turning strict mode on
        for a protocol whose schemas this process has not compiled yet
        compiles them here, in the calling task (up to a second or two for a
        whole OCPP 2.x protocol); strict mode given at start is compiled in a
        worker thread before the connection opens.  Raises TypeError for an
        unknown option and ValueError for a bad value.
        """
        apply_options(self, self._link.options.replace(**options))

    def _apply_options(self, new: ConnectionOptions) -> None:
        link = self._link
        validator = resolve_validator(new, self.protocol)
        if validator is not None and not validator.compiled:
            validator.precompile()  # see reconfigure(): the reader never compiles
        old, link.options = link.options, new
        link.validator = validator
        link.policy = new.validation_policy
        link.proto.max_bad_messages = new.max_bad_messages
        if self._call_limiter is not None:
            self._call_limiter.total_tokens = new.call_concurrency
        self._dispatcher.options_changed(old, new)
        self._pinger.wake(restart=new.pings_enabled and not old.pings_enabled)
        if link.nursery is not None and link.is_open:
            self._pinger.start(link.nursery)

    # --- outbound ------------------------------------------------------------

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
        """Send a CALL and return the peer's result payload.

        ``call(v16.BootNotification({...}))`` (typed: returns the action's
        response type), ``call(method, params)`` or
        ``call(protocol, method, params)`` (untyped: ``dict[str, Any]``).  A
        typed action and the protocol form are checked against the negotiated
        protocol.

        Raises:
            CallErrorReceived: the peer answered with a CALLERROR.
            CallTimeout: no answer within ``timeout`` (default ``call_timeout``),
                queueing included; a late answer is reported as an event.
            ConnectionClosed: the peer or the network closed the connection.
            trio.ClosedResourceError: we closed the connection.
            ValidationError: strict mode rejected the params or the result.
            ProtocolMismatchError: the protocol (named, or the typed action's)
                is not the negotiated one.
            ProtocolStateError: ``max_pending_calls`` calls on this connection
                are not finished yet (reported as a ``"limit"`` event too).
            TypeError: bad arguments, e.g. a SEND-only action (use ``send()``).
            ValueError: the params cannot be sent (not JSON, or a string with
                a lone surrogate); the message names the field, nothing is sent.

        On cancellation the call is forgotten; a late answer is reported as a
        ``late_response`` event.
        """
        protocol, method, params = parse_call_args(args)
        link = self._link
        limit = link.options.max_pending_calls
        if self._calls_open >= limit:
            text = f"{self._calls_open} calls already pending, at most max_pending_calls={limit:g}"
            link.limit("max_pending_calls", limit, text, method)
            raise ProtocolStateError(text)
        self._calls_open += 1
        try:
            return await run_call(self, self._limiter, protocol, method, params, timeout)
        finally:
            self._calls_open -= 1

    def open_link(self) -> Link:
        """For ``run_call``: this connection's link, if it is open (else raises)."""
        link = self._link
        if link.state is not ConnectionState.OPEN:
            link.check_open()  # raises the error for the state it is in
        return link

    async def wait_link(self) -> Link:  # pragma: no cover - open_link() never returns None
        return self.open_link()

    @overload
    async def send(self, message: SendAction[Any], /) -> None: ...
    @overload
    async def send(self, method: str, params: Mapping[str, Any] = ..., /) -> None: ...
    @overload
    async def send(self, protocol: str, method: str, params: Mapping[str, Any], /) -> None: ...

    async def send(self, *args: Any) -> None:
        """OCPP 2.1: send a SEND frame; nothing comes back.

        ``send(v21.NotifyPeriodicEventStream({...}))`` (typed),
        ``send(method, params)`` or ``send(protocol, method, params)``.

        SEND is exempt from the one-outstanding-CALL rule and from
        ``call_concurrency``.

        Raises:
            ProtocolStateError: the protocol has no SEND (before 2.1).
            ValidationError: strict mode rejected the params.
            ValueError: the params cannot be sent, as for ``call()``.
            ConnectionClosed / trio.ClosedResourceError: as for ``call()``.
        """
        protocol, method, params = parse_call_args(args, send=True)
        await trio.lowlevel.checkpoint()  # the write makes none when the kernel takes it at once
        link = self._link
        if protocol is not None and protocol != link.protocol:
            raise ProtocolMismatchError(
                f"{method} is sent as an action of {protocol!r}, "
                f"but the connection speaks {link.protocol!r}"
            )
        link.check_open()
        if not link.proto.supports_send:
            raise ProtocolStateError(
                f"SEND does not exist in {link.protocol}; it is new in ocpp2.1"
            )
        invalid = link.validate(method, "request", params, outbound=True, message_id=None)
        if isinstance(invalid, ValidationError):
            raise invalid
        mid, text = link.proto.send_send(method, params)
        if link.rec is not None:
            link.rec.sent(6, method, mid, text)
        await link.write(text)
        if link.emitter.has("call"):
            link.emitter.emit(
                "call",
                CallEvent(
                    message_id=mid, method=method, params=dict(params), outbound=True, is_send=True
                ),
            )

    async def send_raw(self, text: str) -> None:
        """Write ``text`` as one WebSocket message, unchecked (for tests and tools)."""
        await trio.lowlevel.checkpoint()  # as in send()
        if self._link.state is ConnectionState.CLOSED:
            self._link.check_open()
        await self._link.write(text)

    # --- lifecycle -----------------------------------------------------------

    async def _run(
        self,
        on_open: Callable[[OCPPConnection], Awaitable[object]] | None,
        reconnected: bool,
        task_status: trio.TaskStatus[OCPPConnection],
    ) -> None:
        link = self._link
        try:
            if link.state is not ConnectionState.CONNECTING:  # closed before it ran
                return
            async with trio.open_nursery() as nursery:
                link.nursery = nursery
                self._cancel_scope = nursery.cancel_scope
                link.state = transition(link.state, ConnectionState.OPEN)
                if link.rec is not None:
                    link.rec.opened()
                link.last_activity = trio.current_time()
                self._pinger.start(nursery)
                if on_open is not None:
                    nursery.start_soon(self._run_on_open, on_open)
                link.emitter.emit(
                    "open",
                    OpenEvent(
                        protocol=self.protocol, identity=self.identity, reconnected=reconnected
                    ),
                )
                task_status.started(self)
                # on_open starts as it did beside a reader task of its own:
                # in the same batch as the reader's first step.
                await trio.lowlevel.checkpoint()
                closed = await self._dispatcher.read()
                if closed is not None:  # the peer or the network closed it
                    self._finish(
                        closed.code if closed.code is not None else CLOSE_ABNORMAL,
                        closed.reason,
                        by_peer=True,
                    )
                # Our close() is closing: it finishes (and cancels this scope).
                await self._closed.wait()
        finally:
            with trio.CancelScope(shield=True):  # bounded: closes the stream at once
                await link.transport.abort()
            self._finish(CLOSE_ABNORMAL, "connection task ended", by_peer=False)
            link.nursery = None
            self._cancel_scope = None
            # The parts' references back to this object are cycles: undone
            # here, so a closed connection is freed by reference counting (a
            # server's full garbage collections stall its event loop).
            self._dispatcher.detach()
            self._pinger.detach()
            self._tasks_done.set()

    async def _run_on_open(self, on_open: Callable[[OCPPConnection], Awaitable[object]]) -> None:
        try:
            await on_open(self)
        except Exception as exc:
            log.exception("connection handler for %r raised; closing with 1011", self.identity)
            self._link.emitter.emit("error", ErrorEvent(error=exc, context="connection handler"))
            await self.close(1011, "internal error")

    def _finish(self, code: int, reason: str, *, by_peer: bool) -> None:
        """Mark CLOSED, fail the waiting calls, stop the connection's tasks (sync)."""
        link = self._link
        if link.state is ConnectionState.CLOSED:
            return
        link.state = transition(link.state, ConnectionState.CLOSED)
        link.close_code, link.close_reason = code, reason
        try:
            link.proto.closed()
        except ProtocolStateError:  # pragma: no cover - already closed
            pass
        error: BaseException
        if link.closed_by_us:
            error = trio.ClosedResourceError(f"connection to {self.identity!r} was closed")
        else:
            error = link.closed_error()
        for call in list(link.pending.values()):
            call.resolve(error)
        if link.rec is not None:
            link.rec.closed()
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()
        self._closed.set()
        link.idle.set()
        link.emitter.emit(
            "close",
            CloseEvent(code=code, reason=reason, by_peer=by_peer, will_reconnect=False),
        )

    async def wait_closed(self) -> None:
        """Wait until the connection is CLOSED (by anyone) and its tasks have ended."""
        await self._closed.wait()
        await self._wait_tasks_done()

    async def _wait_tasks_done(self) -> None:
        # The reader, pinger and handler tasks end promptly once cancelled;
        # the bound only guards against a handler that swallows Cancelled.
        if self._cancel_scope is not None:
            with trio.move_on_after(self._link.options.close_timeout):
                await self._tasks_done.wait()

    async def close(
        self,
        code: int = CLOSE_NORMAL,
        reason: str = "",
        *,
        await_pending: bool = False,
        force: bool = False,
    ) -> None:
        """Close the connection; idempotent.

        Args:
            code: the WebSocket close code.
            reason: the close reason (at most 123 bytes of UTF-8 are sent).
            await_pending: first let the calls in flight in both directions
                finish (each within its own bound: ``call_timeout`` for ours,
                at most ``call_timeout`` for the peer's handlers).
            force: skip the closing handshake and close the stream at once.

        New calls fail with ``trio.ClosedResourceError`` from the moment
        ``close()`` starts.  If ``close()`` itself is cancelled the stream is
        still closed (a bounded, shielded step).
        """
        link = self._link
        if link.state is ConnectionState.CLOSED:
            return
        if link.state is ConnectionState.CLOSING:
            if force:
                await self._abort(code, reason)
            await self.wait_closed()
            return
        link.state = transition(link.state, ConnectionState.CLOSING)
        link.closed_by_us = True
        link.proto.start_close()
        reason = cap_reason(reason)
        transport = link.transport
        try:
            if await_pending and not force:
                with trio.move_on_after(link.options.call_timeout):
                    await link.wait_idle()
            if force:
                await self._abort(code, reason)
            else:
                with trio.move_on_after(link.options.close_timeout):
                    await transport.aclose(code, reason)
                self._finish(
                    transport.close_code or code, transport.close_reason or reason, by_peer=False
                )
        finally:
            if link.state is not ConnectionState.CLOSED:
                await self._abort(code, reason)
        await self._wait_tasks_done()

    async def _abort(self, code: int, reason: str, *, by_peer: bool = False) -> None:
        with trio.CancelScope(shield=True):  # bounded: closes the stream at once
            await self._link.transport.abort()
        self._finish(code, reason, by_peer=by_peer)

    async def _ping_timeout(self) -> None:
        await self._abort(CLOSE_ABNORMAL, "pong timeout", by_peer=True)


def run_connection(
    conn: OCPPConnection,
    on_open: Callable[[OCPPConnection], Awaitable[object]] | None = None,
    *,
    reconnected: bool = False,
    task_status: trio.TaskStatus[OCPPConnection] = trio.TASK_STATUS_IGNORED,
) -> Coroutine[Any, Any, None]:
    """Run ``conn`` in a nursery of its own until it closes (reader, ping and handler tasks).

    For the client's supervisor and the server's per-station task.
    ``on_open(conn)``, if given, runs as a task of the connection's nursery
    (the server's per-station handler).  ``task_status.started(conn)`` is
    called once the connection is OPEN, before the reader takes its first
    frame.  Returns once the connection is closed and every task in its
    nursery has ended; never raises for anything the peer did.  Cancelled,
    it aborts the stream (a bounded, shielded step) and raises.

    Not a coroutine function itself: it returns the one to await, which
    spares every connection's task a level of its stack.
    """
    return conn._run(on_open, reconnected, task_status)


def hold_calls_until(conn: OCPPConnection, gate: trio.Event) -> None:
    """Dispatch none of the peer's CALLs on ``conn`` before ``gate`` is set.

    For ``open_ocpp_client``: it sets ``gate`` just before it hands the client
    to the body of ``async with``, which runs without a checkpoint until its
    first ``await``; so handlers registered at the top of the body are in
    place for a CALL the CSMS sends the moment the station connects.  Only
    CALLs wait: answers, pings and everything else flow meanwhile.
    """
    conn._link.dispatch_gate = gate


def cancel_connection(conn: OCPPConnection) -> None:
    """Cancel everything ``conn``'s nursery runs (a server's forced shutdown or eviction).

    Its run then aborts the stream and ends promptly; nothing happens when
    it is not running.
    """
    scope = conn._cancel_scope
    if scope is not None:
        scope.cancel()


def apply_options(conn: OCPPConnection, new: ConnectionOptions) -> None:
    """Put ``new`` options in force on ``conn`` (its ``reconfigure``, and the client's)."""
    conn._apply_options(new)
