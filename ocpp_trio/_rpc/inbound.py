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
With ``max_inbound_call_rate`` set, a token bucket (refilled at that rate,
``inbound_call_burst`` deep) is taken from by every CALL and SEND before
anything else; an empty bucket answers GenericError ("rate limit") and drops
a SEND.  Every limit reached is reported as a ``"limit"`` event.
Every defect in a frame is answered as ``_core/protocol.py``'s table says,
reported as a ``bad_message`` event and counted; past ``max_bad_messages`` the
connection closes with 1002.

This is a mixin of :class:`~ocpp_trio.connection.OCPPConnection`, split out to
keep each file to one idea; it uses the connection's state directly.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

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
    ValidationError,
    code_for_protocol,
)
from .._core.protocol import (
    BadMessage,
    CallReceived,
    CallResultErrorReceived,
    ErrorReceived,
    LateResponse,
    ResultReceived,
    RPCProtocol,
    SendReceived,
)
from .._core.validation import Validator, get_validator
from .._websocket.driver import WSTransport
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
    LimitEvent,
    MessageEvent,
    PingEvent,
)
from ..routing import NOREPLY, Handler, HandlerContext, Router
from .options import ConnectionOptions
from .outbound import BUILTIN_PROTOCOLS
from .state import ConnectionState

if TYPE_CHECKING:
    from .connection import OCPPConnection
    from .outbound import Waiter

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

    The default transport (``_ws.py``) answers a ping while reading and then
    calls its ``on_ping`` hook; trio-websocket and ASGI answer pings without
    telling.  The hook holds the emitter, not the connection: no cycle.
    """
    if isinstance(transport, WSTransport):
        transport.on_ping = partial(_emit_peer_ping, emitter)


def _emit_peer_ping(emitter: EventEmitter, payload: bytes) -> None:
    if emitter.has("ping"):
        emitter.emit("ping", PingEvent(payload=payload, outbound=False))


class InboundMixin:
    """The reader and handler side of ``OCPPConnection`` (see the module docstring)."""

    # Provided by OCPPConnection.
    identity: str
    protocol: str
    _transport: Transport
    _proto: RPCProtocol
    _options: ConnectionOptions
    _router: Router
    _emitter: EventEmitter
    _validator: Validator | None
    _waiters: dict[str, Waiter]
    _state: ConnectionState
    _nursery: trio.Nursery | None
    _handlers_running: int
    _idle: trio.Event
    _last_activity: float
    _bucket: TokenBucket | None

    if TYPE_CHECKING:

        async def _write(self, text: str) -> None: ...

        def _validate(
            self,
            method: str,
            direction: Literal["request", "response"],
            payload: Mapping[str, Any],
            *,
            outbound: bool,
            message_id: str | None,
        ) -> ValidationError | None: ...

        def _finish(
            self, code: int, reason: str, *, by_peer: bool, will_reconnect: bool = False
        ) -> None: ...

        def _check_idle(self) -> None: ...

        async def close(
            self,
            code: int = ...,
            reason: str = ...,
            *,
            await_pending: bool = ...,
            force: bool = ...,
        ) -> None: ...

    async def _reader(self) -> None:
        transport, proto, emitter = self._transport, self._proto, self._emitter
        try:
            while True:
                message = await transport.receive()
                self._last_activity = trio.current_time()
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s < %s", self.identity, message)
                if emitter.has("message"):
                    text = message if isinstance(message, str) else repr(message)
                    emitter.emit("message", MessageEvent(text=text, outbound=False))
                event = proto.receive(message)
                match event:
                    case ResultReceived():
                        self._on_result(event)
                    case CallReceived():
                        await self._on_call(event.message_id, event.action, event.payload, False)
                    case ErrorReceived():
                        self._on_error(event)
                    case SendReceived():
                        await self._on_call(event.message_id, event.action, event.payload, True)
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
            by_peer = self._state is not ConnectionState.CLOSING
            if code == CLOSE_MESSAGE_TOO_BIG and getattr(transport, "failed_locally", False):
                self._limit(
                    "max_message_size",
                    self._options.max_message_size,
                    f"a message over max_message_size={self._options.max_message_size} bytes: "
                    "closed with 1009",
                )
            if by_peer:
                self._finish(code, exc.reason, by_peer=True)

    def _on_result(self, event: ResultReceived) -> None:
        waiter = self._waiters.pop(event.message_id, None)
        if waiter is not None:
            waiter.resolve(event.payload)
        if self._emitter.has("call_result"):
            self._emitter.emit(
                "call_result",
                CallResultEvent(
                    message_id=event.message_id,
                    method=event.action,
                    result=event.payload,
                    outbound=False,
                ),
            )

    def _on_error(self, event: ErrorReceived) -> None:
        waiter = self._waiters.pop(event.message_id, None)
        if waiter is not None:
            waiter.resolve(
                CallErrorReceived(event.code, event.description, event.details, action=event.action)
            )
        if self._emitter.has("call_error"):
            self._emitter.emit(
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
        log.info("%s: late answer to %s %s ignored", self.identity, event.action, event.message_id)
        if self._emitter.has("late_response"):
            text = message if isinstance(message, str) else repr(message)
            self._emitter.emit(
                "late_response",
                LateResponseEvent(
                    message_id=event.message_id, method=event.action, text=text[:1000]
                ),
            )

    async def _on_bad_message(self, event: BadMessage) -> None:
        code = code_for_protocol(event.error.code, self.protocol)
        log.warning(
            "%s: bad message (%s: %s), %d in a row: %r",
            self.identity,
            code,
            event.error.description,
            event.count,
            event.excerpt,
        )
        self._emitter.emit(
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
            waiter = self._waiters.pop(event.failed_call, None)
            if waiter is not None:
                waiter.resolve(
                    MalformedResponseError(event.error, action=event.failed_action or "")
                )
        if event.reply is not None:
            try:
                await self._write(event.reply)
            except ConnectionClosed:
                return
        if event.limit_exceeded:
            log.warning(
                "%s: %d bad messages in a row, more than max_bad_messages=%s: closing with 1002",
                self.identity,
                event.count,
                self._options.max_bad_messages,
            )
            assert self._nursery is not None
            self._nursery.start_soon(self.close, CLOSE_PROTOCOL_ERROR, "too many bad messages")

    async def _on_call(self, mid: str, action: str, params: dict[str, Any], is_send: bool) -> None:
        if self._emitter.has("call"):
            self._emitter.emit(
                "call",
                CallEvent(
                    message_id=mid, method=action, params=params, outbound=False, is_send=is_send
                ),
            )
        if self._state is not ConnectionState.OPEN:
            if not is_send:
                await self._reply_error(mid, action, RPCGenericError("the connection is closing"))
            return
        bucket = self._bucket
        if bucket is not None and not bucket.take(trio.current_time()):
            rate = self._options.max_inbound_call_rate
            text = f"rate limit: at most {rate:g} calls per second"
            self._limit("max_inbound_call_rate", rate, text, action, mid)
            if not is_send:
                await self._reply_error(mid, action, RPCGenericError(text))
            return
        invalid = self._validate(action, "request", params, outbound=False, message_id=mid)
        if invalid is not None:
            if not is_send:
                await self._reply_error(mid, action, invalid.error)
            return
        entry = self._router.lookup(self.protocol, action)
        if entry is None:
            if not is_send:
                await self._reply_error(mid, action, self._no_handler_error(action))
            return
        ctx = HandlerContext(
            params=params,
            protocol=self.protocol,
            method=action,
            message_id=mid,
            connection=cast("OCPPConnection", self),
            is_send=is_send,
        )
        if not entry.is_async:
            # A sync handler cannot await: answer right here, no task needed.
            try:
                result = entry.fn(ctx)
            except Exception as exc:
                await self._handler_failed(ctx, exc)
                return
            if not inspect.isawaitable(result):
                await self._answer(ctx, result)
                return
            coro: Awaitable[Any] = result
        else:
            coro = None  # type: ignore[assignment]
        if self._handlers_running >= self._options.inbound_call_concurrency:
            if coro is not None and inspect.iscoroutine(coro):
                coro.close()
            limit = self._options.inbound_call_concurrency
            text = f"busy: {self._handlers_running} calls in progress, at most {limit} at once"
            self._limit("inbound_call_concurrency", limit, text, action, mid)
            if not is_send:
                await self._reply_error(mid, action, RPCGenericError(text))
            return
        self._handlers_running += 1
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        assert self._nursery is not None
        self._nursery.start_soon(self._run_handler, entry.fn, ctx, coro)

    def _limit(
        self,
        limit: str,
        value: float,
        description: str,
        method: str | None = None,
        message_id: str | None = None,
    ) -> None:
        log.info("%s: %s reached (%s)", self.identity, limit, description)
        self._emitter.emit(
            "limit",
            LimitEvent(
                limit=limit,
                value=value,
                description=description,
                method=method,
                message_id=message_id,
            ),
        )

    def _no_handler_error(self, action: str) -> RPCError:
        validator = self._validator
        if validator is None and self.protocol in BUILTIN_PROTOCOLS:
            validator = get_validator(self.protocol)
        if validator is not None and action in validator.actions:
            return RPCNotSupportedError(f"{action} is not supported here")
        return RPCNotImplementedError(f"{action} is not a known action of {self.protocol}")

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
            self._handlers_running -= 1
            self._check_idle()

    async def _handler_failed(self, ctx: HandlerContext, exc: Exception) -> None:
        if isinstance(exc, RPCError):
            error = exc
        else:
            log.error(
                "%s: handler for %s raised %s",
                self.identity,
                ctx.method,
                type(exc).__name__,
                exc_info=exc,
            )
            self._emitter.emit("error", ErrorEvent(error=exc, context=f"handler for {ctx.method}"))
            details: dict[str, Any] = {}
            if self._options.respond_with_detailed_errors:
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
            self._proto.forget_inbound(mid)
            return
        if result is None:
            result = {}
        if not isinstance(result, Mapping):
            log.error(
                "%s: handler for %s returned %s, not a dict",
                self.identity,
                ctx.method,
                type(result).__name__,
            )
            await self._reply_error(
                mid,
                ctx.method,
                RPCInternalError(f"the handler for {ctx.method} returned no object"),
            )
            return
        invalid = self._validate(ctx.method, "response", result, outbound=True, message_id=mid)
        if invalid is not None:
            log.error(
                "%s: handler result for %s is invalid: %s", self.identity, ctx.method, invalid
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
        try:
            text = self._proto.send_result(mid, result)
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
        try:
            await self._write(text)
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
        if self._emitter.has("call_result"):
            self._emitter.emit(
                "call_result",
                CallResultEvent(
                    message_id=ctx.message_id, method=ctx.method, result=dict(result), outbound=True
                ),
            )

    async def _reply_error(self, mid: str, action: str, error: RPCError) -> None:
        try:
            try:
                text = self._proto.send_error(mid, error)
            except ValueError as exc:
                # The description or details cannot be sent (not JSON, a lone
                # surrogate): the peer still gets an answer, ours.
                self._unsendable(f"error answer to {action}", exc)
                error = RPCInternalError(
                    f"the error answer to {action} cannot be sent", {"reason": str(exc)}
                )
                text = self._proto.send_error(mid, error)
        except ProtocolStateError:
            return
        try:
            await self._write(text)
        except ConnectionClosed:
            return
        except trio.Cancelled:
            self._emit_error(mid, action, error)  # as in _answer
            raise
        self._emit_error(mid, action, error)

    def _unsendable(self, what: str, exc: ValueError) -> None:
        """Report an answer that cannot be encoded; an InternalError goes out instead."""
        log.error("%s: the %s cannot be sent: %s", self.identity, what, exc)
        self._emitter.emit("error", ErrorEvent(error=exc, context=what))

    def _emit_error(self, mid: str, action: str, error: RPCError) -> None:
        if self._emitter.has("call_error"):
            self._emitter.emit(
                "call_error",
                CallErrorEvent(
                    message_id=mid,
                    method=action,
                    code=code_for_protocol(error.code, self.protocol),
                    description=error.description,
                    details=dict(error.details),
                    outbound=True,
                ),
            )
