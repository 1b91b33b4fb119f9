"""Hypothesis strategies for OCPP-J framing: valid frames and malformed ones.

:func:`frames` draws the text of well-formed frames of every message type a
version defines (OCPP-J 1.6 §4.1, 2.0.1 §4.1, 2.1 §4.1: CALL, CALLRESULT,
CALLERROR, and in 2.1 CALLRESULTERROR and SEND), with schema-valid payloads
(:func:`~ocpp_trio.testing.strategies.payloads`).

:func:`malformed_frames` draws :class:`MalformedFrame` objects: text that
breaks one framing rule, and the answer each version's specification asks
for, written here from the table in ``ocpp_trio/_core/protocol.py``'s
docstring (OCPP-J 1.6 §4.1-4.2, 2.0.1 §4.1-4.3, 2.1 §4.1-4.3), not computed
by the code under test:

============================  ==================  ========================  ========================
rule broken                   1.6                 2.0.1                     2.1
============================  ==================  ========================  ========================
not JSON / NaN / not array    FormationViolation  RpcFrameworkError         RpcFrameworkError
type not an integer           FormationViolation  RpcFrameworkError         RpcFrameworkError
unknown type number           not answered        MessageTypeNotSupported   MessageTypeNotSupported
SEND/CALLRESULTERROR shape    not answered        MessageTypeNotSupported   not answered
CALL id / count / action      FormationViolation  RpcFrameworkError         RpcFrameworkError
CALL payload not an object    FormationViolation  FormatViolation           FormatViolation
answer malformed or unknown   not answered        not answered              not answered
============================  ==================  ========================  ========================

The reply names the frame's id when it is readable (a string of 1 to 36
characters at index 1), else ``"-1"``.  Frames whose answer depends on the
receiver's state (a CALL reusing an id in flight, an answer naming a pending
call) are not drawn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Final

from hypothesis import strategies as st

from .._core.validation import SUPPORTED_PROTOCOLS, Direction, get_validator
from ._strategies import payloads

__all__ = ["PROTOCOLS", "MalformedFrame", "frames", "malformed_frames", "message_ids"]

#: The built-in protocols, in the order strategies iterate them.
PROTOCOLS: Final = tuple(SUPPORTED_PROTOCOLS)

#: The message types each version defines (OCPP-J §4.1 of each).
_TYPES: Final[Mapping[str, tuple[int, ...]]] = {
    "ocpp1.6": (2, 3, 4),
    "ocpp2.0.1": (2, 3, 4),
    "ocpp2.1": (2, 3, 4, 5, 6),
}

#: Error codes each version defines (OCPP-J 1.6 §4.2.3, 2.0.1/2.1 §4.3).
_CODES: Final[Mapping[str, tuple[str, ...]]] = {
    "ocpp1.6": (
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    ),
    "ocpp2.0.1": (
        "FormatViolation",
        "GenericError",
        "InternalError",
        "MessageTypeNotSupported",
        "NotImplemented",
        "NotSupported",
        "OccurrenceConstraintViolation",
        "PropertyConstraintViolation",
        "ProtocolError",
        "RpcFrameworkError",
        "SecurityError",
        "TypeConstraintViolation",
    ),
}

# What each kind of defect gets, per version (None: not answered).
_FRAMING: Final = {
    "ocpp1.6": "FormationViolation",
    "ocpp2.0.1": "RpcFrameworkError",
    "ocpp2.1": "RpcFrameworkError",
}
_PAYLOAD: Final = {
    "ocpp1.6": "FormationViolation",
    "ocpp2.0.1": "FormatViolation",
    "ocpp2.1": "FormatViolation",
}
_UNKNOWN_TYPE: Final = {
    "ocpp1.6": None,
    "ocpp2.0.1": "MessageTypeNotSupported",
    "ocpp2.1": "MessageTypeNotSupported",
}
_NEW_IN_21: Final = {"ocpp1.6": None, "ocpp2.0.1": "MessageTypeNotSupported", "ocpp2.1": None}
_NOT_ANSWERED: Final[Mapping[str, str | None]] = dict.fromkeys(PROTOCOLS)

_MAX_ID: Final = 36
_UNREADABLE_ID: Final = "-1"


def _prepend(number: int, items: tuple[Any, ...]) -> list[Any]:
    return [number, *items]


def _codes(protocol: str) -> tuple[str, ...]:
    return _CODES["ocpp1.6" if protocol == "ocpp1.6" else "ocpp2.0.1"]


def _types(protocol: str) -> tuple[int, ...]:
    try:
        return _TYPES[protocol]
    except KeyError:
        raise ValueError(
            f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}"
        ) from None


# --- valid frames ------------------------------------------------------------------

_ID_TEXT: Final = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=_MAX_ID)


def message_ids() -> st.SearchStrategy[str]:
    """Valid OCPP-J message ids: 1 to 36 characters, uuid4 strings among them."""
    return st.one_of(st.uuids(version=4).map(str), st.integers(0, 10**9).map(str), _ID_TEXT)


_JSON_SCALARS: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
)
_DETAILS: Final = st.dictionaries(st.text(max_size=8), _JSON_SCALARS, max_size=3)
_DESCRIPTIONS: Final = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)

_Encoder = Callable[[Any], str]
_ENCODERS: Final[tuple[_Encoder, ...]] = (
    json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode,
    json.JSONEncoder(ensure_ascii=True, allow_nan=False).encode,
    json.JSONEncoder(ensure_ascii=False, indent=1, allow_nan=False).encode,
)
_SPELLINGS: Final = st.sampled_from(_ENCODERS)


def _actions(protocol: str, *, send: bool) -> list[str]:
    validator = get_validator(protocol)
    send_only = validator.send_only_actions
    if send:
        return sorted(send_only)
    return sorted(a for a in validator.actions if a not in send_only)


def _action_frames(
    protocol: str, number: int, actions: list[str], direction: Direction
) -> st.SearchStrategy[list[Any]]:
    """``[number, id, action, payload]`` (CALL, SEND) or ``[3, id, payload]``."""
    ids = message_ids()
    names = st.sampled_from(actions)

    @st.composite
    def build(draw: st.DrawFn) -> list[Any]:
        message_id = draw(ids)
        action = draw(names)
        payload = draw(payloads(protocol, action, direction))  # cached per action
        if number == 3:
            return [3, message_id, payload]
        return [number, message_id, action, payload]

    return build()


def frames(
    protocol: str,
    *,
    types: Collection[int] | None = None,
    actions: Collection[str] | None = None,
) -> st.SearchStrategy[str]:
    """The text of well-formed frames that ``protocol`` defines.

    CALLs and SENDs carry a schema-valid request of one of the protocol's
    actions, CALLRESULTs a schema-valid response of one of them; CALLERRORs
    (and 2.1 CALLRESULTERRORs) carry one of the version's error codes.  The
    JSON is spelled in a few ways (compact, spaced, indented, ASCII-escaped).

    Args:
        protocol: ``"ocpp1.6"``, ``"ocpp2.0.1"`` or ``"ocpp2.1"``.
        types: the message type numbers to draw (default: all the version has).
        actions: the actions CALLs, SENDs and CALLRESULTs draw from (default:
            all; a CALLRESULT gets the response of one of them).

    Raises:
        ValueError: an unknown protocol, or a type the version does not define.
    """
    return _frames(
        protocol,
        None if types is None else tuple(sorted(set(types))),
        None if actions is None else tuple(sorted(set(actions))),
    )


@cache
def _frames(
    protocol: str, types: tuple[int, ...] | None, actions: tuple[str, ...] | None
) -> st.SearchStrategy[str]:
    known = _types(protocol)
    chosen = types if types is not None else known
    if not chosen or any(t not in known for t in chosen):
        raise ValueError(f"{protocol} defines message types {known}, got {chosen}")
    calls = _actions(protocol, send=False)
    sends = _actions(protocol, send=True)
    if actions is not None:
        calls = [a for a in calls if a in actions]
        sends = [a for a in sends if a in actions]
    parts: list[st.SearchStrategy[list[Any]]] = []
    if 2 in chosen and calls:
        parts.append(_action_frames(protocol, 2, calls, "request"))
    if 3 in chosen and calls:
        parts.append(_action_frames(protocol, 3, calls, "response"))
    for number in (4, 5):
        if number in chosen:
            parts.append(
                st.tuples(
                    message_ids(), st.sampled_from(_codes(protocol)), _DESCRIPTIONS, _DETAILS
                ).map(partial(_prepend, number))
            )
    if 6 in chosen and sends:
        parts.append(_action_frames(protocol, 6, sends, "request"))
    if not parts:
        raise ValueError(f"no {protocol} frame of types {chosen} with actions {actions}")
    return st.tuples(st.one_of(parts), _SPELLINGS).map(lambda t: t[1](t[0]))


# --- malformed frames --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MalformedFrame:
    """Text that breaks one OCPP-J framing rule, and what each version answers.

    Attributes:
        text: the WebSocket text message.
        rule: which rule it breaks (e.g. ``"CALL payload not an object"``).
        reply_id: the id a CALLERROR answering it names (``"-1"`` when the
            frame's id cannot be read).
        replies: ``{protocol: error code or None}``; None: not answered.
    """

    text: str
    rule: str
    reply_id: str
    replies: Mapping[str, str | None]

    def expected_reply(self, protocol: str) -> tuple[str, str] | None:
        """``(message_id, error_code)`` of the CALLERROR ``protocol`` answers with, or None."""
        code = self.replies[protocol]
        return None if code is None else (self.reply_id, code)

    def is_malformed_in(self, protocol: str) -> bool:
        """Whether ``protocol`` considers the text malformed (drawn frames always are)."""
        return protocol in self.replies


def _readable(raw_id: Any) -> str:
    ok = isinstance(raw_id, str) and 0 < len(raw_id) <= _MAX_ID
    return raw_id if ok else _UNREADABLE_ID


_ENCODE: Final = _ENCODERS[0]

#: Values for an id slot that cannot be read (OCPP-J: a string of at most 36).
_BAD_IDS: Final = st.one_of(
    st.just(""),
    st.text(min_size=_MAX_ID + 1, max_size=_MAX_ID + 4).filter(lambda s: len(s) > _MAX_ID),
    st.integers(-5, 10**6),
    st.none(),
    st.booleans(),
    st.just([]),
    st.just({}),
)
_ANY_IDS: Final = st.one_of(message_ids(), _BAD_IDS)
_NOT_OBJECTS: Final = st.one_of(
    st.just([]),
    st.lists(st.integers(0, 9), min_size=1, max_size=2),
    st.text(max_size=6),
    st.integers(-9, 9),
    st.none(),
    st.booleans(),
)
_NOT_ACTIONS: Final[st.SearchStrategy[Any]] = st.one_of(
    st.just(""), st.integers(0, 9), st.none(), st.just({}), st.just([])
)
_CALL_TEMPLATE: Final = '[2,"1","Heartbeat",{}]'


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _frame(
    rule: str, replies: Mapping[str, str | None], data: Any, reply_id: str = _UNREADABLE_ID
) -> MalformedFrame:
    return MalformedFrame(text=_ENCODE(data), rule=rule, reply_id=reply_id, replies=replies)


def _not_json() -> st.SearchStrategy[MalformedFrame]:
    texts = st.one_of(
        st.sampled_from([_CALL_TEMPLATE[:k] for k in range(len(_CALL_TEMPLATE))]),
        st.sampled_from(
            [
                '[2,"1","Heartbeat",{"v":NaN}]',
                '[2,"1","Heartbeat",{"v":Infinity}]',
                '[2,"1","Heartbeat",{"v":-Infinity}]',
                '[2,"1","Heartbeat",{"v":1e999}]',
                "[2,'1','Heartbeat',{}]",
                '[2,"1","Heartbeat",{},]',
            ]
        ),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=20).filter(
            lambda s: not _is_json(s)
        ),
    )
    return texts.map(
        lambda text: MalformedFrame(
            text=text, rule="not JSON", reply_id=_UNREADABLE_ID, replies=_FRAMING
        )
    )


def _not_an_array() -> st.SearchStrategy[MalformedFrame]:
    values = st.one_of(
        st.just([]),
        st.dictionaries(st.text(max_size=4), st.integers(0, 9), max_size=2),
        st.text(max_size=8),
        st.integers(-9, 9),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(),
        st.booleans(),
    )
    return values.map(lambda v: _frame("not a non-empty JSON array", _FRAMING, v))


def _type_not_integer() -> st.SearchStrategy[MalformedFrame]:
    kinds: st.SearchStrategy[Any] = st.one_of(
        st.sampled_from(["2", "CALL", None, True, False, [], {}, [2]]),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    )
    return st.tuples(kinds, _ANY_IDS).map(
        lambda t: _frame(
            "message type not an integer",
            _FRAMING,
            [t[0], t[1], "Heartbeat", {}],
            _readable(t[1]),
        )
    )


def _unknown_type(protocol: str | None) -> st.SearchStrategy[MalformedFrame]:
    unknown = st.one_of(st.integers(-(2**40), 1), st.integers(7, 2**40))
    parts = [
        st.tuples(unknown, _ANY_IDS).map(
            lambda t: _frame(
                "unknown message type",
                _UNKNOWN_TYPE,
                [t[0], t[1], "Heartbeat", {}],
                _readable(t[1]),
            )
        )
    ]
    if protocol in ("ocpp1.6", "ocpp2.0.1"):
        # Well-formed 2.1 frames are of an unknown type before 2.1.
        replies = {p: _UNKNOWN_TYPE[p] for p in ("ocpp1.6", "ocpp2.0.1")}
        parts.append(
            st.tuples(st.sampled_from([5, 6]), message_ids()).map(
                lambda t: _frame(
                    "message type defined only in 2.1",
                    replies,
                    [t[0], t[1], "Heartbeat", {}]
                    if t[0] == 6
                    else [5, t[1], "GenericError", "", {}],
                    t[1],
                )
            )
        )
    return st.one_of(parts)


def _new_in_21_defects() -> st.SearchStrategy[MalformedFrame]:
    """Malformed SEND / CALLRESULTERROR: unknown types before 2.1, unanswered in 2.1."""
    shapes = st.one_of(
        st.tuples(st.just(6), _ANY_IDS).map(lambda t: [6, t[1]]),
        st.tuples(st.just(6), message_ids(), _NOT_ACTIONS).map(lambda t: [6, t[1], t[2], {}]),
        st.tuples(st.just(6), message_ids(), _NOT_OBJECTS).map(
            lambda t: [6, t[1], "Heartbeat", t[2]]
        ),
        st.tuples(st.just(6), _BAD_IDS).map(lambda t: [6, t[1], "Heartbeat", {}]),
        st.tuples(st.just(5), _ANY_IDS).map(lambda t: [5, t[1], "GenericError"]),
        st.tuples(st.just(5), message_ids(), _NOT_ACTIONS).map(lambda t: [5, t[1], t[2], "", {}]),
        st.tuples(st.just(5), message_ids()).map(lambda t: [5, t[1], "GenericError", "", []]),
    )
    return shapes.map(
        lambda data: _frame(
            "malformed SEND or CALLRESULTERROR", _NEW_IN_21, data, _readable(data[1])
        )
    )


def _call_defects() -> st.SearchStrategy[MalformedFrame]:
    bad_id = st.one_of(
        st.just([2]).map(lambda d: _frame("CALL without an id", _FRAMING, d)),
        _BAD_IDS.map(lambda i: _frame("CALL id unreadable", _FRAMING, [2, i, "Heartbeat", {}])),
    )
    wrong_count = st.tuples(message_ids(), st.integers(0, 3)).map(
        lambda t: _frame(
            "CALL with a wrong element count",
            _FRAMING,
            [
                [2, t[0]],
                [2, t[0], "Heartbeat"],
                [2, t[0], "Heartbeat", {}, {}],
                [2, t[0], "A", {}, 1],
            ][t[1]],
            t[0],
        )
    )
    bad_action = st.tuples(message_ids(), _NOT_ACTIONS).map(
        lambda t: _frame("CALL action not a non-empty string", _FRAMING, [2, t[0], t[1], {}], t[0])
    )
    bad_payload = st.tuples(message_ids(), _NOT_OBJECTS).map(
        lambda t: _frame("CALL payload not an object", _PAYLOAD, [2, t[0], "Heartbeat", t[1]], t[0])
    )
    return st.one_of(bad_id, wrong_count, bad_action, bad_payload)


def _answer_defects() -> st.SearchStrategy[MalformedFrame]:
    shapes = st.one_of(
        st.tuples(st.sampled_from([3, 4]), _ANY_IDS).map(list),
        st.tuples(_ANY_IDS, _NOT_OBJECTS).map(lambda t: [3, t[0], t[1]]),
        st.tuples(_ANY_IDS).map(lambda t: [3, t[0], {}, {}]),
        st.tuples(message_ids(), _NOT_ACTIONS).map(lambda t: [4, t[0], t[1], "", {}]),
        st.tuples(message_ids(), st.integers(0, 9)).map(
            lambda t: [4, t[0], "GenericError", t[1], {}]
        ),
        st.tuples(message_ids(), _NOT_OBJECTS).map(lambda t: [4, t[0], "GenericError", "", t[1]]),
        # well-formed, but for a call nobody made (the receiver has no such pending id)
        st.tuples(st.just("no-such-call-"), st.integers(0, 10**6)).map(
            lambda t: [3, f"{t[0]}{t[1]}", {}]
        ),
        st.tuples(st.just("no-such-call-"), st.integers(0, 10**6)).map(
            lambda t: [4, f"{t[0]}{t[1]}", "GenericError", "", {}]
        ),
    )
    return shapes.map(
        lambda data: _frame(
            "answer malformed or for no call", _NOT_ANSWERED, data, _readable(data[1])
        )
    )


@cache
def malformed_frames(protocol: str | None = None) -> st.SearchStrategy[MalformedFrame]:
    """Frames that break one framing rule, each with the answer every version gives.

    Without ``protocol`` every drawn frame is malformed in all three versions
    (:attr:`MalformedFrame.replies` has all three); with one, frames that are
    malformed only in that version are drawn too (in 1.6 and 2.0.1: the 2.1
    message types).  See the module docstring for the rules and answers.

    Raises:
        ValueError: an unknown protocol.
    """
    if protocol is not None:
        _types(protocol)
    parts = [
        _not_json(),
        _not_an_array(),
        _type_not_integer(),
        _unknown_type(protocol),
        _new_in_21_defects(),
        _call_defects(),
        _answer_defects(),
    ]
    strategy = st.one_of(parts)
    if protocol is not None:
        strategy = strategy.filter(lambda frame: frame.is_malformed_in(protocol))
    return strategy
