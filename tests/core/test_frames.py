"""Tests for ocpp_trio._core.frames: encode and decode of the five OCPP-J frames."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any, Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocpp_trio._core.errors import (
    FrameDecodeError,
    RPCError,
    RPCFormatViolationError,
    RPCFrameworkError,
    RPCMessageTypeNotSupportedError,
)
from ocpp_trio._core.frames import (
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
    is_finite_number,
    new_message_id,
)

# --- strategies -----------------------------------------------------------------

#: JSON scalars that survive a round trip exactly (no NaN, no infinities).
JSON_SCALARS: Final = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
#: Any JSON value built from JSON_SCALARS.
JSON_VALUES: Final = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
#: A payload: a JSON object with string keys.
PAYLOADS: Final = st.dictionaries(st.text(), JSON_VALUES, max_size=6)
MESSAGE_IDS: Final = st.text(min_size=1, max_size=MAX_MESSAGE_ID_LENGTH)
ACTIONS: Final = st.text(min_size=1, max_size=40)
ERROR_CODES: Final = st.text(min_size=1, max_size=40)

CALLS: Final = st.builds(Call, message_id=MESSAGE_IDS, action=ACTIONS, payload=PAYLOADS)
CALL_RESULTS: Final = st.builds(CallResult, message_id=MESSAGE_IDS, payload=PAYLOADS)
CALL_ERRORS: Final = st.builds(
    CallError,
    message_id=MESSAGE_IDS,
    error_code=ERROR_CODES,
    error_description=st.text(),
    error_details=PAYLOADS,
)
CALL_RESULT_ERRORS: Final = st.builds(
    CallResultError,
    message_id=MESSAGE_IDS,
    error_code=ERROR_CODES,
    error_description=st.text(),
    error_details=PAYLOADS,
)
SENDS: Final = st.builds(Send, message_id=MESSAGE_IDS, action=ACTIONS, payload=PAYLOADS)
FRAMES: Final = CALLS | CALL_RESULTS | CALL_ERRORS | CALL_RESULT_ERRORS | SENDS

#: JSON-shaped garbage: any JSON value, NaN and infinities included, as text.
GARBAGE_VALUES: Final = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=25,
)
JSON_GARBAGE: Final = GARBAGE_VALUES.map(json.dumps)
#: Arrays that start like a frame (type 2..6, often a plausible id) then go anywhere.
FRAME_LIKE: Final = st.builds(
    lambda kind, mid, rest: json.dumps([kind, mid, *rest]),
    st.integers(min_value=2, max_value=6),
    MESSAGE_IDS | GARBAGE_VALUES,
    st.lists(GARBAGE_VALUES | ACTIONS | PAYLOADS, max_size=5),
)
ALLOWED_TYPES: Final = st.none() | st.sampled_from(
    [frozenset({2, 3, 4}), frozenset({2, 3, 4, 5, 6}), frozenset()]
)

ALL_TYPES: Final = frozenset(int(t) for t in MessageType)


def _check_decode(text: str | bytes, allowed: frozenset[int] | None = None) -> None:
    """Decoding returns a frame or raises FrameDecodeError with sane attributes."""
    failure: FrameDecodeError | None = None
    try:
        frame = decode(text, allowed_types=allowed)
    except FrameDecodeError as exc:
        failure = exc
    if failure is not None:
        assert isinstance(failure.message_id, str)
        assert 1 <= len(failure.message_id) <= MAX_MESSAGE_ID_LENGTH
        assert isinstance(failure.error, RPCError)
        assert failure.message_type is None or isinstance(failure.message_type, int)
        return
    assert isinstance(frame, Call | CallResult | CallError | CallResultError | Send)
    assert 1 <= len(frame.message_id) <= MAX_MESSAGE_ID_LENGTH
    kind = {Call: 2, CallResult: 3, CallError: 4, CallResultError: 5, Send: 6}[type(frame)]
    assert kind in (ALL_TYPES if allowed is None else allowed)


# --- decoding never raises anything else -----------------------------------------


@given(st.text(), ALLOWED_TYPES)
def test_decode_any_text(text: str, allowed: frozenset[int] | None) -> None:
    _check_decode(text, allowed)


@given(st.binary(), ALLOWED_TYPES)
def test_decode_any_bytes(data: bytes, allowed: frozenset[int] | None) -> None:
    _check_decode(data, allowed)


@given(JSON_GARBAGE, ALLOWED_TYPES)
def test_decode_json_garbage(text: str, allowed: frozenset[int] | None) -> None:
    _check_decode(text, allowed)


@given(FRAME_LIKE, ALLOWED_TYPES)
def test_decode_frame_like_arrays(text: str, allowed: frozenset[int] | None) -> None:
    _check_decode(text, allowed)


# --- encode then decode is the identity --------------------------------------------


@given(FRAMES)
def test_round_trip(frame: Frame) -> None:
    text = encode(frame)
    assert decode(text) == frame
    assert decode(text.encode("utf-8")) == frame


@given(FRAMES)
def test_encoding_is_compact_json_array(frame: Frame) -> None:
    text = encode(frame)
    data = json.loads(text)
    assert isinstance(data, list)
    assert text == json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# --- each frame type, by example ------------------------------------------------

EXAMPLES: Final[list[tuple[Frame, str]]] = [
    (
        Call(message_id="19223201", action="BootNotification", payload={"a": 1}),
        '[2,"19223201","BootNotification",{"a":1}]',
    ),
    (
        CallResult(message_id="19223201", payload={"status": "Accepted"}),
        '[3,"19223201",{"status":"Accepted"}]',
    ),
    (
        CallError(
            message_id="162376037",
            error_code="NotSupported",
            error_description="SetDisplayMessageRequest not implemented",
            error_details={},
        ),
        '[4,"162376037","NotSupported","SetDisplayMessageRequest not implemented",{}]',
    ),
    (
        CallResultError(
            message_id="5",
            error_code="FormatViolation",
            error_description="",
            error_details={"x": [1]},
        ),
        '[5,"5","FormatViolation","",{"x":[1]}]',
    ),
    (
        Send(message_id="6", action="NotifyPeriodicEventStream", payload={}),
        '[6,"6","NotifyPeriodicEventStream",{}]',
    ),
]


@pytest.mark.parametrize(("frame", "text"), EXAMPLES)
def test_encode_decode_examples(frame: Frame, text: str) -> None:
    assert encode(frame) == text
    assert decode(text) == frame
    assert decode(text, allowed_types=frozenset({2, 3, 4, 5, 6})) == frame


def test_defaults() -> None:
    assert Call(message_id="a", action="A").payload == {}
    assert CallResult(message_id="a").payload == {}
    err = CallError(message_id="a", error_code="GenericError")
    assert (err.error_description, err.error_details) == ("", {})
    assert encode(err) == '[4,"a","GenericError","",{}]'


def test_encode_keeps_non_ascii() -> None:
    text = encode(Call(message_id="é", action="A", payload={"k": "ü€😀"}))
    assert text == '[2,"é","A",{"k":"ü€😀"}]'


@pytest.mark.parametrize(
    "payload",
    [{"x": math.nan}, {"x": math.inf}, {"x": -math.inf}, {"x": {1, 2}}, {"x": object()}],
)
def test_encode_rejects_what_json_cannot_carry(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cannot be encoded as JSON"):
        encode(Call(message_id="a", action="A", payload=payload))


@pytest.mark.parametrize(
    ("frame", "where"),
    [
        (Call(message_id="a", action="A", payload={"x": [1, {"y": "ok\ud800"}]}), "payload.x[1].y"),
        (CallResult(message_id="a", payload={"k\udc00": 1}), "payload.k\\udc00"),
        (Send(message_id="a", action="A", payload={"x": "\udfff"}), "payload.x"),
        (CallError(message_id="a", error_code="E", error_description="\ud800"), "errorDescription"),
        (
            CallResultError(message_id="a", error_code="E", error_details={"r": ["\ud800"]}),
            "errorDetails.r[0]",
        ),
        (Call(message_id="a", action="A\ud800"), "action"),
    ],
)
def test_encode_rejects_a_lone_surrogate_and_names_where(frame: Frame, where: str) -> None:
    # json.dumps(ensure_ascii=False) lets a lone surrogate through; UTF-8 cannot carry it.
    with pytest.raises(ValueError, match="unpaired UTF-16 surrogate") as info:
        encode(frame)
    message = str(info.value)
    assert message.startswith(f"{where} holds ")
    message.encode("utf-8")  # the error text itself can be sent and logged


def test_encode_keeps_a_surrogate_pair_made_into_one_character() -> None:
    assert encode(CallResult(message_id="a", payload={"x": "\U0001f600"})) == '[3,"a",{"x":"😀"}]'


def test_new_message_id() -> None:
    ids = {new_message_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == MAX_MESSAGE_ID_LENGTH for i in ids)


def test_a_payload_json_cannot_carry_is_a_value_error() -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    for payload in (circular, {"x": math.nan}, {"x": {1, 2}}, {"x": math.inf}):
        with pytest.raises(ValueError, match="cannot be encoded as JSON"):
            encode(Call(message_id="1", action="A", payload=payload))


def test_new_message_id_is_a_uuid4_string() -> None:
    for _ in range(2000):
        mid = new_message_id()
        parsed = uuid.UUID(mid)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == mid


# --- message ids -------------------------------------------------------------------


def test_id_of_36_characters_is_accepted() -> None:
    mid = "x" * 36
    assert decode(f'[2,"{mid}","A",{{}}]') == Call(message_id=mid, action="A", payload={})


@pytest.mark.parametrize("kind", [2, 3, 4, 5, 6])
def test_id_over_36_characters_is_rejected(kind: int) -> None:
    rest = {2: '"A",{}', 3: "{}", 4: '"X","",{}', 5: '"X","",{}', 6: '"A",{}'}[kind]
    with pytest.raises(FrameDecodeError) as info:
        decode(f'[{kind},"{"x" * 37}",{rest}]')
    assert info.value.message_id == UNKNOWN_MESSAGE_ID
    assert info.value.message_type == kind
    assert type(info.value.error) is RPCFrameworkError
    assert "37 characters" in info.value.error.description


def test_id_length_counts_characters_not_bytes() -> None:
    mid = "€" * 36  # 108 UTF-8 bytes
    assert decode(f'[3,"{mid}",{{}}]'.encode()) == CallResult(message_id=mid, payload={})


@pytest.mark.parametrize("raw_id", ['""', "1", "null", "[]", "{}", "true"])
def test_unreadable_ids(raw_id: str) -> None:
    with pytest.raises(FrameDecodeError) as info:
        decode(f'[2,{raw_id},"A",{{}}]')
    assert info.value.message_id == UNKNOWN_MESSAGE_ID
    assert type(info.value.error) is RPCFrameworkError


# --- defects, by example ------------------------------------------------------------

DEFECTS: Final[list[tuple[str, str, type[RPCError], int | None]]] = [
    # text, id read, error class, message type read
    ("", "-1", RPCFrameworkError, None),
    ("not json", "-1", RPCFrameworkError, None),
    ('[2,"a","A",{"x":NaN}]', "-1", RPCFrameworkError, None),
    ('[2,"a","A",{"x":Infinity}]', "-1", RPCFrameworkError, None),
    ('[2,"a","A",{"x":-Infinity}]', "-1", RPCFrameworkError, None),
    ('{"a":1}', "-1", RPCFrameworkError, None),
    ('"text"', "-1", RPCFrameworkError, None),
    ("2", "-1", RPCFrameworkError, None),
    ("null", "-1", RPCFrameworkError, None),
    ("[]", "-1", RPCFrameworkError, None),
    ('["2","a","A",{}]', "a", RPCFrameworkError, None),
    ('[true,"a","A",{}]', "a", RPCFrameworkError, None),
    ('[null,"a","A",{}]', "a", RPCFrameworkError, None),
    ('[2.5,"a","A",{}]', "a", RPCFrameworkError, None),
    ("[null]", "-1", RPCFrameworkError, None),
    ('[7,"a","A",{}]', "a", RPCMessageTypeNotSupportedError, 7),
    ('[0,"a"]', "a", RPCMessageTypeNotSupportedError, 0),
    ('[-2,"a"]', "a", RPCMessageTypeNotSupportedError, -2),
    ("[1]", "-1", RPCMessageTypeNotSupportedError, 1),
    ("[2]", "-1", RPCFrameworkError, 2),
    ('[2,"a"]', "a", RPCFrameworkError, 2),
    ('[2,"a","A"]', "a", RPCFrameworkError, 2),
    ('[2,"a","A",{},{}]', "a", RPCFrameworkError, 2),
    ('[2,"a",1,{}]', "a", RPCFrameworkError, 2),
    ('[2,"a","",{}]', "a", RPCFrameworkError, 2),
    ('[2,"a","A",[]]', "a", RPCFormatViolationError, 2),
    ('[2,"a","A",null]', "a", RPCFormatViolationError, 2),
    ('[3,"a"]', "a", RPCFrameworkError, 3),
    ('[3,"a",[]]', "a", RPCFormatViolationError, 3),
    ('[3,"a",{},{}]', "a", RPCFrameworkError, 3),
    ('[4,"a","X",""]', "a", RPCFrameworkError, 4),
    ('[4,"a",1,"",{}]', "a", RPCFrameworkError, 4),
    ('[4,"a","","",{}]', "a", RPCFrameworkError, 4),
    ('[4,"a","X",null,{}]', "a", RPCFrameworkError, 4),
    ('[4,"a","X","",[]]', "a", RPCFormatViolationError, 4),
    ('[5,"a","X","",null]', "a", RPCFormatViolationError, 5),
    ('[6,"a",1,{}]', "a", RPCFrameworkError, 6),
    ('[6,"a","A","x"]', "a", RPCFormatViolationError, 6),
]


@pytest.mark.parametrize(("text", "message_id", "error", "message_type"), DEFECTS)
def test_defects(
    text: str, message_id: str, error: type[RPCError], message_type: int | None
) -> None:
    with pytest.raises(FrameDecodeError) as info:
        decode(text)
    assert info.value.message_id == message_id
    assert type(info.value.error) is error
    assert info.value.message_type == message_type
    assert str(info.value) == info.value.error.description


@pytest.mark.parametrize("kind", [5, 6])
def test_types_not_allowed_are_not_supported(kind: int) -> None:
    rest = '"X","",{}' if kind == 5 else '"A",{}'
    text = f'[{kind},"a",{rest}]'
    assert decode(text) is not None
    with pytest.raises(FrameDecodeError) as info:
        decode(text, allowed_types=frozenset({2, 3, 4}))
    assert type(info.value.error) is RPCMessageTypeNotSupportedError
    assert (info.value.message_id, info.value.message_type) == ("a", kind)


def test_error_descriptions_do_not_echo_values() -> None:
    with pytest.raises(FrameDecodeError) as info:
        decode('[2,"a","A","secret-token"]')
    assert "secret-token" not in str(info.value)
    assert "a string" in info.value.error.description


# --- bytes ----------------------------------------------------------------------


@pytest.mark.parametrize("convert", [bytes, bytearray])
def test_valid_utf8_bytes(convert: type[bytes] | type[bytearray]) -> None:
    data = convert('[2,"ü","Ä",{"k":"€"}]'.encode())
    assert decode(data) == Call(message_id="ü", action="Ä", payload={"k": "€"})


@pytest.mark.parametrize("data", [b"\xff", b'[2,"a","A",{"k":"\xc3"}]', b"\xed\xa0\x80"])
def test_invalid_utf8_bytes(data: bytes) -> None:
    with pytest.raises(FrameDecodeError) as info:
        decode(data)
    assert info.value.message_id == UNKNOWN_MESSAGE_ID
    assert type(info.value.error) is RPCFrameworkError
    assert "UTF-8" in info.value.error.description


# --- resource limits ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        '[2,"a","A",{"x":' + "[" * 100_000 + "]" * 100_000 + "}]",
        '{"a":' * 100_000,
    ],
    ids=["open", "balanced", "in-payload", "objects"],
)
def test_deep_nesting_does_not_crash(text: str) -> None:
    with pytest.raises(FrameDecodeError) as info:
        decode(text)
    assert type(info.value.error) is RPCFrameworkError


def test_huge_integer_is_a_decode_error() -> None:
    # Python refuses to parse integers of more than 4300 digits (a ValueError).
    with pytest.raises(FrameDecodeError):
        decode('[2,"a","A",{"x":' + "9" * 5000 + "}]")


def test_overflowing_number_is_rejected() -> None:
    with pytest.raises(FrameDecodeError):
        decode('[3,"a",{"x":1e999}]')


# --- helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, True),
        (1.5, True),
        (-0.0, True),
        (True, False),
        (math.nan, False),
        (math.inf, False),
        ("1", False),
        (None, False),
    ],
)
def test_is_finite_number(value: Any, expected: bool) -> None:
    assert is_finite_number(value) is expected
