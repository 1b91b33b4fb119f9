"""Connection events: their payloads and the callback registry.

Callbacks are plain functions called synchronously, in the order they were
added, from the task where the event happens; they must not block.  A
callback that raises is logged and the others still run: a user's callback
never kills a connection.  Trio code that wants to wait uses
``await conn.wait_closed()`` or its own memory channel fed by a callback.

Each name of :data:`EventName` has its payload class (``"close"``:
:class:`CloseEvent`, ``"call"``: :class:`CallEvent`, ...); ``on()`` is typed
per name, so a type checker flags a callback written for another event's
payload, or a misspelt name.  A callback for every event takes
:data:`EventPayload`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

log = logging.getLogger("ocpp_trio.events")

EventName = Literal[
    "open",
    "close",
    "error",
    "connecting",
    "reconnect",
    "message",
    "call",
    "call_result",
    "call_error",
    "bad_message",
    "ping",
    "pong",
    "strict_validation_failure",
    "late_response",
    "call_result_error",
    "limit",
    "outbox_delivered",
    "outbox_dropped",
    "outbox_retry",
]

EVENT_NAMES: Final[frozenset[str]] = frozenset(EventName.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenEvent:
    """The connection is open (after each successful (re)connect)."""

    protocol: str
    identity: str
    reconnected: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseEvent:
    """The WebSocket closed.

    Attributes:
        code: the close code (1006 when the network dropped without a close frame).
        reason: the close reason text.
        by_peer: True when the peer (or the network) closed first.
        will_reconnect: True when a client is about to reconnect.
    """

    code: int
    reason: str
    by_peer: bool
    will_reconnect: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorEvent:
    """Something failed that has no caller to raise to.

    A handler crash, a dead peer, or an answer to the peer's CALL that cannot
    be sent (not JSON, or a string with a lone surrogate: the peer then gets
    an InternalError instead).

    Attributes:
        error: what failed.
        context: where, e.g. ``"handler for Reset"``, ``"ping"``,
            ``"result of the handler for DataTransfer"``.
    """

    error: BaseException
    context: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectingEvent:
    """A client starts a connection attempt."""

    url: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectEvent:
    """A client will reconnect after ``delay`` seconds (attempt ``attempt``)."""

    attempt: int
    delay: float
    error: BaseException | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvent:
    """A frame went out (``outbound``) or came in, as text."""

    text: str
    outbound: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    """A CALL (or 2.1 SEND) went out (``outbound``) or came in."""

    message_id: str
    method: str
    params: dict[str, Any]
    outbound: bool
    is_send: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResultEvent:
    """A CALLRESULT went out (``outbound``) or came in."""

    message_id: str
    method: str
    result: dict[str, Any]
    outbound: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallErrorEvent:
    """A CALLERROR went out (``outbound``) or came in."""

    message_id: str
    method: str
    code: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)
    outbound: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResultErrorEvent:
    """OCPP 2.1: a CALLRESULTERROR went out (``outbound``) or came in."""

    message_id: str
    code: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)
    outbound: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class BadMessageEvent:
    """A malformed or unexpected frame came in (see ``_core.protocol`` for the table).

    Attributes:
        excerpt: at most 120 characters of the frame.
        code: the error code of the defect (as this version spells it).
        description: what was wrong.
        replied: whether a CALLERROR was sent back.
        count: consecutive bad frames so far.
    """

    excerpt: str
    code: str
    description: str
    replied: bool
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LateResponseEvent:
    """An answer arrived for a call that had already timed out or been cancelled."""

    message_id: str
    method: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitEvent:
    """A limit that protects this end was reached, and what came of it.

    Attributes:
        limit: the option reached: ``"inbound_call_concurrency"`` (the peer's
            CALL was answered GenericError "busy"), ``"max_inbound_call_rate"``
            (answered GenericError "rate limit"; a 2.1 SEND is dropped),
            ``"max_pending_calls"`` (our ``call()`` raised
            ``ProtocolStateError``) or ``"max_message_size"`` (the connection
            closed with 1009).
        value: the option's value.
        description: what happened, as sent to the peer or raised.
        method: the action concerned, when there is one.
        message_id: the frame's id, when there is one.
    """

    limit: str
    value: float
    description: str
    method: str | None = None
    message_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PingEvent:
    """A WebSocket ping went out (``outbound``: ours, every ``ping_interval``) or came in.

    An inbound ping is reported once it has been answered (the pong is on its
    way).  Inbound pings are seen with the default WebSocket transport only:
    not with ``websocket_backend="trio-websocket"``, which answers them without
    telling, nor under ASGI, where the ASGI server answers them.

    Attributes:
        payload: the ping's application data.
        outbound: True for our ping, False for the peer's.
    """

    payload: bytes
    outbound: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class PongEvent:
    """The pong for our ping arrived after ``rtt`` seconds."""

    payload: bytes
    rtt: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StrictValidationFailureEvent:
    """A payload failed schema validation in strict mode.

    Attributes:
        method: the action.
        direction: ``"request"`` or ``"response"``.
        outbound: True when *we* were about to send the payload.
        message_id: the frame id when there was one.
        error: the validation error (code and description with the field path).
        outcome: what the connection did with the payload: ``"reject"``
            (refused, as strict mode does by default) or ``"report"`` (let
            through by the connection's ``validation_policy``).
    """

    method: str
    direction: str
    outbound: bool
    message_id: str | None
    error: BaseException
    outcome: str = "reject"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxDeliveredEvent:
    """A queued message was answered by the CSMS and left the outbox.

    Attributes:
        seq: its position in the outbox.
        action: its action.
        payload: the payload as sent (with a 1.6 ``transactionId`` fixed up).
        result: the CSMS's answer.
        attempts: the attempts it took, this one included.
    """

    seq: int
    action: str
    payload: dict[str, Any]
    result: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxDroppedEvent:
    """A queued message was given up (see ``ocpp_trio.outbox.MessageDropped`` for the reasons).

    Attributes:
        seq: its position in the outbox (0 when it was refused before being stored).
        action: its action.
        reason: ``"attempts"``, ``"queue_full"``, ``"start_dropped"``,
            ``"invalid"`` or ``"removed"``.
        error: the last failure, when there was one.
        attempts: the failed attempts made.
    """

    seq: int
    action: str
    reason: str
    error: BaseException | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRetryEvent:
    """An attempt to deliver a queued message failed; it is tried again after ``delay`` seconds.

    Attributes:
        seq: its position in the outbox.
        action: its action.
        attempt: the failed attempts so far.
        delay: seconds until the next attempt.
        error: the failure (``CallErrorReceived`` or ``CallTimeout``).
    """

    seq: int
    action: str
    attempt: int
    delay: float
    error: BaseException


#: Any event's payload: what a callback registered for every event
#: (``on(name, callback)`` with ``name`` typed only as ``EventName``) takes.
EventPayload = (
    OpenEvent
    | CloseEvent
    | ErrorEvent
    | ConnectingEvent
    | ReconnectEvent
    | MessageEvent
    | CallEvent
    | CallResultEvent
    | CallErrorEvent
    | BadMessageEvent
    | PingEvent
    | PongEvent
    | StrictValidationFailureEvent
    | LateResponseEvent
    | CallResultErrorEvent
    | LimitEvent
    | OutboxDeliveredEvent
    | OutboxDroppedEvent
    | OutboxRetryEvent
)

Callback = Callable[[Any], object]


class EventEmitter:
    """A small synchronous event registry (``on`` / ``off`` / ``emit``)."""

    __slots__ = ("_callbacks",)

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callback]] = {}

    def on(self, name: str, callback: Callback) -> Callback:
        """Call ``callback(payload)`` each time event ``name`` happens; returns ``callback``."""
        if name not in EVENT_NAMES:
            raise ValueError(
                f"unknown event {name!r}; known events: {', '.join(sorted(EVENT_NAMES))}"
            )
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._callbacks.setdefault(name, []).append(callback)
        return callback

    def off(self, name: str, callback: Callback | None = None) -> None:
        """Remove ``callback`` from ``name`` (every callback of ``name`` when None)."""
        if callback is None:
            self._callbacks.pop(name, None)
            return
        callbacks = self._callbacks.get(name)
        if callbacks and callback in callbacks:
            callbacks.remove(callback)

    def peer_ping(self, payload: bytes) -> None:
        """A transport's hook: the peer pinged (and was answered): a ``ping`` event, inbound."""
        if self.has("ping"):
            self.emit("ping", PingEvent(payload=payload, outbound=False))

    def has(self, name: str) -> bool:
        """Whether anybody listens to ``name`` (checked before building costly payloads)."""
        return bool(self._callbacks.get(name))

    def emit(self, name: str, payload: Any) -> None:
        """Call every callback of ``name``; a callback that raises is logged and skipped."""
        for callback in tuple(self._callbacks.get(name, ())):
            try:
                callback(payload)
            except Exception:
                log.exception("callback %r for event %r raised", callback, name)
