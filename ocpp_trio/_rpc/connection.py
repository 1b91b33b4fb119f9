"""OCPPConnection: the Trio side of one OCPP-J connection, for both roles.

Theory of operation.  Each connection runs in a nursery of its own (``_run``)
holding:

- the reader, run by ``_run``'s own task in the nursery's body (a task of
  its own would cost each idle connection memory for nothing):
  ``transport.receive()`` -> ``RPCProtocol.receive()`` -> an event.  Answers
  wake the waiting ``call()``; a CALL for a *sync* handler is answered right
  in the reader (no task, no queue: measured faster and lighter); a CALL for
  an *async* handler gets a task of its own, at most
  ``inbound_call_concurrency`` at once, and a CALL beyond that is answered at
  once with a GenericError.  The reader never waits on user code that can
  block, so WebSocket pings keep being answered.
- pings: a WebSocket ping every ``ping_interval`` (deferred while messages
  arrive when ``defer_pings_on_activity``); no pong within ``pong_timeout``
  and the peer is dead: the connection is aborted (1006).  One timer task
  for all the connections of the run says when each is due (``_pings.py``);
  a ping is a task of the nursery only until its pong comes.
- the handler tasks.

Outbound, ``call()`` takes a slot from a FIFO limiter (``call_concurrency``,
1 by default as OCPP-J 1.6 §4.1.1 / 2.0.1 §4.1.1 ask), validates in strict mode,
registers the id in the core, writes, and waits for the answer; the whole call
is bounded by ``call_timeout`` (cancel scopes while it queues, the call timer
while it waits for the answer: see ``_calls.py``).  Every failure is raised;
nothing is returned as None.

Closing (``close()``) is idempotent: CLOSING refuses new calls, optionally
waits for the calls in flight in both directions (``await_pending``), runs the
WebSocket closing handshake within ``close_timeout`` and then closes the stream
whatever happened.  Calls still pending then fail with ``ConnectionClosed``
(peer or network) or ``trio.ClosedResourceError`` (our own close).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar, overload

import trio

from .._core.errors import (
    ConnectionClosed,
    ProtocolMismatchError,
    ProtocolStateError,
    RPCError,
    ValidationError,
    code_for_protocol,
)
from .._core.frames import new_message_id
from .._core.protocol import (
    Role,
    RPCProtocol,
)
from .._websocket.driver import WSTransport
from .._websocket.transport import (
    CLOSE_ABNORMAL,
    CLOSE_NORMAL,
    HandshakeInfo,
    Transport,
)
from ..events import (
    CallEvent,
    CallResultErrorEvent,
    CloseEvent,
    ErrorEvent,
    EventEmitter,
    MessageEvent,
    OpenEvent,
    PingEvent,
    PongEvent,
    StrictValidationFailureEvent,
)
from ..routing import Handler, Router
from ..types import Action, SendAction
from .flag import SET_EVENT, Flag
from .inbound import InboundMixin, make_bucket, report_peer_pings
from .options import ConnectionOptions
from .outbound import (
    DeadlineExpired,
    Waiter,
    call_timer,
    call_with_limit,
    cap_reason,
    parse_call_args,
    resolve_validator,
)
from .pings import PingEntry, ping_scheduler
from .state import ConnectionState
from .surface import HandlerSurface

log = logging.getLogger("ocpp_trio.connection")

F = TypeVar("F", bound=Handler)
Req = TypeVar("Req")
Res = TypeVar("Res")


_ping_counter = itertools.count(1)


class OCPPConnection(HandlerSurface, InboundMixin):
    """One OCPP-J connection over an open WebSocket, in either role.

    Users get one from ``open_ocpp_client`` (behind the client) or from the
    server (one per station).  All methods are safe to call from any task.

    Attributes:
        identity: the station identity.
        protocol: the negotiated subprotocol.
        handshake: what the opening handshake established.
        session: data the server's auth callback attached (server side), else {}.
    """

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
    ) -> None:
        self.identity = identity
        self.protocol = protocol
        self.role = role
        self.handshake = handshake or HandshakeInfo(subprotocol=protocol)
        self.session: dict[str, Any] = dict(session or {})
        self._transport = transport
        self._options = options or ConnectionOptions()
        self._router = router if router is not None else Router()
        self._emitter = emitter if emitter is not None else EventEmitter()
        report_peer_pings(transport, self._emitter)
        self._call_limiter = limiter  # see _limiter: made by the first call() when None
        self._proto = RPCProtocol(
            protocol=protocol,
            role=role,
            id_factory=id_factory,
            max_bad_messages=self._options.max_bad_messages,
            max_outstanding_calls=math.inf,  # the limiter enforces call_concurrency
        )
        self._validator = resolve_validator(self._options, protocol)
        self._bucket = make_bucket(self._options)
        self._calls_open = 0
        self._state = ConnectionState.CONNECTING
        self._waiters: dict[str, Waiter] = {}
        self._handlers_running = 0
        # Events an idle connection never waits for are made on demand (a
        # server holds thousands of idle connections; see _flag.py).
        self._idle = SET_EVENT  # replaced by a new Event by whoever waits for idleness
        self._closed = Flag()
        self._tasks_done = Flag()
        self._cancel_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._last_activity = 0.0
        self._pinging = False  # whether the connection is pinged (a ping on the timer or out)
        self._ping_entry: PingEntry | None = None  # the next ping, on the run's ping timer
        self._last_ping = 0.0
        self._close_code: int | None = None
        self._close_reason = ""
        self._closed_by_us = False

    def __repr__(self) -> str:
        return (
            f"<OCPPConnection {self.role.value} identity={self.identity!r} "
            f"protocol={self.protocol!r} state={self._state.name}>"
        )

    # --- properties ----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        return self._state

    @property
    def options(self) -> ConnectionOptions:
        """The options in force (change them with :meth:`reconfigure`)."""
        return self._options

    @property
    def close_code(self) -> int | None:
        """The WebSocket close code once closed (1006 when the network dropped)."""
        return self._close_code

    @property
    def close_reason(self) -> str:
        """The WebSocket close reason once closed."""
        return self._close_reason

    @property
    def bad_message_count(self) -> int:
        """Consecutive malformed frames received so far."""
        return self._proto.bad_message_count

    @property
    def pending_calls(self) -> int:
        """Our calls waiting for an answer."""
        return len(self._waiters)

    @property
    def _limiter(self) -> trio.CapacityLimiter:
        """The ``call_concurrency`` limiter, made on first use (most stations are rarely called)."""
        limiter = self._call_limiter
        if limiter is None:
            limiter = self._call_limiter = trio.CapacityLimiter(self._options.call_concurrency)
        return limiter

    def reconfigure(self, **options: Any) -> None:
        """Change options at run time (``call_timeout=5``, ``strict_mode=True``, ...).

        Takes effect for the next call, frame or ping.  Raises TypeError for an
        unknown option and ValueError for a bad value.
        """
        self._apply_options(self._options.replace(**options))

    def _apply_options(self, new: ConnectionOptions) -> None:
        old, self._options = self._options, new
        self._proto.max_bad_messages = new.max_bad_messages
        if self._call_limiter is not None:
            self._call_limiter.total_tokens = new.call_concurrency
        self._validator = resolve_validator(new, self.protocol)
        if (new.max_inbound_call_rate, new.inbound_call_capacity) != (
            old.max_inbound_call_rate,
            old.inbound_call_capacity,
        ):
            self._bucket = make_bucket(new)
        if self._ping_entry is not None:  # waiting for the next ping: due as the new options say
            self._ping_entry.cancel()
            self._ping_entry = None
            self._schedule_ping()
        else:
            self._start_pinger()

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
        limit = self._options.max_pending_calls
        if self._calls_open >= limit:
            text = f"{self._calls_open} calls already pending, at most max_pending_calls={limit:g}"
            self._limit("max_pending_calls", limit, text, method)
            raise ProtocolStateError(text)
        self._calls_open += 1
        try:
            return await call_with_limit(self, self._limiter, protocol, method, params, timeout)
        finally:
            self._calls_open -= 1

    def _open_connection(self) -> OCPPConnection:
        self._raise_if_not_open()
        return self

    async def _wait_ready(self) -> OCPPConnection:
        return self._open_connection()  # pragma: no cover - _open_connection() never waits

    def _raise_if_not_open(self) -> None:
        if self._state is ConnectionState.OPEN:
            return
        if self._closed_by_us or self._state is ConnectionState.CLOSING:
            raise trio.ClosedResourceError(f"connection to {self.identity!r} is closed or closing")
        if self._state is ConnectionState.CLOSED:
            raise self._closed_error()
        raise ProtocolStateError("connection is not open yet")

    def _closed_error(self) -> ConnectionClosed:
        code = self._close_code if self._close_code is not None else CLOSE_ABNORMAL
        reason = self._close_reason
        return ConnectionClosed(
            f"connection closed ({code}{': ' + reason if reason else ''})", code=code, reason=reason
        )

    def _check_protocol(self, protocol: str | None, method: str) -> None:
        if protocol is not None and protocol != self.protocol:
            raise ProtocolMismatchError(
                f"{method} is called as an action of {protocol!r}, "
                f"but the connection speaks {self.protocol!r}"
            )

    def _validate(
        self,
        method: str,
        direction: Literal["request", "response"],
        payload: Mapping[str, Any],
        *,
        outbound: bool,
        message_id: str | None,
    ) -> ValidationError | None:
        validator = self._validator
        if validator is None:
            return None
        try:
            validator.validate(method, direction, payload)
        except ValidationError as exc:
            if self._emitter.has("strict_validation_failure"):
                self._emitter.emit(
                    "strict_validation_failure",
                    StrictValidationFailureEvent(
                        method=method,
                        direction=direction,
                        outbound=outbound,
                        message_id=message_id,
                        error=exc,
                    ),
                )
            return exc
        return None

    async def _call_open(
        self,
        protocol: str | None,
        method: str,
        params: Mapping[str, Any],
        deadline: float = math.inf,
    ) -> dict[str, Any]:
        """One call on this (open) connection; the caller holds a limiter slot.

        Raises ``DeadlineExpired`` once ``deadline`` passes, kept by the call
        timer (no cancel scope: see ``_calls.py``).  A write that can start at
        once on the default transport is bounded by the transport itself (a
        deadline passing meanwhile is raised once it is done); any other write
        (behind another one, or on another transport) is within a cancel
        scope ending at the deadline.
        """
        self._check_protocol(protocol, method)
        self._raise_if_not_open()
        invalid = self._validate(method, "request", params, outbound=True, message_id=None)
        if invalid is not None:
            raise invalid
        mid, text = self._proto.send_call(method, params)
        waiter = Waiter(method, self, mid)
        self._waiters[mid] = waiter  # _wait_idle() sees it: no idle event to reset here
        timer = call_timer() if deadline != math.inf else None
        if timer is not None:
            timer.add(waiter, deadline)
        transport = self._transport
        try:
            if timer is None or (isinstance(transport, WSTransport) and not transport.sending):
                # The write starts at once and the transport finishes or
                # fails it within its grace period: no scope of our own.
                await self._write(text)
            else:
                with trio.move_on_at(deadline) as scope:
                    await self._write(text)
                if scope.cancelled_caught:
                    raise DeadlineExpired
            if self._emitter.has("call"):
                self._emitter.emit(
                    "call",
                    CallEvent(message_id=mid, method=method, params=dict(params), outbound=True),
                )
            await waiter.wait()
        finally:
            if timer is not None:
                timer.discard(waiter)
            self._forget_call(mid)
            self._check_idle()
        outcome, waiter.outcome = waiter.outcome, None
        if isinstance(outcome, BaseException):
            try:
                raise outcome
            finally:
                outcome = None  # no cycle: traceback -> this frame -> the exception
        assert outcome is not None
        invalid = self._validate(method, "response", outcome, outbound=False, message_id=mid)
        if invalid is not None:
            if self._proto.supports_send and self._state is ConnectionState.OPEN:
                await self._send_call_result_error(mid, invalid.error)
            raise invalid
        return outcome

    def _forget_call(self, message_id: str) -> None:
        """Forget our call ``message_id`` if still pending: a later answer is reported as late."""
        if self._waiters.pop(message_id, None) is not None:
            self._proto.expire_call(message_id)

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
        self._check_protocol(protocol, method)
        self._raise_if_not_open()
        if not self._proto.supports_send:
            raise ProtocolStateError(
                f"SEND does not exist in {self.protocol}; it is new in ocpp2.1"
            )
        invalid = self._validate(method, "request", params, outbound=True, message_id=None)
        if invalid is not None:
            raise invalid
        mid, text = self._proto.send_send(method, params)
        await self._write(text)
        if self._emitter.has("call"):
            self._emitter.emit(
                "call",
                CallEvent(
                    message_id=mid, method=method, params=dict(params), outbound=True, is_send=True
                ),
            )

    async def send_raw(self, text: str) -> None:
        """Write ``text`` as one WebSocket message, unchecked (for tests and tools)."""
        await trio.lowlevel.checkpoint()  # as in send()
        if self._state is ConnectionState.CLOSED:
            self._raise_if_not_open()
        await self._write(text)

    async def _write(self, text: str) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s > %s", self.identity, text)
        if self._emitter.has("message"):
            self._emitter.emit("message", MessageEvent(text=text, outbound=True))
        await self._transport.send(text)

    async def _send_call_result_error(self, message_id: str, error: RPCError) -> None:
        try:
            await self._write(self._proto.send_call_result_error(message_id, error))
        except ConnectionClosed:
            return
        if self._emitter.has("call_result_error"):
            self._emitter.emit(
                "call_result_error",
                CallResultErrorEvent(
                    message_id=message_id,
                    code=code_for_protocol(error.code, self.protocol),
                    description=error.description,
                    details=dict(error.details),
                    outbound=True,
                ),
            )

    # --- lifecycle -----------------------------------------------------------

    async def _run(
        self,
        on_open: Callable[[OCPPConnection], Awaitable[object]] | None = None,
        *,
        reconnected: bool = False,
        task_status: trio.TaskStatus[OCPPConnection] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the connection until it closes (reader, pinger, handler tasks).

        ``on_open(conn)``, if given, runs as a task of the connection's nursery
        (the server's per-station handler).  Returns once the connection is
        closed; never raises for anything the peer did.

        The reader runs in this task, in the body of the connection's nursery
        (a task of its own would cost an idle connection memory for nothing);
        a ping is a task of the nursery only until its pong comes.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._cancel_scope = nursery.cancel_scope
                self._state = ConnectionState.OPEN
                self._last_activity = trio.current_time()
                self._start_pinger()
                if on_open is not None:
                    nursery.start_soon(self._run_on_open, on_open)
                self._emitter.emit(
                    "open",
                    OpenEvent(
                        protocol=self.protocol, identity=self.identity, reconnected=reconnected
                    ),
                )
                task_status.started(self)
                # on_open starts as it did beside a reader task of its own:
                # in the same batch as the reader's first step.
                await trio.lowlevel.checkpoint()
                await self._reader()
                # The reader is done: the peer closed (finished already), or our
                # close() is closing and finishes (it cancels this scope).
                await self._closed.wait()
        finally:
            with trio.CancelScope(shield=True):
                await self._transport.abort()
            self._finish(CLOSE_ABNORMAL, "connection task ended", by_peer=False)
            self._tasks_done.set()

    async def _run_on_open(self, on_open: Callable[[OCPPConnection], Awaitable[object]]) -> None:
        try:
            await on_open(self)
        except Exception as exc:
            log.exception("connection handler for %r raised; closing with 1011", self.identity)
            self._emitter.emit("error", ErrorEvent(error=exc, context="connection handler"))
            await self.close(1011, "internal error")

    def _finish(
        self, code: int, reason: str, *, by_peer: bool, will_reconnect: bool = False
    ) -> None:
        """Mark CLOSED, fail the waiting calls, stop the connection's tasks (sync)."""
        if self._state is ConnectionState.CLOSED:
            return
        self._state = ConnectionState.CLOSED
        self._close_code, self._close_reason = code, reason
        self._proto_closed()
        error: BaseException
        if self._closed_by_us:
            error = trio.ClosedResourceError(f"connection to {self.identity!r} was closed")
        else:
            error = self._closed_error()
        for waiter in list(self._waiters.values()):
            waiter.resolve(error)
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()
        self._stop_pinger()
        self._closed.set()
        self._idle.set()
        self._emitter.emit(
            "close",
            CloseEvent(code=code, reason=reason, by_peer=by_peer, will_reconnect=will_reconnect),
        )

    def _proto_closed(self) -> None:
        try:
            self._proto.closed()
        except ProtocolStateError:  # pragma: no cover - already closed
            pass

    async def wait_closed(self) -> None:
        """Wait until the connection is CLOSED (by anyone) and its tasks have ended."""
        await self._closed.wait()
        await self._wait_tasks_done()

    async def _wait_tasks_done(self) -> None:
        # The reader, pinger and handler tasks end promptly once cancelled;
        # the bound only guards against a handler that swallows Cancelled.
        if self._nursery is not None:
            with trio.move_on_after(self._options.close_timeout):
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
        if self._state is ConnectionState.CLOSED:
            return
        if self._state is ConnectionState.CLOSING:
            if force:
                await self._abort(code, reason)
            await self.wait_closed()
            return
        self._state = ConnectionState.CLOSING
        self._closed_by_us = True
        self._proto.start_close()
        reason = cap_reason(reason)
        try:
            if await_pending and not force:
                with trio.move_on_after(self._options.call_timeout):
                    await self._wait_idle()
            if force:
                await self._abort(code, reason)
            else:
                with trio.move_on_after(self._options.close_timeout):
                    await self._transport.aclose(code, reason)
                self._finish(
                    self._transport.close_code or code,
                    self._transport.close_reason or reason,
                    by_peer=False,
                )
        finally:
            if self._state is not ConnectionState.CLOSED:
                await self._abort(code, reason)
        await self._wait_tasks_done()

    async def _abort(self, code: int, reason: str, *, by_peer: bool = False) -> None:
        with trio.CancelScope(shield=True):
            await self._transport.abort()
        self._finish(code, reason, by_peer=by_peer)

    async def _wait_idle(self) -> None:
        while self._waiters or self._handlers_running:
            self._idle = trio.Event()
            await self._idle.wait()

    def _check_idle(self) -> None:
        if not self._waiters and not self._handlers_running:
            self._idle.set()

    # --- pings ---------------------------------------------------------------

    def _start_pinger(self) -> None:
        """Have this connection pinged, if pings are enabled and it is not yet.

        The ``ping_interval`` counts from now.  There is no task per
        connection: the run's ping timer (``_pings.py``) calls ``_ping_due``.
        """
        if (
            not self._pinging
            and self._options.pings_enabled
            and self._state is ConnectionState.OPEN
            and self._nursery is not None
        ):
            self._pinging = True
            self._last_ping = trio.current_time()
            self._schedule_ping()

    def _next_ping(self, options: ConnectionOptions) -> float:
        due = self._last_ping + options.ping_interval
        if options.defer_pings_on_activity:
            due = max(due, self._last_activity + options.ping_interval)
        return due

    def _schedule_ping(self) -> None:
        """Put the next ping on the timer (unless pings are off now, or the connection closed)."""
        if not self._options.pings_enabled or self._state is not ConnectionState.OPEN:
            self._pinging = False
            return
        self._ping_entry = ping_scheduler().schedule(self, self._next_ping(self._options))

    def _stop_pinger(self) -> None:
        entry, self._ping_entry = self._ping_entry, None
        if entry is not None:
            entry.cancel()
        self._pinging = False

    def _ping_due(self) -> None:
        """The ping timer: this connection's ping is due (or was, before new activity)."""
        self._ping_entry = None
        options = self._options
        nursery = self._nursery
        if not options.pings_enabled or self._state is not ConnectionState.OPEN or nursery is None:
            self._pinging = False
            return
        if trio.current_time() < self._next_ping(options):  # messages came meanwhile
            self._schedule_ping()
            return
        self._last_ping = trio.current_time()
        nursery.start_soon(self._pinger, options)

    async def _pinger(self, options: ConnectionOptions) -> None:
        """One ping (a short task of the connection's); then the next one is scheduled."""
        if await self._ping_once(options):
            self._schedule_ping()
        else:
            self._pinging = False

    async def _ping_once(self, options: ConnectionOptions) -> bool:
        """One ping; False when the connection is gone (closed, or aborted for want of a pong)."""
        payload = next(_ping_counter).to_bytes(8, "big")
        self._emitter.emit("ping", PingEvent(payload=payload))
        started = trio.current_time()
        with trio.move_on_after(options.pong_timeout) as scope:
            try:
                await self._transport.ping(payload)
            except ConnectionClosed:
                return False
        if scope.cancelled_caught:
            log.warning(
                "%s: no pong within %s s: the peer is gone, closing",
                self.identity,
                options.pong_timeout,
            )
            error = ConnectionClosed(
                f"no pong within {options.pong_timeout} s",
                code=CLOSE_ABNORMAL,
                reason="pong timeout",
            )
            self._emitter.emit("error", ErrorEvent(error=error, context="ping"))
            await self._abort(CLOSE_ABNORMAL, "pong timeout", by_peer=True)
            return False
        self._last_activity = trio.current_time()
        self._emitter.emit("pong", PongEvent(payload=payload, rtt=trio.current_time() - started))
        return True
