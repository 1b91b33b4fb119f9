"""OCPP-J frames: the five RPC message types, encoded to and decoded from text.

OCPP-J 1.6 §4.1 and OCPP-J 2.0.1 §4.1 define an RPC frame as a JSON array
whose first element is the message type number:

===========  ==  ====================================================  ==========
frame        #   elements                                              versions
===========  ==  ====================================================  ==========
CALL         2   [2, messageId, action, payload]                       all
CALLRESULT   3   [3, messageId, payload]                               all
CALLERROR    4   [4, messageId, errorCode, errorDescription, details]  all
CALLRESULT-  5   [5, messageId, errorCode, errorDescription, details]  2.1
ERROR
SEND         6   [6, messageId, action, payload]                       2.1
===========  ==  ====================================================  ==========

One frame is one WebSocket text message, so there is no partial buffering.
The messageId is a string of at most 36 characters (OCPP-J §4.1.3); we
generate uuid4 strings, which are exactly 36.

:func:`decode` turns text into a frame or raises :class:`FrameDecodeError`
carrying the id it could read (``"-1"`` otherwise), the message type it could
read, and the canonical RPC error; what to *answer* (if anything) depends on
the frame type and the version and is decided in ``protocol.py``.
"""

from __future__ import annotations

import enum
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import (
    FrameDecodeError,
    RPCError,
    RPCFormatViolationError,
    RPCFrameworkError,
    RPCMessageTypeNotSupportedError,
)

#: OCPP-J caps messageId at 36 characters.
MAX_MESSAGE_ID_LENGTH: Final = 36
#: The id to answer with when the inbound frame's id cannot be read (OCPP-J 2.0.1 §4.2.3).
UNKNOWN_MESSAGE_ID: Final = "-1"


class MessageType(enum.IntEnum):
    """The OCPP-J message type numbers."""

    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4
    CALLRESULTERROR = 5
    SEND = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """A request: ``[2, message_id, action, payload]``."""

    message_id: str
    action: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResult:
    """A successful answer to a CALL: ``[3, message_id, payload]``."""

    message_id: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallError:
    """A failed answer to a CALL: ``[4, message_id, code, description, details]``."""

    message_id: str
    error_code: str
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResultError:
    """OCPP 2.1: a CALLRESULT could not be processed: ``[5, message_id, code, description, details]``."""

    message_id: str
    error_code: str
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """OCPP 2.1: an unconfirmed message: ``[6, message_id, action, payload]``; never answered."""

    message_id: str
    action: str
    payload: dict[str, Any] = field(default_factory=dict)


Frame = Call | CallResult | CallError | CallResultError | Send

_ELEMENT_COUNT: Final = {
    MessageType.CALL: 4,
    MessageType.CALLRESULT: 3,
    MessageType.CALLERROR: 5,
    MessageType.CALLRESULTERROR: 5,
    MessageType.SEND: 4,
}


def _make_dumps() -> Callable[[Any], str]:
    """Compact JSON text of a frame's elements, NaN and infinities refused.

    ``JSONEncoder.encode`` builds the C encoder afresh on every call; this
    builds it once (what ``encode`` would build, without the circular
    reference check: a cycle fails as a RecursionError, turned into
    ValueError by the callers), and falls back to ``encode`` where there is
    no C encoder.
    """
    encoder = json.JSONEncoder(
        ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return encoder.encode
    try:
        chunks = make(
            None,
            encoder.default,
            json.encoder.encode_basestring,
            None,
            ":",
            ",",
            False,
            False,
            False,
        )
        if "".join(chunks([2, "é", {"a": [1.5, None, True]}], 0)) != encoder.encode(
            [2, "é", {"a": [1.5, None, True]}]
        ):  # pragma: no cover - a C encoder of another shape
            return encoder.encode
    except Exception:  # pragma: no cover - a C encoder of another signature
        return encoder.encode

    def dumps(value: Any) -> str:
        return "".join(chunks(value, 0))

    return dumps


_dumps: Final = _make_dumps()


#: The RFC 9562 variant digit (binary 10xx) for each random hex digit.
_VARIANT_DIGIT: Final = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def new_message_id() -> str:
    """Return a fresh message id: a uuid4 string (36 characters).

    The same text as ``str(uuid.uuid4())`` (16 bytes from ``os.urandom``, the
    version and variant bits set), built without a ``UUID`` object: this runs
    once per call, and this way costs a third of the time.
    """
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:]}"


def encode(frame: Frame) -> str:
    """Return the OCPP-J text of ``frame``.

    The text is always valid Unicode, so it can be sent as a WebSocket text
    message (UTF-8).

    Raises:
        ValueError: the frame holds something JSON cannot carry (NaN, a set...)
            or a string with an unpaired UTF-16 surrogate (``"\\ud800"``), which
            UTF-8 cannot encode; the message names where, never the value.
    """
    match frame:
        case Call(message_id=mid, action=action, payload=payload):
            data: list[Any] = [2, mid, action, payload]
        case CallResult(message_id=mid, payload=payload):
            data = [3, mid, payload]
        case CallError(
            message_id=mid, error_code=code, error_description=desc, error_details=details
        ):
            data = [4, mid, code, desc, details]
        case CallResultError(
            message_id=mid, error_code=code, error_description=desc, error_details=details
        ):
            data = [5, mid, code, desc, details]
        case Send(message_id=mid, action=action, payload=payload):
            data = [6, mid, action, payload]
        case _:  # pragma: no cover - exhaustive for the Frame union
            raise TypeError(f"not an OCPP-J frame: {type(frame).__name__}")
    return _encode_elements(data)


def encode_call(message_id: str, action: str, payload: Mapping[str, Any]) -> str:
    """``encode(Call(message_id=..., action=..., payload=...))``, without the frame object.

    The outbound call's hot path; the same text and the same errors.
    """
    return _encode_elements(
        [2, message_id, action, payload if isinstance(payload, dict) else dict(payload)]
    )


def _encode_elements(data: list[Any]) -> str:
    try:
        text = _dumps(data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"payload cannot be encoded as JSON: {exc}") from None
    if not text.isascii() and _SURROGATE.search(text) is not None:
        where = _surrogate_path(data, _ELEMENT_NAMES[MessageType(data[0])])
        raise ValueError(
            f"{where} holds an unpaired UTF-16 surrogate, which cannot be sent as UTF-8 text"
        )
    return text


#: A lone surrogate in a str (from a "\udXXX" escape, say): not Unicode, no UTF-8 for it.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")

#: The name of each element of a frame, for error texts.
_ELEMENT_NAMES: Final[Mapping[MessageType, tuple[str, ...]]] = {
    MessageType.CALL: ("messageTypeId", "messageId", "action", "payload"),
    MessageType.CALLRESULT: ("messageTypeId", "messageId", "payload"),
    MessageType.CALLERROR: (
        "messageTypeId",
        "messageId",
        "errorCode",
        "errorDescription",
        "errorDetails",
    ),
    MessageType.CALLRESULTERROR: (
        "messageTypeId",
        "messageId",
        "errorCode",
        "errorDescription",
        "errorDetails",
    ),
    MessageType.SEND: ("messageTypeId", "messageId", "action", "payload"),
}


def _surrogate_path(data: list[Any], names: tuple[str, ...]) -> str:
    """The path of the first string (value or key) of ``data`` holding a lone surrogate.

    Like the strict-mode descriptions: ``payload.meterValue[0].sampledValue[0].value``;
    a key that holds the surrogate is shown escaped.
    """
    for name, element in zip(names, data, strict=True):
        path = _find_surrogate(element, name)
        if path is not None:
            return path
    return "the frame"  # pragma: no cover - the caller found one


def _find_surrogate(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            shown = (
                key.encode("utf-8", "backslashreplace").decode() if isinstance(key, str) else key
            )
            where = f"{path}.{shown}"
            if isinstance(key, str) and _SURROGATE.search(key):
                return where
            found = _find_surrogate(item, where)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _find_surrogate(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


_loads = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float).decode


def _is_unicode(data: Any) -> bool:
    """Whether ``data`` can be written as UTF-8 (no lone surrogate from a ``\\uXXXX`` escape)."""
    try:
        _dumps(data).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        return False
    return True


def _describe(value: Any) -> str:
    """Name a JSON value's type for an error text without echoing the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _fail(
    error: RPCError, message_id: str = UNKNOWN_MESSAGE_ID, message_type: int | None = None
) -> FrameDecodeError:
    return FrameDecodeError(error, message_id=message_id, message_type=message_type)


def decode(text: str | bytes, *, allowed_types: frozenset[int] | None = None) -> Frame:
    """Parse one OCPP-J frame.

    Args:
        text: one WebSocket message.  Bytes are decoded as UTF-8 (OCPP-J
            requires text frames; the transport reports binary frames apart).
        allowed_types: the message type numbers the negotiated version knows;
            ``None`` allows all five.

    Raises:
        FrameDecodeError: the text is not a valid frame; see its ``message_id``,
            ``message_type`` and ``error``.  Nothing else is raised.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise _fail(RPCFrameworkError("message is not valid UTF-8")) from None
    try:
        data = _loads(text)
    except (ValueError, RecursionError):
        raise _fail(RPCFrameworkError("message is not valid JSON")) from None
    if ("\\ud" in text or "\\uD" in text) and not _is_unicode(data):
        # JSON lets "\ud800" through, but a lone surrogate is not Unicode: it
        # could never be written back as UTF-8 (an answer echoing the id would fail).
        raise _fail(RPCFrameworkError("message holds an unpaired UTF-16 surrogate escape"))
    if not isinstance(data, list):
        raise _fail(RPCFrameworkError(f"message must be a JSON array, got {_describe(data)}"))
    if not data:
        raise _fail(RPCFrameworkError("message is an empty array"))

    # Read the id first so that every later error can name it.
    raw_id = data[1] if len(data) > 1 else None
    message_id = UNKNOWN_MESSAGE_ID
    id_error: str | None = None
    if not isinstance(raw_id, str):
        id_error = (
            "messageId is missing"
            if len(data) < 2
            else f"messageId must be a string, got {_describe(raw_id)}"
        )
    elif len(raw_id) > MAX_MESSAGE_ID_LENGTH:
        id_error = f"messageId is {len(raw_id)} characters long, at most {MAX_MESSAGE_ID_LENGTH} are allowed"
    elif not raw_id:
        id_error = "messageId is empty"
    else:
        message_id = raw_id

    kind = data[0]
    if isinstance(kind, float) and kind.is_integer():
        kind = int(kind)  # JSON has one number type: 2.0 is 2
    if isinstance(kind, bool) or not isinstance(kind, int):
        raise _fail(
            RPCFrameworkError(f"message type must be an integer, got {_describe(kind)}"), message_id
        )
    if kind not in _ELEMENT_COUNT or (allowed_types is not None and kind not in allowed_types):
        raise _fail(
            RPCMessageTypeNotSupportedError(f"message type {kind} is not supported"),
            message_id,
            kind,
        )
    mtype = MessageType(kind)
    if id_error is not None:
        raise _fail(RPCFrameworkError(id_error), message_id, mtype)
    expected = _ELEMENT_COUNT[mtype]
    if len(data) != expected:
        raise _fail(
            RPCFrameworkError(f"{mtype.name} must have {expected} elements, got {len(data)}"),
            message_id,
            mtype,
        )

    if mtype is MessageType.CALL or mtype is MessageType.SEND:
        action, payload = data[2], data[3]
        if not isinstance(action, str) or not action:
            raise _fail(
                RPCFrameworkError(f"action must be a non-empty string, got {_describe(action)}"),
                message_id,
                mtype,
            )
        if not isinstance(payload, dict):
            raise _fail(
                RPCFormatViolationError(f"payload must be a JSON object, got {_describe(payload)}"),
                message_id,
                mtype,
            )
        if mtype is MessageType.CALL:
            return Call(message_id=message_id, action=action, payload=payload)
        return Send(message_id=message_id, action=action, payload=payload)

    if mtype is MessageType.CALLRESULT:
        payload = data[2]
        if not isinstance(payload, dict):
            raise _fail(
                RPCFormatViolationError(f"payload must be a JSON object, got {_describe(payload)}"),
                message_id,
                mtype,
            )
        return CallResult(message_id=message_id, payload=payload)

    code, description, details = data[2], data[3], data[4]
    if not isinstance(code, str) or not code:
        raise _fail(
            RPCFrameworkError(f"errorCode must be a non-empty string, got {_describe(code)}"),
            message_id,
            mtype,
        )
    if not isinstance(description, str) or not isinstance(details, dict):
        # The code was readable: keep what the peer said, so the call it
        # answers fails with the peer's code rather than a framing complaint.
        error: RPCError = (
            RPCFrameworkError(f"errorDescription must be a string, got {_describe(description)}")
            if not isinstance(description, str)
            else RPCFormatViolationError(
                f"errorDetails must be a JSON object, got {_describe(details)}"
            )
        )
        raise FrameDecodeError(
            error,
            message_id=message_id,
            message_type=mtype,
            peer_error=(code, description if isinstance(description, str) else "", details),
        )
    cls = CallError if mtype is MessageType.CALLERROR else CallResultError
    return cls(
        message_id=message_id,
        error_code=code,
        error_description=description,
        error_details=details,
    )


def is_finite_number(value: Any) -> bool:
    """True for an int or a finite float (bools excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
