"""Link: the state that the parts of one connection share, and the few acts they all need.

A connection (``connection.py``) is made of parts, each in a file of its own:
the outbound call path (``outbound.py``), the reader and inbound dispatch
(``inbound.py``) and the ping task (``pings.py``).  They share one
:class:`Link`, which owns what they have in common (the transport, the
sans-IO core, the options, the handlers and event callbacks, the pending
calls, the state) and offers what each of them does the same way (write a
frame, validate a payload, report a limit).  No part reaches into another
part or into the public connection object; each gets the link.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import trio

from .._core.errors import (
    ConnectionClosed,
    ProtocolStateError,
    RPCError,
    ValidationError,
    code_for_protocol,
)
from .._core.protocol import RPCProtocol
from .._core.validation import Validator
from .._websocket.transport import CLOSE_ABNORMAL, Transport
from ..events import (
    CallResultErrorEvent,
    EventEmitter,
    LimitEvent,
    MessageEvent,
    StrictValidationFailureEvent,
)
from ..observability._recorder import ConnectionRecorder
from ..observability.framelog import log_copy
from ..routing import Router
from .flag import SET_EVENT
from .logsafe import QuietLog, log_safe
from .options import ConnectionOptions
from .state import ConnectionState

log = logging.getLogger("ocpp_trio.connection")


class PendingCall:
    """One of our calls, waiting for its answer.

    The reader (or the connection's close) calls :meth:`resolve` with the
    result payload or the exception to raise; the calling task waits on
    :attr:`event`, within the call's cancel scope.
    """

    __slots__ = ("action", "event", "outcome")

    def __init__(self, action: str) -> None:
        self.action = action
        self.event = trio.Event()
        self.outcome: dict[str, Any] | BaseException | None = None

    def resolve(self, outcome: dict[str, Any] | BaseException) -> None:
        """Store the first outcome and wake the caller; later ones are ignored."""
        if self.outcome is None:
            self.outcome = outcome
            self.event.set()


class Link:
    """What the parts of one connection share (see the module docstring).

    Attributes:
        identity: the station identity.
        protocol: the negotiated subprotocol.
        transport: the open WebSocket.
        proto: the sans-IO RPC state (ids, framing, bad-message counting).
        options: the options in force.
        emitter: the event callbacks.
        router: the handlers.
        validator: strict mode's validator for ``protocol``, or None.
        policy: the options' ``validation_policy``, or None.
        validation_counts: schema failures so far, by outcome (``"reject"``,
            ``"report"``, ``"ignore"``, ``"relaxed"``); None until the first.
        state: CONNECTING, OPEN, CLOSING, CLOSED (``state.py``'s table).
        pending: our calls waiting for their answer, by message id.
        handlers_running: the peer's calls whose async handler runs now.
        nursery: the connection's nursery, once it runs.
        last_activity: when the last message arrived (``trio.current_time()``).
        closed_by_us: whether our ``close()`` started the close.
        idle: set whenever nothing is pending in either direction (made on demand).
        rec: the connection's recorder (``ocpp_trio.observability``), or None:
            every part reports to it where it is not None.
        quiet: the connection's log lines that a peer can provoke, limited per
            cause, the identity escaped (``logsafe.py``).
    """

    __slots__ = (
        "close_code",
        "close_reason",
        "closed_by_us",
        "dispatch_gate",
        "emitter",
        "handlers_running",
        "identity",
        "idle",
        "last_activity",
        "nursery",
        "options",
        "pending",
        "policy",
        "proto",
        "protocol",
        "quiet",
        "rec",
        "router",
        "state",
        "transport",
        "validation_counts",
        "validator",
    )

    def __init__(
        self,
        *,
        identity: str,
        protocol: str,
        transport: Transport,
        proto: RPCProtocol,
        options: ConnectionOptions,
        emitter: EventEmitter,
        router: Router,
        validator: Validator | None,
    ) -> None:
        self.identity = identity
        self.protocol = protocol
        self.transport = transport
        self.proto = proto
        self.options = options
        self.emitter = emitter
        self.router = router
        self.validator = validator
        self.policy = options.validation_policy
        self.validation_counts: dict[str, int] | None = None
        self.state = ConnectionState.CONNECTING
        self.pending: dict[str, PendingCall] = {}
        self.handlers_running = 0
        self.nursery: trio.Nursery | None = None
        self.last_activity = 0.0
        self.closed_by_us = False
        #: Set: the peer's CALLs wait for it before they are dispatched (see
        #: ``connection.hold_calls_until``); None once open.
        self.dispatch_gate: trio.Event | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        # A set event shared by all until somebody waits for idleness (a
        # server holds thousands of idle connections; see flag.py).
        self.idle = SET_EVENT
        self.quiet = QuietLog(log, identity)
        #: The connection's recorder (metrics, traces, frame log), or None.
        self.rec: ConnectionRecorder | None = None

    @property
    def is_open(self) -> bool:
        return self.state is ConnectionState.OPEN

    def check_open(self) -> None:
        """Raise unless the connection is open for new calls.

        Raises:
            trio.ClosedResourceError: we closed it, or are closing it.
            ConnectionClosed: the peer or the network closed it.
            ProtocolStateError: it is not open yet.
        """
        state = self.state
        if state is ConnectionState.OPEN:
            return
        if self.closed_by_us or state is ConnectionState.CLOSING:
            raise trio.ClosedResourceError(f"connection to {self.identity!r} is closed or closing")
        if state is ConnectionState.CLOSED:
            raise self.closed_error()
        raise ProtocolStateError("connection is not open yet")

    def closed_error(self) -> ConnectionClosed:
        """The error for what the peer or the network did: closed, with the code and reason."""
        code = self.close_code if self.close_code is not None else CLOSE_ABNORMAL
        reason = self.close_reason
        return ConnectionClosed(
            f"connection closed ({code}{': ' + reason if reason else ''})", code=code, reason=reason
        )

    async def write(self, text: str) -> None:
        """Write one frame (logged at DEBUG unless a frame log has it, reported as a
        ``message`` event).

        Raises ``ConnectionClosed`` when it could not be written; bounded by
        the caller's cancel scopes (see ``WSTransport.send``).
        """
        if log.isEnabledFor(logging.DEBUG) and (self.rec is None or not self.rec.logs_frames):
            log.debug("%s > %s", self.quiet.prefix, log_safe(log_copy(text)))
        if self.emitter.has("message"):
            self.emitter.emit("message", MessageEvent(text=text, outbound=True))
        await self.transport.send(text)

    def validate(
        self,
        method: str,
        direction: Literal["request", "response"],
        payload: Mapping[str, Any],
        *,
        outbound: bool,
        message_id: str | None,
    ) -> ValidationError | dict[str, Any] | None:
        """Strict mode's verdict on ``payload``.

        Returns None when it passes (or strict mode is off, or the policy lets
        it through as it is), the error when it is refused, or, when the
        policy's relaxations repaired a payload the peer sent, the repaired
        payload to use instead.  The validator is built before the connection
        runs (``outbound.prepare_validators``), so this never compiles a
        schema; without a policy, a payload that passes costs the validation
        and nothing else.
        """
        validator = self.validator
        if validator is None:
            return None
        try:
            validator.validate(method, direction, payload)
        except ValidationError as exc:
            return self._failed(validator, method, direction, payload, exc, outbound, message_id)
        return None

    def _failed(
        self,
        validator: Validator,
        method: str,
        direction: Literal["request", "response"],
        payload: Mapping[str, Any],
        exc: ValidationError,
        outbound: bool,
        message_id: str | None,
    ) -> ValidationError | dict[str, Any] | None:
        """Apply the policy (if any) to a failed payload; count and report the outcome."""
        policy = self.policy
        outcome: str = "reject"
        error = exc
        result: ValidationError | dict[str, Any] | None = exc
        if policy is not None:
            verdict = policy.judge(validator, method, direction, payload, exc, inbound=not outbound)
            outcome, error = verdict.outcome, verdict.error
            result = error if outcome == "reject" else verdict.payload
        counts = self.validation_counts
        if counts is None:
            counts = self.validation_counts = {}
        counts[outcome] = counts.get(outcome, 0) + 1
        if self.rec is not None:
            self.rec.validation_failed(method, outbound, exc.rule or "", outcome)
        if outcome in ("reject", "report") and self.emitter.has("strict_validation_failure"):
            self.emitter.emit(
                "strict_validation_failure",
                StrictValidationFailureEvent(
                    method=method,
                    direction=direction,
                    outbound=outbound,
                    message_id=message_id,
                    error=error,
                    outcome=outcome,
                ),
            )
        return result

    async def send_call_result_error(self, message_id: str, error: RPCError) -> None:
        """OCPP 2.1: answer the peer's result with a CALLRESULTERROR (its result was invalid)."""
        text = self.proto.send_call_result_error(message_id, error)
        if self.rec is not None:
            self.rec.sent(5, "", message_id, text, code_for_protocol(error.code, self.protocol))
        try:
            await self.write(text)
        except ConnectionClosed:
            return
        if self.emitter.has("call_result_error"):
            self.emitter.emit(
                "call_result_error",
                CallResultErrorEvent(
                    message_id=message_id,
                    code=code_for_protocol(error.code, self.protocol),
                    description=error.description,
                    details=dict(error.details),
                    outbound=True,
                ),
            )

    def limit(
        self,
        limit: str,
        value: float,
        description: str,
        method: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """Report a limit reached: a ``limit`` event each time; an INFO line, limited per limit.

        ``limit`` is an option's name, ``description`` our own text (no peer text).
        """
        self.quiet.log("limit:" + limit, logging.INFO, "%s reached (%s)", limit, description)
        if self.rec is not None:
            self.rec.limit(limit)
        self.emitter.emit(
            "limit",
            LimitEvent(
                limit=limit,
                value=value,
                description=description,
                method=method,
                message_id=message_id,
            ),
        )

    def forget_call(self, message_id: str) -> None:
        """Forget our call ``message_id`` if still pending: a later answer is reported as late."""
        if self.pending.pop(message_id, None) is not None:
            self.proto.expire_call(message_id)
            if self.rec is not None:
                self.rec.call_expired(message_id)

    def busy(self) -> None:
        """Something is now pending: whoever waits for idleness waits on."""
        if self.idle.is_set():
            self.idle = trio.Event()

    def check_idle(self) -> None:
        """Wake whoever waits for idleness when nothing is pending any more."""
        if not self.pending and not self.handlers_running:
            self.idle.set()

    async def wait_idle(self) -> None:
        """Return once no call is pending in either direction."""
        while self.pending or self.handlers_running:
            self.busy()
            await self.idle.wait()
