"""The inbound half of a connection: the reader task and the handlers it runs.

The reader takes one message at a time from the transport, hands it to the
sans-IO core and acts on the event: an answer wakes the waiting ``call()``; a
CALL (or 2.1 SEND) goes to its handler.  A *sync* handler is run and answered
right in the reader: it cannot await, so it cannot stall the reader, and a
task per call would cost time and memory for nothing.  An *async* handler gets
a task in the connection's nursery, at most ``inbound_call_concurrency`` at
once; a CALL beyond that is answered at once with GenericError ("busy")
instead of being queued, so the reader never waits for user code and WebSocket
pings keep flowing (trio-websocket answers them only while we keep reading).

The work a message costs is bounded before it is spent, cheapest check
first, so that a peer cannot make one cheap message cost us much:

1. size: the transport refuses a message over ``max_message_size`` (1009);
2. rate: with ``max_inbound_call_rate`` set, a token bucket (refilled at that
   rate, ``inbound_call_burst`` deep) is taken from by every CALL and SEND
   *before its JSON is decoded*: the core reads the id and action from the
   frame's head (``RPCProtocol.peek_request``), and an empty bucket answers
   GenericError ("rate limit") or drops a SEND with the payload unread.  A
   frame whose head the core cannot read that way is decoded first and then
   charged, as before; either way each CALL takes one token.  A CALL refused
   unread gets no ``call`` event (it has no params to report): its ``limit``
   event names the action and the id;
3. handler: an action nobody handles is answered NotImplemented (unknown to
   the protocol) or NotSupported (known, not handled here) *without being
   validated*: strict mode validates only what a handler will see;
4. schema: strict mode validates the payload, then the handler runs.

Every limit reached is reported as a ``"limit"`` event.  Every defect in a
frame is answered as ``_core/protocol.py``'s table says, reported as a
``bad_message`` event and counted; past ``max_bad_messages`` the connection
closes with 1002.  The events fire for every occurrence, but their log lines
are limited per connection and cause (``logsafe.QuietLog``): a flood of bad
frames costs a few WARNING lines and then one line a minute, not one per
frame.  Peer-chosen text in a log line (the identity, an action, a frame) is
escaped with ``logsafe.log_safe``.

The connection (``connection.py``) owns a :class:`Dispatcher` and runs its
:meth:`Dispatcher.read` in the connection's own task; the dispatcher works on
the connection's :class:`~ocpp_trio._rpc.link.Link`.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from .._core.errors import (
    CallErrorReceived,
    ConnectionClosed,
    MalformedResponseError,
    ProtocolStateError,
    RPCError,
    RPCGenericError,
    RPCInternalError,
    RPCNotImplementedError,
    RPCNotSupportedError,
    RPCSecurityError,
    ValidationError,
    code_for_protocol,
)
from .._core.frames import CallError
from .._core.protocol import (
    BadMessage,
    CallReceived,
    CallResultErrorReceived,
    ErrorReceived,
    Event,
    LateResponse,
    RequestHead,
    ResultReceived,
    SendReceived,
)
from .._core.validation import get_validator
from .._websocket.driver import MAX_FRAGMENTS, WSTransport
from .._websocket.transport import CLOSE_ABNORMAL, CLOSE_PROTOCOL_ERROR, Transport
from ..events import (
    BadMessageEvent,
    CallErrorEvent,
    CallEvent,
    CallResultErrorEvent,
    CallResultEvent,
    ErrorEvent,
    EventEmitter,
    LateResponseEvent,
    MessageEvent,
)
from ..observability._recorder import ConnectionRecorder
from ..observability.framelog import log_copy
from ..routing import NOREPLY, Handler, HandlerContext
from .link import Link
from .logsafe import log_safe
from .options import ConnectionOptions
from .outbound import BUILTIN_PROTOCOLS
from .state import ConnectionState

if TYPE_CHECKING:
    from .connection import OCPPConnection

log = logging.getLogger("ocpp_trio.connection")

#: The WebSocket close code for a message over ``max_message_size`` (RFC 6455 §7.4.1).
CLOSE_MESSAGE_TOO_BIG = 1009


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved; time is given, not read."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp: float | None = None

    def take(self, now: float) -> bool:
        """Take one token at time ``now``; False when there is none."""
        if self.stamp is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def make_bucket(options: ConnectionOptions) -> TokenBucket | None:
    """The inbound call-rate bucket ``options`` ask for, or None (no rate limit)."""
    if options.max_inbound_call_rate == math.inf:
        return None
    return TokenBucket(options.max_inbound_call_rate, options.inbound_call_capacity)


def report_peer_pings(transport: Transport, emitter: EventEmitter) -> None:
    """Have ``transport`` report the peer's pings as ``"ping"`` events, if it can.

    The default transport (``_websocket/driver.py``) answers a ping while reading and then
    calls its ``on_ping`` hook; trio-websocket and ASGI answer pings without
    telling.  The hook holds the emitter, not the connection: no cycle.
    """
    if isinstance(transport, WSTransport):
        transport.on_ping = emitter


class Dispatcher:
    """The reader and the inbound dispatch of one connection (see the module docstring).

    It works on the connection's :class:`~ocpp_trio._rpc.link.Link` and knows
    the public connection object only to hand it to handlers (``ctx.connection``)
    and to close it when the peer sent too many bad frames.
    """

    __slots__ = ("_bucket", "_conn", "_link")

    def __init__(self, link: Link, conn: OCPPConnection) -> None:
        self._link = link
        self._conn: OCPPConnection | None = conn
        self._bucket = make_bucket(link.options)

    def detach(self) -> None:
        """The connection has ended: forget it (no reference cycle)."""
        self._conn = None

    def options_changed(self, old: ConnectionOptions, new: ConnectionOptions) -> None:
        """New options: a new rate bucket when the rate limit changed."""
        if (new.max_inbound_call_rate, new.inbound_call_capacity) != (
            old.max_inbound_call_rate,
            old.inbound_call_capacity,
        ):
            self._bucket = make_bucket(new)

    async def read(self) -> ConnectionClosed | None:
        """Read and dispatch messages until the connection closes.

        Returns how the peer or the network closed it, or None when our own
        close is under way (``close()`` finishes it).  One message per
        ``receive()``, which is a checkpoint per message.
        """
        link = self._link
        transport, proto, emitter = link.transport, link.proto, link.emitter
        try:
            while True:
                message = await transport.receive()
                now = link.last_activity = trio.current_time()
                if log.isEnabledFor(logging.DEBUG) and (
                    link.rec is None or not link.rec.logs_frames
                ):
                    log.debug("%s < %s", link.quiet.prefix, log_safe(log_copy(message)))
                if emitter.has("message"):
                    emitter.emit("message", MessageEvent(text=message, outbound=False))
                charged = False
                bucket = self._bucket
                if bucket is not None and link.is_open:
                    # The rate limit before the JSON is decoded (see the module docstring).
                    head = proto.peek_request(message)
                    if head is not None:
                        if not bucket.take(now):
                            await self._refuse_unread(head, message)
                            continue
                        charged = True
                event = proto.receive(message)
                rec = link.rec
                if rec is not None:
                    record_inbound(rec, event, message)
                match event:
                    case ResultReceived():
                        self._on_result(event)
                    case CallReceived():
                        if rec is None:
                            await self._on_call(
                                event.message_id, event.action, event.payload, False, charged
                            )
                        else:
                            # The span of the call is current while it is dispatched
                            # (an async handler's task copies the context at its start).
                            token = rec.enter_call(event.message_id)
                            try:
                                await self._on_call(
                                    event.message_id, event.action, event.payload, False, charged
                                )
                            finally:
                                rec.exit_call(token)
                    case ErrorReceived():
                        self._on_error(event)
                    case SendReceived():
                        await self._on_call(
                            event.message_id, event.action, event.payload, True, charged
                        )
                    case BadMessage():
                        await self._on_bad_message(event)
                    case LateResponse():
                        self._on_late(event, message)
                    case CallResultErrorReceived():
                        if emitter.has("call_result_error"):
                            emitter.emit(
                                "call_result_error",
                                CallResultErrorEvent(
                                    message_id=event.message_id,
                                    code=event.code,
                                    description=event.description,
                                    details=event.details,
                                ),
                            )
        except ConnectionClosed as exc:
            code = exc.code if exc.code is not None else CLOSE_ABNORMAL
            if code == CLOSE_MESSAGE_TOO_BIG and getattr(transport, "failed_locally", False):
                if "fragments" in exc.reason:  # the driver's bound on frames per message
                    link.limit("max_fragments", MAX_FRAGMENTS, f"{exc.reason}: closed with 1009")
                else:
                    size = link.options.max_message_size
                    link.limit(
                        "max_message_size",
                        size,
                        f"a message over max_message_size={size} bytes: closed with 1009",
                    )
            if link.state is ConnectionState.CLOSING:
                return None
            return ConnectionClosed(str(exc), code=code, reason=exc.reason)
        finally:
            link.quiet.flush()  # the counts of log lines left out, before the connection ends

    def _on_result(self, event: ResultReceived) -> None:
        waiter = self._link.pending.pop(event.message_id, None)
        if waiter is not None:
            waiter.resolve(event.payload)
        if self._link.emitter.has("call_result"):
            self._link.emitter.emit(
                "call_result",
                CallResultEvent(
                    message_id=event.message_id,
                    method=event.action,
                    result=event.payload,
                    outbound=False,
                ),
            )

    def _on_error(self, event: ErrorReceived) -> None:
        waiter = self._link.pending.pop(event.message_id, None)
        if waiter is not None:
            waiter.resolve(
                CallErrorReceived(event.code, event.description, event.details, action=event.action)
            )
        if self._link.emitter.has("call_error"):
            self._link.emitter.emit(
                "call_error",
                CallErrorEvent(
                    message_id=event.message_id,
                    method=event.action,
                    code=event.code,
                    description=event.description,
                    details=event.details,
                ),
            )

    def _on_late(self, event: LateResponse, message: str | bytes) -> None:
        self._link.quiet.log(
            "late_response",
            logging.INFO,
            "late answer to %s %s ignored",
            event.action,
            log_safe(event.message_id),
        )
        if self._link.emitter.has("late_response"):
            text = message if isinstance(message, str) else repr(message)
            self._link.emitter.emit(
                "late_response",
                LateResponseEvent(
                    message_id=event.message_id, method=event.action, text=text[:1000]
                ),
            )

    async def _on_bad_message(self, event: BadMessage) -> None:
        code = code_for_protocol(event.error.code, self._link.protocol)
        self._link.quiet.log(
            "bad_message",
            logging.WARNING,
            "bad message (%s: %s), %d in a row: %r",
            code,
            log_safe(event.error.description),
            event.count,
            log_copy(event.excerpt),  # %r: repr() escapes what log_safe() would
        )
        self._link.emitter.emit(
            "bad_message",
            BadMessageEvent(
                excerpt=event.excerpt,
                code=code,
                description=event.error.description,
                replied=event.reply is not None,
                count=event.count,
            ),
        )
        if event.failed_call is not None:
            waiter = self._link.pending.pop(event.failed_call, None)
            action = event.failed_action or ""
            if event.peer_error is not None:
                # A CALLERROR with a readable code but malformed details (some
                # peers send an array): the caller learns what the peer said.
                code, description, raw = event.peer_error
                if waiter is not None:
                    waiter.resolve(
                        CallErrorReceived(
                            code, description, {}, action=action, raw_details=raw, malformed=True
                        )
                    )
                if self._link.emitter.has("call_error"):
                    self._link.emitter.emit(
                        "call_error",
                        CallErrorEvent(
                            message_id=event.failed_call,
                            method=action,
                            code=code,
                            description=description,
                            details={},
                        ),
                    )
            elif waiter is not None:
                waiter.resolve(MalformedResponseError(event.error, action=action))
        if event.reply is not None:
            rec = self._link.rec
            if rec is not None:
                rec.sent(4, "", event.message_id, event.reply, code)
            try:
                await self._link.write(event.reply)
            except ConnectionClosed:
                return
        if event.limit_exceeded:
            log.warning(
                "%s: %d bad messages in a row, more than max_bad_messages=%s: closing with 1002",
                self._link.quiet.prefix,
                event.count,
                self._link.options.max_bad_messages,
            )
            nursery = self._link.nursery
            assert nursery is not None
            conn = self._conn
            if conn is not None:
                nursery.start_soon(conn.close, CLOSE_PROTOCOL_ERROR, "too many bad messages")

    async def _on_call(
        self, mid: str, action: str, params: dict[str, Any], is_send: bool, charged: bool
    ) -> None:
        """Dispatch the peer's CALL or SEND; ``charged``: its rate token is taken already."""
        gate = self._link.dispatch_gate
        if gate is not None:
            # The application is about to register its handlers (the body of
            # ``open_ocpp_client`` starts at once): this CALL waits for it.
            if not gate.is_set():
                await gate.wait()
            self._link.dispatch_gate = None
        if self._link.emitter.has("call"):
            self._link.emitter.emit(
                "call",
                CallEvent(
                    message_id=mid, method=action, params=params, outbound=False, is_send=is_send
                ),
            )
        if not self._link.is_open:
            if not is_send:
                await self._reply_error(mid, action, RPCGenericError("the connection is closing"))
            return
        registration = self._link.options.registration_gate
        if (
            registration is not None
            and action != "BootNotification"
            and not registration.is_accepted(self._link.identity)
        ):
            if not is_send:
                refusal = RPCSecurityError(
                    f"{action} refused: the station is not accepted (BootNotification first)"
                )
                await self._reply_error(mid, action, refusal)
            return
        bucket = self._bucket
        if not charged and bucket is not None and not bucket.take(trio.current_time()):
            error = self._over_rate(mid, action)
            if not is_send:
                await self._reply_error(mid, action, error)
            return
        # The handler before the schema: a payload no handler will see is not
        # worth validating (an unhandled action is refused whatever it holds).
        entry = self._link.router.lookup(self._link.protocol, action)
        if entry is None:
            if not is_send:
                await self._reply_error(mid, action, self._no_handler_error(action))
            return
        invalid = self._link.validate(action, "request", params, outbound=False, message_id=mid)
        if invalid is not None:
            if isinstance(invalid, dict):
                params = invalid  # repaired by the validation policy's relaxations
            else:
                if not is_send:
                    await self._reply_error(mid, action, invalid.error)
                return
        conn = self._conn
        assert conn is not None  # detached only once the reader has ended
        ctx = HandlerContext(
            params=params,
            protocol=self._link.protocol,
            method=action,
            message_id=mid,
            connection=conn,
            is_send=is_send,
        )
        if not entry.is_async:
            # A sync handler cannot await: answer right here, no task needed.
            try:
                result = entry.fn(ctx)
            except Exception as exc:
                await self._handler_failed(ctx, exc)
                return
            # A dict is the common answer: no need to ask whether it is awaitable.
            if type(result) is dict or not inspect.isawaitable(result):
                await self._answer(ctx, result)
                return
            coro: Awaitable[Any] = result
        else:
            coro = None  # type: ignore[assignment]
        if self._link.handlers_running >= self._link.options.inbound_call_concurrency:
            if coro is not None and inspect.iscoroutine(coro):
                coro.close()
            limit = self._link.options.inbound_call_concurrency
            text = f"busy: {self._link.handlers_running} calls in progress, at most {limit} at once"
            self._link.limit("inbound_call_concurrency", limit, text, action, mid)
            if not is_send:
                await self._reply_error(mid, action, RPCGenericError(text))
            return
        link = self._link
        link.handlers_running += 1
        link.busy()
        assert link.nursery is not None
        link.nursery.start_soon(self._run_handler, entry.fn, ctx, coro)

    def _over_rate(self, mid: str, action: str) -> RPCGenericError:
        """Report a CALL or SEND over ``max_inbound_call_rate``; the error that refuses it."""
        rate = self._link.options.max_inbound_call_rate
        text = f"rate limit: at most {rate:g} calls per second"
        self._link.limit("max_inbound_call_rate", rate, text, action, mid)
        return RPCGenericError(text)

    async def _refuse_unread(self, head: RequestHead, message: str) -> None:
        """Refuse a CALL (drop a SEND) over the rate, its payload never decoded."""
        error = self._over_rate(head.message_id, head.action)
        reply = self._link.proto.refuse(head, error)
        rec = self._link.rec
        if rec is not None:
            rec.received(6 if head.is_send else 2, head.action, head.message_id, message)
        if reply is not None:
            await self._write_error(head.message_id, head.action, error, reply)

    def _no_handler_error(self, action: str) -> RPCError:
        validator = self._link.validator
        if validator is None and self._link.protocol in BUILTIN_PROTOCOLS:
            validator = get_validator(self._link.protocol)
        if validator is not None and action in validator.actions:
            return RPCNotSupportedError(f"{action} is not supported here")
        return RPCNotImplementedError(f"{action} is not a known action of {self._link.protocol}")

    async def _run_handler(
        self, fn: Handler, ctx: HandlerContext, coro: Awaitable[Any] | None
    ) -> None:
        try:
            try:
                result = await (coro if coro is not None else fn(ctx))
            except Exception as exc:
                await self._handler_failed(ctx, exc)
                return
            await self._answer(ctx, result)
        finally:
            self._link.handlers_running -= 1
            self._link.check_idle()

    async def _handler_failed(self, ctx: HandlerContext, exc: Exception) -> None:
        if isinstance(exc, RPCError):
            error = exc
        else:
            self._link.quiet.log(
                "handler_failed",
                logging.ERROR,
                "handler for %s raised %s",
                log_safe(ctx.method, 100),
                type(exc).__name__,
                exc_info=exc,
            )
            self._link.emitter.emit(
                "error", ErrorEvent(error=exc, context=f"handler for {ctx.method}")
            )
            details: dict[str, Any] = {}
            if self._link.options.respond_with_detailed_errors:
                details = {"type": type(exc).__name__, "message": str(exc)[:200]}
            error = RPCInternalError(f"the handler for {ctx.method} failed", details)
        if ctx.is_send:
            return
        await self._reply_error(ctx.message_id, ctx.method, error)

    async def _answer(self, ctx: HandlerContext, result: Any) -> None:
        if ctx.is_send:
            return
        mid = ctx.message_id
        if result is NOREPLY:
            self._link.proto.forget_inbound(mid)
            if self._link.rec is not None:
                self._link.rec.forgotten(mid)
            return
        if result is None:
            result = {}
        if type(result) is not dict and not isinstance(result, Mapping):
            self._link.quiet.log(
                "handler_failed",
                logging.ERROR,
                "handler for %s returned %s, not a dict",
                log_safe(ctx.method, 100),
                type(result).__name__,
            )
            await self._reply_error(
                mid,
                ctx.method,
                RPCInternalError(f"the handler for {ctx.method} returned no object"),
            )
            return
        invalid = self._link.validate(ctx.method, "response", result, outbound=True, message_id=mid)
        if isinstance(invalid, ValidationError):
            self._link.quiet.log(
                "handler_failed",
                logging.ERROR,
                "handler result for %s is invalid: %s",
                log_safe(ctx.method, 100),
                log_safe(invalid),
            )
            await self._reply_error(
                mid,
                ctx.method,
                RPCInternalError(
                    f"the result of {ctx.method} failed validation",
                    {"reason": invalid.error.description},
                ),
            )
            return
        registration = self._link.options.registration_gate
        if registration is not None and ctx.method == "BootNotification":
            registration.observe(self._link.identity, result)  # before the station can answer it
        try:
            text = self._link.proto.send_result(mid, result)
        except ValueError as exc:
            # Not JSON, or a string with a lone surrogate: UTF-8 cannot carry it.
            self._unsendable(f"result of the handler for {ctx.method}", exc)
            await self._reply_error(
                mid,
                ctx.method,
                RPCInternalError(
                    f"the result of {ctx.method} cannot be sent", {"reason": str(exc)}
                ),
            )
            return
        except ProtocolStateError:
            return  # the connection closed meanwhile
        if self._link.rec is not None:
            self._link.rec.sent(3, ctx.method, mid, text)
        try:
            await self._link.write(text)
        except ConnectionClosed:
            return
        except trio.Cancelled:
            # Cancelled (the connection is closing) once the answer was handed
            # to the transport: it may still go out, ahead of the close frame,
            # so it is reported (found by the soak: answers the station got but
            # the CSMS never saw as sent).
            self._emit_result(ctx, result)
            raise
        self._emit_result(ctx, result)

    def _emit_result(self, ctx: HandlerContext, result: Mapping[str, Any]) -> None:
        if self._link.emitter.has("call_result"):
            self._link.emitter.emit(
                "call_result",
                CallResultEvent(
                    message_id=ctx.message_id, method=ctx.method, result=dict(result), outbound=True
                ),
            )

    async def _reply_error(self, mid: str, action: str, error: RPCError) -> None:
        try:
            try:
                text = self._link.proto.send_error(mid, error)
            except ValueError as exc:
                # The description or details cannot be sent (not JSON, a lone
                # surrogate): the peer still gets an answer, ours.
                self._unsendable(f"error answer to {action}", exc)
                error = RPCInternalError(
                    f"the error answer to {action} cannot be sent", {"reason": str(exc)}
                )
                text = self._link.proto.send_error(mid, error)
        except ProtocolStateError:
            return
        await self._write_error(mid, action, error, text)

    async def _write_error(self, mid: str, action: str, error: RPCError, text: str) -> None:
        """Write the CALLERROR ``text`` that answers ``mid`` with ``error``; report it."""
        if self._link.rec is not None:
            self._link.rec.sent(
                4, action, mid, text, code_for_protocol(error.code, self._link.protocol)
            )
        try:
            await self._link.write(text)
        except ConnectionClosed:
            return
        except trio.Cancelled:
            self._emit_error(mid, action, error)  # as in _answer
            raise
        self._emit_error(mid, action, error)

    def _unsendable(self, what: str, exc: ValueError) -> None:
        """Report an answer that cannot be encoded; an InternalError goes out instead."""
        self._link.quiet.log(
            "unsendable", logging.ERROR, "the %s cannot be sent: %s", log_safe(what), log_safe(exc)
        )
        self._link.emitter.emit("error", ErrorEvent(error=exc, context=what))

    def _emit_error(self, mid: str, action: str, error: RPCError) -> None:
        if self._link.emitter.has("call_error"):
            self._link.emitter.emit(
                "call_error",
                CallErrorEvent(
                    message_id=mid,
                    method=action,
                    code=code_for_protocol(error.code, self._link.protocol),
                    description=error.description,
                    details=dict(error.details),
                    outbound=True,
                ),
            )


def record_inbound(rec: ConnectionRecorder, event: Event, message: str) -> None:
    """Report one parsed inbound frame to the connection's recorder."""
    match event:
        case CallReceived():
            rec.received(2, event.action, event.message_id, message)
        case ResultReceived():
            rec.received(3, event.action, event.message_id, message)
        case ErrorReceived():
            rec.received(4, event.action, event.message_id, message, event.code)
        case SendReceived():
            rec.received(6, event.action, event.message_id, message)
        case CallResultErrorReceived():
            rec.received(5, "", event.message_id, message, event.code)
        case LateResponse():
            kind = 4 if isinstance(event.frame, CallError) else 3
            code = event.frame.error_code if isinstance(event.frame, CallError) else ""
            rec.received(kind, event.action, event.message_id, message, code)
        case BadMessage():
            rec.received(
                0, event.failed_action or "", event.failed_call or event.message_id, message
            )
