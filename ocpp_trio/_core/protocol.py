"""The RPC state of one OCPP-J connection, without I/O.

``RPCProtocol`` is to OCPP-J what h11's ``Connection`` is to HTTP: text goes in
through :meth:`RPCProtocol.receive` and comes out as events; outbound frames
are produced as text by the ``send_*`` methods.  It owns the table of pending
outbound calls, the set of inbound calls in flight, the bad-message counter
and the one-outstanding-CALL rule; it does not own time: the Trio layer decides
that a call expired (:meth:`RPCProtocol.expire_call`) and a reply arriving
after that surfaces as :class:`LateResponse`.

What a malformed or unexpected inbound frame gets (OCPP-J 1.6 §4.1-4.2,
OCPP-J 2.0.1 §4.1-4.3, OCPP-J 2.1 §4.1-4.3).  "-1" is the id used when the
frame's id cannot be read.  Frames whose type is an answer (3, 4, 5) are never
answered: a CALLERROR may only answer a CALL, and the peer is not waiting for
anything; when their id is readable and names a pending call, that call fails
at once instead of waiting for its timeout.  SEND frames are never answered
(OCPP-J 2.1 §4.2.6: no response of any kind).

=====================================  ==========================  ==========================  ==========================
case                                   1.6                         2.0.1                       2.1
=====================================  ==========================  ==========================  ==========================
not UTF-8 / not JSON / NaN             [4,"-1",FormationViolation] [4,"-1",RpcFrameworkError]  [4,"-1",RpcFrameworkError]
not an array, empty array              [4,"-1",FormationViolation] [4,"-1",RpcFrameworkError]  [4,"-1",RpcFrameworkError]
type not a number                      [4,id,FormationViolation]   [4,id,RpcFrameworkError]    [4,id,RpcFrameworkError]
unknown type number (incl. 5/6 pre-2.1) ignored (1.6 §4.1.3)       [4,id,MessageTypeNotSupp.]  [4,id,MessageTypeNotSupp.]
CALL: id missing / not string / > 36   [4,"-1",FormationViolation] [4,"-1",RpcFrameworkError]  [4,"-1",RpcFrameworkError]
CALL: wrong element count              [4,id,FormationViolation]   [4,id,RpcFrameworkError]    [4,id,RpcFrameworkError]
CALL: action not a string              [4,id,FormationViolation]   [4,id,RpcFrameworkError]    [4,id,RpcFrameworkError]
CALL: payload not an object            [4,id,FormationViolation]   [4,id,FormatViolation]      [4,id,FormatViolation]
CALL: id already in flight             [4,id,ProtocolError]        [4,id,RpcFrameworkError]    [4,id,RpcFrameworkError]
SEND: any defect                       (no SEND in 1.6)            (no SEND in 2.0.1)          not answered
CALLRESULT/CALLERROR/CALLRESULTERROR   not answered                not answered                not answered, except
  malformed                                                                                    [5,id,...] for a CALLRESULT
                                                                                               naming a pending call
CALLRESULT/CALLERROR for unknown id    not answered                not answered                not answered
=====================================  ==========================  ==========================  ==========================

Strict-mode schema failures are not decided here (see ``validation.py``);
OCPP 2.1's CALLRESULTERROR for a CALLRESULT that fails validation is produced
by :meth:`RPCProtocol.send_call_result_error` when the Trio layer asks.

Bad-message counting: the counter counts *consecutive* bad frames; any
well-formed frame resets it to zero.  A long-lived connection with a firmware
that now and then sends one broken frame is never cut for it, while a peer that
sends only garbage is cut after ``max_bad_messages + 1`` frames.  Bad frames are
every case of the table above plus a CALLRESULT/CALLERROR whose id was never
ours.  A *late* reply (its call expired or was cancelled here, one of the last
``late_id_memory`` such ids) is not bad: it is reported as
:class:`LateResponse` and neither counts nor resets.

Refusing a CALL unread: a rate limit decides before the frame is decoded, so
that a peer over its rate cannot make us parse (and validate) its payloads.
:meth:`RPCProtocol.peek_request` reads only the head of the frame,
``[2,"<id>","<action>",`` (or ``[6,`` for a 2.1 SEND), with one anchored
regular expression, never the payload; :meth:`RPCProtocol.refuse` then gives
the CALLERROR for it.  A refused frame is not registered as an inbound call
and neither counts as bad nor resets the count, since it was never checked.
A head the regular expression does not take (an id with escapes, an id
already in flight, a type the version lacks, a number written ``2.0``) makes
``peek_request`` return None, and the frame takes the normal road.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, assert_never

from .errors import (
    CODES_BY_PROTOCOL,
    ErrorCode,
    FrameDecodeError,
    ProtocolStateError,
    RPCError,
    RPCFrameworkError,
    RPCProtocolError,
    code_for_protocol,
    truncate_description,
)
from .frames import (
    MAX_MESSAGE_ID_LENGTH,
    UNKNOWN_MESSAGE_ID,
    Call,
    CallError,
    CallResult,
    CallResultError,
    Frame,
    MessageType,
    Send,
    decode,
    encode,
    encode_call,
    new_message_id,
)

#: The message types each version defines.
TYPES_BY_PROTOCOL: Final[Mapping[str, frozenset[int]]] = {
    "ocpp1.6": frozenset({2, 3, 4}),
    "ocpp2.0.1": frozenset({2, 3, 4}),
    "ocpp2.1": frozenset({2, 3, 4, 5, 6}),
}

#: How many characters of a bad frame an event carries (never the whole text).
EXCERPT_LENGTH: Final = 120

#: The longest action :meth:`RPCProtocol.peek_request` reads (OCPP's longest is 33).
MAX_PEEKED_ACTION_LENGTH: Final = 100

_WS = r"[ \t\n\r]*"  # JSON whitespace (RFC 8259 §2)
# A JSON string without escapes; the id as OCPP-J allows it (1 to 36 characters).
_REQUEST_HEAD: Final = re.compile(
    rf'{_WS}\[{_WS}([26]){_WS},{_WS}"([^"\\\x00-\x1f]{{1,{MAX_MESSAGE_ID_LENGTH}}})"'
    rf'{_WS},{_WS}"([^"\\\x00-\x1f]{{1,{MAX_PEEKED_ACTION_LENGTH}}})"{_WS},'
)


class Role(enum.Enum):
    """Which end of the connection this is."""

    CLIENT = "client"  # the charging station
    SERVER = "server"  # the CSMS


class RPCState(enum.Enum):
    """The RPC state of the connection."""

    OPEN = "open"
    CLOSING = "closing"  # no new outbound calls; answers still flow
    CLOSED = "closed"


_TRANSITIONS: Final[Mapping[tuple[RPCState, str], RPCState]] = {
    (RPCState.OPEN, "start_close"): RPCState.CLOSING,
    (RPCState.OPEN, "closed"): RPCState.CLOSED,
    (RPCState.CLOSING, "start_close"): RPCState.CLOSING,
    (RPCState.CLOSING, "closed"): RPCState.CLOSED,
    (RPCState.CLOSED, "closed"): RPCState.CLOSED,
}


# --- events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CallReceived:
    """The peer sent a CALL; answer it with ``send_result`` / ``send_error`` (or forget it)."""

    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendReceived:
    """OCPP 2.1: the peer sent a SEND; it must not be answered."""

    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultReceived:
    """A CALLRESULT answered our pending call ``message_id`` (now no longer pending)."""

    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReceived:
    """A CALLERROR answered our pending call ``message_id`` (now no longer pending)."""

    message_id: str
    action: str
    code: str
    description: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResultErrorReceived:
    """OCPP 2.1: the peer could not process the CALLRESULT we sent for its call ``message_id``."""

    message_id: str
    code: str
    description: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class LateResponse:
    """An answer for a call that already expired or was cancelled here."""

    message_id: str
    action: str
    frame: Frame


@dataclass(frozen=True, slots=True, kw_only=True)
class BadMessage:
    """An inbound frame broke the framing rules (see the module table).

    Attributes:
        error: the canonical RPC error describing the defect.
        reply: the text to send back, or None when the case is not answered.
        message_id: the id read from the frame, or "-1".
        excerpt: the first characters of the frame, for logs.
        count: consecutive bad frames so far, this one included.
        limit_exceeded: ``count`` is past ``max_bad_messages``: close the connection (1002).
        failed_call: the id of our pending call this frame claimed to answer
            (that call is no longer pending and must fail), else None.
        failed_action: the action of ``failed_call``.
        peer_error: for a CALLERROR answering ``failed_call`` whose errorCode
            was readable but whose errorDescription or errorDetails were not as
            OCPP-J requires: ``(code, description, raw_details)`` as the peer
            sent them (see :attr:`FrameDecodeError.peer_error`); else None.
    """

    error: RPCError
    reply: str | None
    message_id: str
    excerpt: str
    count: int
    limit_exceeded: bool
    failed_call: str | None = None
    failed_action: str | None = None
    peer_error: tuple[str, str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHead:
    """The head of a frame read as a CALL (or a 2.1 SEND), its payload unread.

    See :meth:`RPCProtocol.peek_request`.
    """

    message_id: str
    action: str
    is_send: bool


Event = (
    CallReceived
    | SendReceived
    | ResultReceived
    | ErrorReceived
    | CallResultErrorReceived
    | LateResponse
    | BadMessage
)


class RPCProtocol:
    """The OCPP-J RPC state of one WebSocket connection.

    Args:
        protocol: the negotiated subprotocol (``"ocpp1.6"``, ``"ocpp2.0.1"``,
            ``"ocpp2.1"`` or a vendor name).  It decides the frame types known,
            the error-code spellings sent, and whether SEND exists.  A vendor
            protocol gets 2.1's framing and 2.x spellings.
        role: which end this is (kept for events and logs).
        id_factory: makes message ids; uuid4 strings by default.
        max_bad_messages: consecutive bad frames tolerated; ``math.inf`` never closes.
        max_outstanding_calls: our CALLs allowed in flight at once; OCPP asks
            for 1 (SEND is exempt).  The Trio layer queues callers so that this
            is never exceeded; the core raises if it is.
        late_id_memory: how many expired call ids to remember, so a late
            answer is told apart from an answer to a call we never made.
    """

    def __init__(
        self,
        *,
        protocol: str | None,
        role: Role = Role.CLIENT,
        id_factory: Callable[[], str] = new_message_id,
        max_bad_messages: float = math.inf,
        max_outstanding_calls: float = 1,
        late_id_memory: int = 256,
    ) -> None:
        self.protocol = protocol
        self.role = role
        self.id_factory = id_factory
        self.max_bad_messages = max_bad_messages
        self.max_outstanding_calls = max_outstanding_calls
        self._late_id_memory = late_id_memory
        self._allowed_types = TYPES_BY_PROTOCOL.get(protocol or "", None)
        self._is_16 = protocol == "ocpp1.6"
        self._state = RPCState.OPEN
        self._pending: dict[str, str] = {}  # our CALLs awaiting an answer: id -> action
        # Plain dicts (ordered, and smaller than a set or an OrderedDict when
        # empty, as they are on an idle connection): the peer's unanswered
        # CALLs (id -> None) and our expired calls, oldest first (id -> action).
        self._inbound: dict[str, None] = {}
        self._expired: dict[str, str] = {}
        self._bad_count = 0

    # --- state ---------------------------------------------------------------

    @property
    def state(self) -> RPCState:
        """The RPC state (OPEN, CLOSING, CLOSED)."""
        return self._state

    @property
    def bad_message_count(self) -> int:
        """Consecutive bad frames received so far."""
        return self._bad_count

    @property
    def pending_calls(self) -> Mapping[str, str]:
        """Our CALLs awaiting an answer: message id -> action (read-only view)."""
        return dict(self._pending)

    @property
    def inbound_calls(self) -> frozenset[str]:
        """The ids of the peer's CALLs we have not answered yet."""
        return frozenset(self._inbound)

    @property
    def supports_send(self) -> bool:
        """Whether the SEND and CALLRESULTERROR frames exist on this protocol."""
        return self._allowed_types is None or MessageType.SEND in self._allowed_types

    def _move(self, event: str) -> None:
        try:
            self._state = _TRANSITIONS[self._state, event]
        except KeyError:
            raise ProtocolStateError(
                f"cannot {event.replace('_', ' ')} in state {self._state.name}"
            ) from None

    def start_close(self) -> None:
        """Stop accepting new outbound calls; answers in both directions still flow."""
        self._move("start_close")

    def closed(self) -> dict[str, str]:
        """Mark the connection closed; return the pending calls that can no longer be answered.

        The returned calls (id -> action) are forgotten; the Trio layer fails
        their waiters with ``ConnectionClosed``.
        """
        self._move("closed")
        failed = dict(self._pending)
        self._pending.clear()
        self._inbound.clear()
        return failed

    def _require_open(self, what: str) -> None:
        if self._state is not RPCState.OPEN:
            raise ProtocolStateError(
                f"cannot send a {what} in state {self._state.name}: the connection is closing"
            )

    # --- outbound ------------------------------------------------------------

    def send_call(
        self, action: str, payload: Mapping[str, Any], *, message_id: str | None = None
    ) -> tuple[str, str]:
        """Register a CALL as pending and return ``(message_id, text)``.

        Raises:
            ProtocolStateError: the connection is not OPEN, the id is in use,
                or ``max_outstanding_calls`` calls are already pending.
            ValueError: the payload cannot be encoded, or the id is invalid.
        """
        self._require_open("CALL")
        if len(self._pending) >= self.max_outstanding_calls:
            raise ProtocolStateError(
                f"{len(self._pending)} call(s) already outstanding, "
                f"at most {self.max_outstanding_calls} allowed"
            )
        mid = self.id_factory() if message_id is None else message_id
        self._check_id(mid)
        if mid in self._pending:
            raise ProtocolStateError(f"message id {mid!r} is already pending")
        text = encode_call(mid, action, payload)
        self._pending[mid] = action
        self._expired.pop(mid, None)
        return mid, text

    def send_send(
        self, action: str, payload: Mapping[str, Any], *, message_id: str | None = None
    ) -> tuple[str, str]:
        """OCPP 2.1: return ``(message_id, text)`` of a SEND frame (nothing is registered).

        Raises:
            ProtocolStateError: SEND does not exist on this protocol, or not OPEN.
        """
        if not self.supports_send:
            raise ProtocolStateError(
                f"SEND does not exist in {self.protocol}; it is new in ocpp2.1"
            )
        self._require_open("SEND")
        mid = self.id_factory() if message_id is None else message_id
        self._check_id(mid)
        return mid, encode(Send(message_id=mid, action=action, payload=dict(payload)))

    def _take_inbound(self, message_id: str) -> None:
        try:
            del self._inbound[message_id]
        except KeyError:
            raise ProtocolStateError(
                f"no inbound call {message_id!r} awaits an answer (answered twice, or never received)"
            ) from None

    def send_result(self, message_id: str, payload: Mapping[str, Any]) -> str:
        """Answer the peer's CALL ``message_id`` with a CALLRESULT.

        Raises:
            ProtocolStateError: there is no such unanswered inbound call.
            ValueError: the payload cannot be encoded (not JSON, or a string
                with a lone surrogate); the call stays unanswered, so that it
                can still get a CALLERROR.
        """
        text = encode(CallResult(message_id=message_id, payload=dict(payload)))
        self._take_inbound(message_id)
        return text

    def send_error(self, message_id: str, error: RPCError) -> str:
        """Answer the peer's CALL ``message_id`` with a CALLERROR built from ``error``.

        The code is spelled the way the negotiated version spells it and the
        description is capped at 255 characters.

        Raises:
            ProtocolStateError: there is no such unanswered inbound call.
            ValueError: the description or details cannot be encoded (not JSON,
                or a string with a lone surrogate); the call stays unanswered.
        """
        text = self._error_text(CallError, message_id, error)
        self._take_inbound(message_id)
        return text

    def forget_inbound(self, message_id: str) -> None:
        """Drop the peer's CALL ``message_id`` without answering it (``NOREPLY``)."""
        self._inbound.pop(message_id, None)

    def send_call_result_error(self, message_id: str, error: RPCError) -> str:
        """OCPP 2.1: tell the peer its CALLRESULT ``message_id`` could not be processed."""
        if not self.supports_send:
            raise ProtocolStateError(f"CALLRESULTERROR does not exist in {self.protocol}")
        return self._error_text(CallResultError, message_id, error)

    def _error_text(
        self, cls: type[CallError] | type[CallResultError], message_id: str, error: RPCError
    ) -> str:
        return encode(
            cls(
                message_id=message_id,
                error_code=code_for_protocol(error.code, self.protocol),
                error_description=truncate_description(error.description),
                error_details=dict(error.details),
            )
        )

    def expire_call(self, message_id: str) -> None:
        """Forget our pending call (timed out or cancelled); a later answer is a LateResponse."""
        pending = self._pending.pop(message_id, None)
        if pending is None:
            return
        self._expired[message_id] = pending
        while len(self._expired) > self._late_id_memory:
            del self._expired[next(iter(self._expired))]

    @staticmethod
    def _check_id(message_id: str) -> None:
        if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
            raise ValueError(
                f"message id must be a string of 1 to {MAX_MESSAGE_ID_LENGTH} characters"
            )

    # --- inbound -------------------------------------------------------------

    def peek_request(self, text: str | bytes) -> RequestHead | None:
        """Read the id and action of a CALL or SEND from the head of ``text`` alone.

        Costs one anchored regular expression over the first characters; the
        payload is not decoded.  Returns None when the head is not plainly a
        CALL (or, where SEND exists, a SEND) with a fresh id: the frame then
        goes to :meth:`receive` (see the module docstring).  Changes nothing.
        """
        if not isinstance(text, str):
            return None
        match = _REQUEST_HEAD.match(text)
        if match is None:
            return None
        kind = int(match[1])
        if self._allowed_types is not None and kind not in self._allowed_types:
            return None
        mid = match[2]
        if kind == MessageType.CALL and mid in self._inbound:
            return None  # a duplicate id: receive() gives it the answer the table asks for
        return RequestHead(message_id=mid, action=match[3], is_send=kind == MessageType.SEND)

    def refuse(self, head: RequestHead, error: RPCError) -> str | None:
        """The CALLERROR that refuses the unread frame ``head``; None for a SEND.

        The call is not registered (it needs no answer from the application)
        and the bad-message count does not move.  A SEND is never answered
        (OCPP-J 2.1 §4.2.6).
        """
        if head.is_send:
            return None
        return self._error_text(CallError, head.message_id, error)

    def receive(self, text: str | bytes) -> Event:
        """Take one inbound WebSocket message and return what it means.

        Never raises for anything the peer sent: every defect becomes a
        :class:`BadMessage` (with the reply to send, if any).
        """
        try:
            frame = decode(text, allowed_types=self._allowed_types)
        except FrameDecodeError as exc:
            return self._bad(exc, text)
        match frame:
            case Call(message_id=mid, action=action, payload=payload):
                if mid in self._inbound:
                    err: RPCError = (RPCProtocolError if self._is_16 else RPCFrameworkError)(
                        f"message id {mid!r} is already in use by an unanswered call"
                    )
                    return self._bad(
                        FrameDecodeError(err, message_id=mid, message_type=MessageType.CALL),
                        text,
                    )
                self._bad_count = 0
                self._inbound[mid] = None
                return CallReceived(message_id=mid, action=action, payload=payload)
            case Send(message_id=mid, action=action, payload=payload):
                self._bad_count = 0
                return SendReceived(message_id=mid, action=action, payload=payload)
            case CallResultError(
                message_id=mid, error_code=code, error_description=desc, error_details=details
            ):
                self._bad_count = 0
                return CallResultErrorReceived(
                    message_id=mid, code=code, description=desc, details=details
                )
            case CallResult() | CallError():
                return self._answer(frame, text)
            case _:  # pragma: no cover
                assert_never(frame)

    def _answer(self, frame: CallResult | CallError, text: str | bytes) -> Event:
        mid = frame.message_id
        pending = self._pending.pop(mid, None)
        if pending is None:
            action = self._expired.pop(mid, None)
            if action is not None:
                return LateResponse(message_id=mid, action=action, frame=frame)
            kind = "CALLRESULT" if isinstance(frame, CallResult) else "CALLERROR"
            return self._bad(
                FrameDecodeError(
                    RPCProtocolError(
                        f"{kind} for message id {mid!r}, which matches no call of ours"
                    ),
                    message_id=mid,
                    message_type=3 if isinstance(frame, CallResult) else 4,
                ),
                text,
            )
        self._bad_count = 0
        if isinstance(frame, CallResult):
            return ResultReceived(message_id=mid, action=pending, payload=frame.payload)
        return ErrorReceived(
            message_id=mid,
            action=pending,
            code=frame.error_code,
            description=frame.error_description,
            details=frame.error_details,
        )

    def _bad(self, exc: FrameDecodeError, text: str | bytes) -> BadMessage:
        self._bad_count += 1
        mtype = exc.message_type
        reply: str | None = None
        failed_call: str | None = None
        failed_action: str | None = None
        peer_error: tuple[str, str, Any] | None = None
        if exc.error.code == ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED:
            if not self._is_16:  # OCPP-J 1.6 §4.1.3: ignore a message of an unknown type
                reply = self._error_text(CallError, exc.message_id, exc.error)
        elif mtype in (MessageType.CALLRESULT, MessageType.CALLERROR):
            # An answer we cannot use is never answered with a CALLERROR; the
            # call it names fails at once.  OCPP 2.1 tells the peer with a
            # CALLRESULTERROR when it was a CALLRESULT (OCPP-J 2.1 §4.2.5).
            pending = self._pending.pop(exc.message_id, None)
            if pending is not None:
                failed_call, failed_action = exc.message_id, pending
                if mtype == MessageType.CALLERROR:
                    peer_error = exc.peer_error
                if mtype == MessageType.CALLRESULT and self.supports_send:
                    reply = self._error_text(CallResultError, exc.message_id, exc.error)
        elif mtype in (MessageType.CALLRESULTERROR, MessageType.SEND):
            pass  # about the peer's call, or a SEND: never answered
        else:
            reply = self._error_text(CallError, exc.message_id, exc.error)
        if isinstance(text, bytes | bytearray):
            excerpt = repr(bytes(text[:EXCERPT_LENGTH]))
        else:
            excerpt = text[:EXCERPT_LENGTH]
        return BadMessage(
            error=exc.error,
            reply=reply,
            message_id=exc.message_id,
            excerpt=excerpt,
            count=self._bad_count,
            limit_exceeded=self._bad_count > self.max_bad_messages,
            failed_call=failed_call,
            failed_action=failed_action,
            peer_error=peer_error,
        )


def codes_for(protocol: str | None) -> frozenset[ErrorCode]:
    """The error codes ``protocol`` defines (2.x's for a vendor protocol)."""
    return CODES_BY_PROTOCOL.get(protocol or "", CODES_BY_PROTOCOL["ocpp2.0.1"])


__all__ = [
    "UNKNOWN_MESSAGE_ID",
    "BadMessage",
    "CallReceived",
    "CallResultErrorReceived",
    "ErrorReceived",
    "Event",
    "LateResponse",
    "RPCProtocol",
    "RPCState",
    "RequestHead",
    "ResultReceived",
    "Role",
    "SendReceived",
]
