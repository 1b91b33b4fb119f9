"""The recorder: what the runtime calls, and the only part of this package it knows.

Theory of operation.  A server or client given ``telemetry=`` and/or
``frame_log=`` builds one :class:`Observer`; each of its connections gets a
:class:`ConnectionRecorder` (``observer.connection(...)``) that the
connection's parts reach as ``link.rec``.  Without either option there is no
observer and ``link.rec`` is None: the runtime's cost is one ``is None`` test
at each point below, and no OpenTelemetry code runs or is even imported.

The points, all synchronous and cheap, none of them a checkpoint:

- ``received(kind, action, mid, text)`` / ``sent(...)``: one per frame, after
  the core parsed it (inbound) or made it (outbound).  Counts ``ocpp.messages``,
  keeps the start of each call in flight so an answer knows its latency, ends
  the span and the ``ocpp.call.duration`` of the peer's calls when our answer
  goes out, and writes the frame log.
- ``call(...)``: wraps one whole ``call()`` (queueing, the exchange, the
  strict-mode check of the result) in a span made current for it, and
  records its duration and outcome from what it returned or raised.
- ``enter_call(mid)`` / ``exit_call(token)``: make the span of the peer's
  call current while its handler is dispatched (an async handler's task copies
  the context when it is started, so its spans nest under it).
- ``validation_failed``, ``limit``, ``pong``, ``callerror``, ``closed``.

Time is ``trio.current_time()`` (virtual in tests under a mock clock).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from ._names import KIND_NAMES, RejectionCause

if TYPE_CHECKING:
    from .framelog import FrameLog
    from .telemetry import Telemetry

__all__ = ["ConnectionRecorder", "Observer", "make_observer"]

T = TypeVar("T")


class Observer:
    """A server's or client's observability: its telemetry and frame log, shared by its connections.

    Args:
        telemetry: metrics and traces (OpenTelemetry), or None.
        frame_log: the structured frame log, or None.
        role: ``"csms"`` (a server) or ``"station"`` (a client).
    """

    __slots__ = ("frame_log", "role", "telemetry")

    def __init__(self, telemetry: Telemetry | None, frame_log: FrameLog | None, role: str) -> None:
        self.telemetry = telemetry
        self.frame_log = frame_log
        self.role = role

    def connection(self, identity: str, protocol: str) -> ConnectionRecorder:
        """The recorder of one new connection (counted open until its ``closed()``)."""
        return ConnectionRecorder(self, identity, protocol)

    def handshake_rejected(self, cause: RejectionCause) -> None:
        if self.telemetry is not None:
            self.telemetry.handshake_rejected(cause)

    def reconnect(self, identity: str) -> None:
        if self.telemetry is not None:
            self.telemetry.reconnect(identity)


def make_observer(
    telemetry: Telemetry | None, frame_log: FrameLog | None, role: str
) -> Observer | None:
    """The observer for these options, or None when there is nothing to observe with."""
    if telemetry is None and frame_log is None:
        return None
    return Observer(telemetry, frame_log, role)


class ConnectionRecorder:
    """What one connection reports (see the module docstring)."""

    __slots__ = (
        "_attrs",
        "_frames",
        "_inbound",
        "_open",
        "_outbound",
        "_tel",
        "identity",
        "protocol",
        "role",
    )

    def __init__(self, observer: Observer, identity: str, protocol: str) -> None:
        self.identity = identity
        self.protocol = protocol
        self.role = observer.role
        self._tel = observer.telemetry
        self._frames = observer.frame_log
        #: The peer's calls awaiting our answer: message id -> (start, span or None, action).
        self._inbound: dict[str, tuple[float, Any, str]] = {}
        #: Our calls awaiting the peer's answer: message id -> when the CALL went
        #: out (kept for the frame log's latency only).
        self._outbound: dict[str, float] = {}
        self._attrs: Any = None
        self._open = False
        if self._tel is not None:
            self._attrs = self._tel.connection_attributes(identity, protocol, self.role)

    # --- lifecycle ---------------------------------------------------------------

    def opened(self) -> None:
        if self._tel is not None and not self._open:
            self._open = True
            self._tel.connection_opened(self._attrs)

    def closed(self) -> None:
        """The connection closed: counted closed; the peer's calls still unanswered end ``closed``."""
        tel = self._tel
        if tel is not None:
            if self._open:
                self._open = False
                tel.connection_closed(self._attrs)
            now = trio.current_time()
            for start, span, action in list(self._inbound.values()):
                tel.inbound_call_done(self._attrs, span, action, now - start, "closed", "")
        self._inbound.clear()
        self._outbound.clear()

    # --- frames ------------------------------------------------------------------

    @property
    def logs_frames(self) -> bool:
        """Whether a frame log is configured: the connection's raw DEBUG frame lines are
        then left out (the frame log has each frame, redacted)."""
        return self._frames is not None

    def received(self, kind: int, action: str, mid: str, text: str, code: str = "") -> None:
        """One frame from the peer (kind 0: not OCPP-J)."""
        latency: float | None = None
        if kind == 2:
            tel = self._tel
            span = None if tel is None else tel.inbound_call_started(self._attrs, action, mid)
            self._inbound[mid] = (trio.current_time(), span, action)
        elif kind in (3, 4, 0):
            started = self._outbound.pop(mid, None)
            if started is not None:
                latency = trio.current_time() - started
        self._report("in", kind, action, mid, text, code, latency)

    def sent(self, kind: int, action: str, mid: str, text: str, code: str = "") -> None:
        """One frame to the peer, handed to the transport."""
        latency: float | None = None
        tel = self._tel
        if kind == 3 or kind == 4:
            entry = self._inbound.pop(mid, None)
            if entry is not None:
                latency = trio.current_time() - entry[0]
                if tel is not None:
                    outcome = "ok" if kind == 3 else "error"
                    tel.inbound_call_done(self._attrs, entry[1], entry[2], latency, outcome, code)
        elif kind == 2:
            if self._frames is not None:  # only the frame log shows an answer's latency
                self._outbound[mid] = trio.current_time()
            if tel is not None:
                tel.outbound_call_sent(mid)
        self._report("out", kind, action, mid, text, code, latency)

    def _report(
        self,
        direction: str,
        kind: int,
        action: str,
        mid: str,
        text: str,
        code: str,
        latency: float | None,
    ) -> None:
        """Count one frame (and its CALLERROR code) and write it to the frame log."""
        tel = self._tel
        if tel is not None:
            tel.message(self._attrs, direction, kind, action)
            if code:
                tel.callerror(self._attrs, direction, code)
        frames = self._frames
        if frames is not None:
            frames.frame(
                identity=self.identity,
                protocol=self.protocol,
                direction=direction,
                message_type=KIND_NAMES.get(kind, "invalid"),
                action=action,
                message_id=mid,
                text=text,
                latency=latency,
            )

    def forgotten(self, mid: str) -> None:
        """The peer's call ``mid`` will get no answer from us (a handler returned NOREPLY)."""
        entry = self._inbound.pop(mid, None)
        if entry is not None and self._tel is not None:
            elapsed = trio.current_time() - entry[0]
            self._tel.inbound_call_done(self._attrs, entry[1], entry[2], elapsed, "ok", "")

    def call_expired(self, mid: str) -> None:
        """Our call ``mid`` is forgotten unanswered (a timeout, a cancellation)."""
        self._outbound.pop(mid, None)

    # --- calls -------------------------------------------------------------------

    async def call(self, action: str, deadline: float, run: Callable[[], Awaitable[T]]) -> T:
        """Run one of our calls (``run()``) in its span; record its duration and outcome.

        ``deadline``: the call's own; cancelled once it passed is a timeout.
        """
        tel = self._tel
        if tel is None:
            return await run()
        return await tel.outbound_call(self._attrs, action, deadline, run)

    def enter_call(self, mid: str) -> object:
        """Make the span of the peer's call ``mid`` current (for its handler); a token."""
        tel = self._tel
        if tel is None:
            return None
        entry = self._inbound.get(mid)
        if entry is None or entry[1] is None:
            return None
        return tel.enter_span(entry[1])

    def exit_call(self, token: object) -> None:
        if token is not None and self._tel is not None:
            self._tel.exit_span(token)

    # --- the rest ----------------------------------------------------------------

    def validation_failed(self, action: str, outbound: bool, rule: str, outcome: str) -> None:
        if self._tel is not None:
            self._tel.validation_failed(self._attrs, action, outbound, rule, outcome)

    def limit(self, name: str) -> None:
        if self._tel is not None:
            self._tel.limit(self._attrs, name)

    def pong(self, rtt: float) -> None:
        if self._tel is not None:
            self._tel.ping_rtt(self._attrs, rtt)
