"""OCPP-J error codes and the exception hierarchy of ocpp_trio.

OCPP-J 1.6 §4.2.3 and OCPP-J 2.0.1/2.1 §4.3 define the error codes a CALLERROR
(and, in 2.1, a CALLRESULTERROR) may carry.  The sets differ by version:

============================  ===================================  ===============
concept                       1.6 spelling                         2.0.1 / 2.1
============================  ===================================  ===============
payload syntactically wrong   FormationViolation                   FormatViolation
too few / too many elements   OccurenceConstraintViolation (sic)   OccurrenceConstraintViolation
not a valid RPC frame         (none: FormationViolation)           RpcFrameworkError
unknown message type id       (none: ProtocolError)                MessageTypeNotSupported
============================  ===================================  ===============

Every other code (NotImplemented, NotSupported, InternalError, ProtocolError,
SecurityError, PropertyConstraintViolation, TypeConstraintViolation,
GenericError) is spelled the same in all three versions.

We *send* each version's own spelling (:func:`code_for_protocol`) and *accept*
both spellings on receipt (:func:`create_rpc_error` maps either to its class).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar, Final

#: OCPP-J caps errorDescription; we never send more than this many characters.
MAX_DESCRIPTION_LENGTH: Final = 255


class ErrorCode(enum.StrEnum):
    """Every error code any OCPP-J version defines, under its wire spelling."""

    GENERIC_ERROR = "GenericError"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMAT_VIOLATION = "FormatViolation"
    FORMATION_VIOLATION = "FormationViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    OCCURENCE_CONSTRAINT_VIOLATION = "OccurenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"


_COMMON: Final = frozenset(
    {
        ErrorCode.GENERIC_ERROR,
        ErrorCode.NOT_IMPLEMENTED,
        ErrorCode.NOT_SUPPORTED,
        ErrorCode.INTERNAL_ERROR,
        ErrorCode.PROTOCOL_ERROR,
        ErrorCode.SECURITY_ERROR,
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
        ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    }
)

#: The codes each version defines (its own spelling only).
CODES_BY_PROTOCOL: Final[Mapping[str, frozenset[ErrorCode]]] = {
    "ocpp1.6": _COMMON | {ErrorCode.FORMATION_VIOLATION, ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION},
    "ocpp2.0.1": _COMMON
    | {
        ErrorCode.FORMAT_VIOLATION,
        ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
        ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED,
        ErrorCode.RPC_FRAMEWORK_ERROR,
    },
}
CODES_BY_PROTOCOL["ocpp2.1"] = CODES_BY_PROTOCOL["ocpp2.0.1"]  # type: ignore[index]

_TO_16: Final[Mapping[ErrorCode, ErrorCode]] = {
    ErrorCode.FORMAT_VIOLATION: ErrorCode.FORMATION_VIOLATION,
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    ErrorCode.RPC_FRAMEWORK_ERROR: ErrorCode.FORMATION_VIOLATION,
    ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: ErrorCode.PROTOCOL_ERROR,
}
_TO_2X: Final[Mapping[ErrorCode, ErrorCode]] = {
    ErrorCode.FORMATION_VIOLATION: ErrorCode.FORMAT_VIOLATION,
    ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION: ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
}


def code_for_protocol(code: ErrorCode | str, protocol: str | None) -> str:
    """Return the spelling of ``code`` to send on a connection speaking ``protocol``.

    Codes a version does not define are mapped to its nearest code (see the
    module table); unknown protocols (vendor protocols) and non-standard codes
    get the code unchanged.
    """
    try:
        known = ErrorCode(code)
    except ValueError:
        return str(code)
    if protocol == "ocpp1.6":
        return _TO_16.get(known, known).value
    if protocol in ("ocpp2.0.1", "ocpp2.1"):
        return _TO_2X.get(known, known).value
    return known.value


def truncate_description(text: str) -> str:
    """Cap an error description at :data:`MAX_DESCRIPTION_LENGTH` characters."""
    if len(text) <= MAX_DESCRIPTION_LENGTH:
        return text
    return text[: MAX_DESCRIPTION_LENGTH - 3] + "..."


class OCPPError(Exception):
    """The root of every exception ocpp_trio raises on purpose."""


class RPCError(OCPPError):
    """An error that travels as an OCPP-J CALLERROR (or 2.1 CALLRESULTERROR).

    Raise a subclass from a handler to answer the call with that code; the
    description is capped at 255 characters when sent.

    Attributes:
        code: the error code (class-level, one subclass per code).
        description: human-readable text, safe to send to the peer.
        details: a JSON object with extra information, sent as errorDetails.
    """

    code: ClassVar[str] = ErrorCode.GENERIC_ERROR.value

    def __init__(self, description: str = "", details: Mapping[str, Any] | None = None) -> None:
        self.description = description
        self.details: dict[str, Any] = dict(details) if details else {}
        super().__init__(description)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, description={self.description!r})"

    def __str__(self) -> str:
        return f"{self.code}: {self.description}" if self.description else self.code


class RPCGenericError(RPCError):
    """Any other error not covered by a more specific code."""

    code = ErrorCode.GENERIC_ERROR.value


class RPCNotImplementedError(RPCError):
    """The requested action is not known by the receiver."""

    code = ErrorCode.NOT_IMPLEMENTED.value


class RPCNotSupportedError(RPCError):
    """The requested action is known but not supported by the receiver."""

    code = ErrorCode.NOT_SUPPORTED.value


class RPCInternalError(RPCError):
    """An internal error occurred while processing the action."""

    code = ErrorCode.INTERNAL_ERROR.value


class RPCProtocolError(RPCError):
    """The payload is incomplete or does not conform to the PDU structure."""

    code = ErrorCode.PROTOCOL_ERROR.value


class RPCSecurityError(RPCError):
    """A security issue prevented the receiver from completing the action."""

    code = ErrorCode.SECURITY_ERROR.value


class RPCFormatViolationError(RPCError):
    """The payload is syntactically incorrect (2.0.1/2.1 spelling)."""

    code = ErrorCode.FORMAT_VIOLATION.value


class RPCFormationViolationError(RPCError):
    """The payload is syntactically incorrect (1.6 spelling)."""

    code = ErrorCode.FORMATION_VIOLATION.value


class RPCPropertyConstraintViolationError(RPCError):
    """A field holds a value that breaks a constraint (enum, length, range, pattern)."""

    code = ErrorCode.PROPERTY_CONSTRAINT_VIOLATION.value


class RPCOccurrenceConstraintViolationError(RPCError):
    """A field is missing or occurs too often (both spellings map here on receipt)."""

    code = ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION.value


class RPCTypeConstraintViolationError(RPCError):
    """A field has the wrong data type."""

    code = ErrorCode.TYPE_CONSTRAINT_VIOLATION.value


class RPCMessageTypeNotSupportedError(RPCError):
    """The message type number is not supported (2.0.1/2.1)."""

    code = ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED.value


class RPCFrameworkError(RPCError):
    """The frame is not a valid RPC message, e.g. its id cannot be read (2.0.1/2.1)."""

    code = ErrorCode.RPC_FRAMEWORK_ERROR.value


_CLASS_BY_CODE: Final[Mapping[str, type[RPCError]]] = {
    cls.code: cls
    for cls in (
        RPCGenericError,
        RPCNotImplementedError,
        RPCNotSupportedError,
        RPCInternalError,
        RPCProtocolError,
        RPCSecurityError,
        RPCFormatViolationError,
        RPCFormationViolationError,
        RPCPropertyConstraintViolationError,
        RPCOccurrenceConstraintViolationError,
        RPCTypeConstraintViolationError,
        RPCMessageTypeNotSupportedError,
        RPCFrameworkError,
    )
} | {ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION.value: RPCOccurrenceConstraintViolationError}


def create_rpc_error(
    code: str, description: str = "", details: Mapping[str, Any] | None = None
) -> RPCError:
    """Build the exception for ``code``; unknown codes give an :class:`RPCGenericError`.

    Both spellings of a code are accepted (``OccurenceConstraintViolation`` and
    ``OccurrenceConstraintViolation`` give the same class).  An unknown code is
    kept on the instance so nothing the peer said is lost.
    """
    cls = _CLASS_BY_CODE.get(code)
    if cls is None:
        err: RPCError = RPCGenericError(description, details)
        err.code = code  # type: ignore[misc]
        return err
    return cls(description, details)


def error_to_dict(err: RPCError) -> dict[str, Any]:
    """Return ``{"code", "description", "details"}`` for logs and events."""
    return {"code": err.code, "description": err.description, "details": dict(err.details)}


# --- errors that do not travel over the wire ---------------------------------


class ProtocolStateError(OCPPError):
    """An operation is not allowed in the connection's current state.

    For example a second CALL while one is outstanding and the
    one-outstanding-CALL rule is on, or a SEND on a protocol that has no SEND.
    """


class FrameDecodeError(OCPPError):
    """Inbound text is not a valid OCPP-J frame.

    Attributes:
        message_id: the frame's id when it could be read, else ``"-1"``.
        error: the RPC error to answer with (its class names the code to send).
        message_type: the message type number when it could be read.
        peer_error: for a CALLERROR (or CALLRESULTERROR) whose errorCode could
            be read but whose errorDescription or errorDetails break the
            framing rules: what the peer said, ``(code, description,
            raw_details)``; the description is ``""`` when it was not a
            string, ``raw_details`` the errorDetails element as received.
            None otherwise.
    """

    def __init__(
        self,
        error: RPCError,
        *,
        message_id: str = "-1",
        message_type: int | None = None,
        peer_error: tuple[str, str, Any] | None = None,
    ):
        self.error = error
        self.message_id = message_id
        self.message_type = message_type
        self.peer_error = peer_error
        super().__init__(error.description)


class CallErrorReceived(OCPPError):
    """The peer answered our CALL with a CALLERROR.

    Attributes:
        code: the error code as the peer sent it.
        description: the peer's description.
        details: the peer's errorDetails object (``{}`` when it sent something
            other than an object).
        raw_details: errorDetails exactly as received: the same object as
            ``details``, or, from a peer that breaks the framing rule that
            errorDetails is an object (an array, a string, null...), that
            value.  Such a frame is also reported as a ``bad_message``.
        malformed: whether the frame broke the framing rules (errorDetails not
            an object, or errorDescription not a string).
        error: the matching :class:`RPCError` (``create_rpc_error``), handy for ``match``.
        action: the action of the call that failed.
    """

    def __init__(
        self,
        code: str,
        description: str,
        details: Mapping[str, Any],
        *,
        action: str = "",
        raw_details: Any = None,
        malformed: bool = False,
    ) -> None:
        self.code = code
        self.description = description
        self.details = dict(details)
        self.raw_details: Any = (
            self.details if raw_details is None and not malformed else raw_details
        )
        self.malformed = malformed
        self.action = action
        self.error = create_rpc_error(code, description, details)
        where = f"{action}: " if action else ""
        super().__init__(
            f"{where}peer answered {code}: {description}"
            if description
            else f"{where}peer answered {code}"
        )


class CallTimeout(OCPPError):
    """No answer to our CALL within its timeout (the call is forgotten; a late answer is reported)."""


class ConnectionClosed(OCPPError):
    """The connection closed (by the peer or the network) before the operation finished.

    Attributes:
        code: the WebSocket close code, when known.
        reason: the close reason text, when known.
    """

    def __init__(
        self, message: str = "connection closed", *, code: int | None = None, reason: str = ""
    ):
        self.code = code
        self.reason = reason
        super().__init__(message)


class ValidationError(OCPPError):
    """A payload breaks its schema in strict mode.

    Attributes:
        error: the RPC error (code and description naming the field path) the
            peer gets, or would get, for this payload.
        protocol, action, direction: where the schema came from; direction is
            ``"request"`` or ``"response"``.
        path: where in the payload the failing rule applies, as keys and list
            indexes from the payload's root: ``("meterValue", 0,
            "sampledValue", 0, "value")``; ``()`` for the payload itself.  For
            ``required`` and ``additionalProperties`` it is the object that
            misses or has the property (the description names the property).
        field: ``path`` as text, ``"meterValue[0].sampledValue[0].value"``
            (``""`` for the payload itself).
        rule: the JSON schema keyword that failed (``"type"``, ``"required"``,
            ``"maxLength"``, ``"enum"``, ``"additionalProperties"``...), or
            None when there is no schema to validate against
            (``require_schema``).
    """

    def __init__(
        self,
        error: RPCError,
        *,
        protocol: str,
        action: str,
        direction: str,
        path: tuple[str | int, ...] = (),
        rule: str | None = None,
    ) -> None:
        self.error = error
        self.protocol = protocol
        self.action = action
        self.direction = direction
        self.path: tuple[str | int, ...] = path
        self.field: str = "".join(
            f"[{step}]" if isinstance(step, int) else f".{step}" for step in path
        ).removeprefix(".")
        self.rule: str | None = rule
        where = f" (rule {rule!r} at {self.field or 'the payload'})" if rule is not None else ""
        super().__init__(
            f"{protocol} {action} {direction}: {error.code}: {error.description}{where}"
        )


class ProtocolMismatchError(OCPPError, ValueError):
    """A call named a protocol other than the one the connection negotiated."""


class MalformedResponseError(OCPPError):
    """The peer answered our CALL with a frame that breaks the OCPP-J framing rules.

    Attributes:
        error: the RPC error describing the defect.
    """

    def __init__(self, error: RPCError, *, action: str = "") -> None:
        self.error = error
        self.action = action
        super().__init__(
            f"{action}: malformed answer: {error.description}"
            if action
            else f"malformed answer: {error.description}"
        )


# --- connecting -----------------------------------------------------------------


class ConnectError(OCPPError, ConnectionError):
    """A connection attempt failed (the cause says how)."""


class ConnectTimeout(ConnectError, TimeoutError):
    """TCP, TLS and the WebSocket handshake did not finish within ``connect_timeout``."""


class TLSError(ConnectError):
    """The TLS handshake failed; the message names the TLS cause (certificate, version...)."""


class HandshakeRejected(ConnectError):
    """The server answered the WebSocket handshake with an HTTP error status.

    Attributes:
        status_code: the HTTP status (401 bad credentials, 400 bad identity, 503 full...).
    """

    def __init__(self, status_code: int, message: str = "") -> None:
        self.status_code = status_code
        super().__init__(
            message or f"server rejected the WebSocket handshake with HTTP {status_code}"
        )


class ProtocolNegotiationError(ConnectError):
    """The server accepted none of the subprotocols we offered."""
