"""Tests for ocpp_trio._core.protocol.RPCProtocol: the table of replies, pending calls, state."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any, Final

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ocpp_trio._core.errors import (
    ProtocolStateError,
    RPCError,
    RPCFormationViolationError,
    RPCFormatViolationError,
    RPCFrameworkError,
    RPCGenericError,
    RPCInternalError,
    RPCMessageTypeNotSupportedError,
    RPCNotImplementedError,
    RPCOccurrenceConstraintViolationError,
    RPCPropertyConstraintViolationError,
    RPCProtocolError,
)
from ocpp_trio._core.frames import CallError, CallResult
from ocpp_trio._core.protocol import (
    EXCERPT_LENGTH,
    BadMessage,
    CallReceived,
    CallResultErrorReceived,
    ErrorReceived,
    LateResponse,
    ResultReceived,
    Role,
    RPCProtocol,
    RPCState,
    SendReceived,
    codes_for,
)

VERSIONS: Final = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")

#: What each kind of defect is answered with, per version (None: not answered).
REPLY_CODES: Final[dict[str, dict[str, str | None]]] = {
    "framework": {
        "ocpp1.6": "FormationViolation",
        "ocpp2.0.1": "RpcFrameworkError",
        "ocpp2.1": "RpcFrameworkError",
    },
    "format": {
        "ocpp1.6": "FormationViolation",
        "ocpp2.0.1": "FormatViolation",
        "ocpp2.1": "FormatViolation",
    },
    "type": {
        "ocpp1.6": None,  # OCPP-J 1.6 §4.1.3: ignored
        "ocpp2.0.1": "MessageTypeNotSupported",
        "ocpp2.1": "MessageTypeNotSupported",
    },
    "duplicate": {
        "ocpp1.6": "ProtocolError",
        "ocpp2.0.1": "RpcFrameworkError",
        "ocpp2.1": "RpcFrameworkError",
    },
    "none": dict.fromkeys(VERSIONS),
}

LONG_ID: Final = "x" * 37

#: Every row of the table in protocol.py's docstring: (row, text, id of the reply, kind).
TABLE: Final[list[tuple[str, str | bytes, str, str]]] = [
    ("not UTF-8", b"\xff\xfe", "-1", "framework"),
    ("not UTF-8 in a frame", b'[2,"a","A",{"k":"\xc3"}]', "-1", "framework"),
    ("not JSON", "{[", "-1", "framework"),
    ("not JSON, empty", "", "-1", "framework"),
    ("NaN", '[2,"a","A",{"x":NaN}]', "-1", "framework"),
    ("Infinity", '[2,"a","A",{"x":Infinity}]', "-1", "framework"),
    ("-Infinity", '[2,"a","A",{"x":-Infinity}]', "-1", "framework"),
    ("not an array, object", '{"a":1}', "-1", "framework"),
    ("not an array, string", '"x"', "-1", "framework"),
    ("not an array, number", "2", "-1", "framework"),
    ("not an array, null", "null", "-1", "framework"),
    ("empty array", "[]", "-1", "framework"),
    ("type a string", '["2","a","A",{}]', "a", "framework"),
    ("type a boolean", '[true,"a","A",{}]', "a", "framework"),
    ("type null", '[null,"a","A",{}]', "a", "framework"),
    ("type null, no id", "[null]", "-1", "framework"),
    ("unknown type 7", '[7,"a","A",{}]', "a", "type"),
    ("unknown type 0", '[0,"a"]', "a", "type"),
    ("unknown type 1, no id", "[1]", "-1", "type"),
    ("CALL: id missing", "[2]", "-1", "framework"),
    ("CALL: id a number", '[2,1,"A",{}]', "-1", "framework"),
    ("CALL: id null", '[2,null,"A",{}]', "-1", "framework"),
    ("CALL: id empty", '[2,"","A",{}]', "-1", "framework"),
    ("CALL: id > 36", f'[2,"{LONG_ID}","A",{{}}]', "-1", "framework"),
    ("CALL: too few elements", '[2,"a","A"]', "a", "framework"),
    ("CALL: too many elements", '[2,"a","A",{},{}]', "a", "framework"),
    ("CALL: action a number", '[2,"a",1,{}]', "a", "framework"),
    ("CALL: action empty", '[2,"a","",{}]', "a", "framework"),
    ("CALL: payload an array", '[2,"a","A",[]]', "a", "format"),
    ("CALL: payload null", '[2,"a","A",null]', "a", "format"),
    ("CALL: payload a string", '[2,"a","A","x"]', "a", "format"),
    ("CALLRESULT: too few", '[3,"a"]', "a", "none"),
    ("CALLRESULT: payload an array", '[3,"a",[]]', "a", "none"),
    ("CALLRESULT: id a number", "[3,1,{}]", "-1", "none"),
    ("CALLERROR: too few", '[4,"a","X",""]', "a", "none"),
    ("CALLERROR: code a number", '[4,"a",1,"",{}]', "a", "none"),
    ("CALLERROR: description null", '[4,"a","X",null,{}]', "a", "none"),
    ("CALLERROR: details an array", '[4,"a","X","",[]]', "a", "none"),
    ("CALLRESULT for unknown id", '[3,"nope",{}]', "nope", "none"),
    ("CALLERROR for unknown id", '[4,"nope","X","",{}]', "nope", "none"),
]

#: Rows that exist only on 2.1 (SEND and CALLRESULTERROR defects): never answered.
TABLE_21: Final[list[tuple[str, str]]] = [
    ("SEND: too few", '[6,"a","A"]'),
    ("SEND: action a number", '[6,"a",1,{}]'),
    ("SEND: payload an array", '[6,"a","A",[]]'),
    ("SEND: id > 36", f'[6,"{LONG_ID}","A",{{}}]'),
    ("SEND: id a number", '[6,1,"A",{}]'),
    ("CALLRESULTERROR: too few", '[5,"a","X",""]'),
    ("CALLRESULTERROR: code a number", '[5,"a",1,"",{}]'),
    ("CALLRESULTERROR: details null", '[5,"a","X","",null]'),
]


def _check_reply(bad: BadMessage, message_id: str, code: str | None) -> None:
    if code is None:
        assert bad.reply is None
        return
    assert bad.reply is not None
    reply = json.loads(bad.reply)
    assert reply == [4, message_id, code, bad.error.description, {}]
    assert len(reply[3]) <= 255
    # compact, as every frame we send
    assert bad.reply == json.dumps(reply, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("row", "text", "message_id", "kind"), TABLE, ids=[r[0] for r in TABLE])
def test_table(version: str, row: str, text: str | bytes, message_id: str, kind: str) -> None:
    proto = RPCProtocol(protocol=version)
    event = proto.receive(text)
    assert isinstance(event, BadMessage), row
    assert event.message_id == message_id
    assert event.count == 1
    assert proto.bad_message_count == 1
    assert event.limit_exceeded is False  # max_bad_messages defaults to infinity
    assert event.failed_call is None
    assert isinstance(event.error, RPCError)
    _check_reply(event, message_id, REPLY_CODES[kind][version])


@pytest.mark.parametrize(("row", "text"), TABLE_21, ids=[r[0] for r in TABLE_21])
def test_table_21_defects_are_not_answered(row: str, text: str) -> None:
    proto = RPCProtocol(protocol="ocpp2.1")
    event = proto.receive(text)
    assert isinstance(event, BadMessage), row
    assert event.reply is None
    assert proto.bad_message_count == 1


@pytest.mark.parametrize(
    "text", ['[5,"a","X","",{}]', '[6,"a","A",{}]', '[5,"a",1,"",{}]', '[6,"a","A"]']
)
def test_types_5_and_6_are_unknown_on_16(text: str) -> None:
    proto = RPCProtocol(protocol="ocpp1.6")
    event = proto.receive(text)
    assert isinstance(event, BadMessage)
    assert type(event.error) is RPCMessageTypeNotSupportedError
    assert event.reply is None  # OCPP-J 1.6 §4.1.3: ignored
    assert proto.bad_message_count == 1


@pytest.mark.parametrize("text", ['[5,"a","X","",{}]', '[6,"a","A",{}]'])
def test_types_5_and_6_are_unknown_on_201(text: str) -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    event = proto.receive(text)
    assert isinstance(event, BadMessage)
    assert type(event.error) is RPCMessageTypeNotSupportedError
    _check_reply(event, "a", "MessageTypeNotSupported")


@pytest.mark.parametrize(
    ("version", "text"),
    [
        ("ocpp1.6", '[5,"c1","X","",{}]'),
        ("ocpp2.0.1", '[5,"c1","X","",{}]'),
        ("ocpp2.1", '[5,"c1",1,"",{}]'),
    ],
)
def test_bad_type_5_leaves_pending_call_alone(version: str, text: str) -> None:
    proto = RPCProtocol(protocol=version, id_factory=lambda: "c1")
    proto.send_call("Heartbeat", {})
    event = proto.receive(text)
    assert isinstance(event, BadMessage)
    # A CALLRESULTERROR's id names the peer's call, never ours: ours stays pending.
    assert proto.pending_calls == {"c1": "Heartbeat"}
    assert event.failed_call is None


def test_vendor_protocol_has_2x_framing() -> None:
    proto = RPCProtocol(protocol="vendor.example")
    assert proto.supports_send
    assert isinstance(proto.receive('[6,"a","A",{}]'), SendReceived)
    event = proto.receive('[2,"a","A",[]]')
    assert isinstance(event, BadMessage)
    _check_reply(event, "a", "FormatViolation")


def test_none_protocol_has_2x_framing() -> None:
    proto = RPCProtocol(protocol=None)
    event = proto.receive("[]")
    assert isinstance(event, BadMessage)
    _check_reply(event, "-1", "RpcFrameworkError")


def test_codes_for() -> None:
    assert "FormationViolation" in codes_for("ocpp1.6")
    assert "RpcFrameworkError" not in codes_for("ocpp1.6")
    assert codes_for("ocpp2.1") == codes_for("ocpp2.0.1") == codes_for("vendor") == codes_for(None)
    assert "MessageTypeNotSupported" in codes_for("ocpp2.1")


def test_excerpt_is_bounded() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    event = proto.receive("x" * 1000)
    assert isinstance(event, BadMessage)
    assert event.excerpt == "x" * EXCERPT_LENGTH
    event = proto.receive(b"\xff" * 1000)
    assert isinstance(event, BadMessage)
    assert event.excerpt == repr(b"\xff" * EXCERPT_LENGTH)


def test_description_in_reply_is_capped() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    event = proto.receive(f'[2,"a",{"1" * 300},{{}}]')  # action a number: not echoed anyway
    assert isinstance(event, BadMessage)
    assert event.reply is not None
    assert len(json.loads(event.reply)[3]) <= 255


# --- inbound calls -----------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_call_received(version: str) -> None:
    proto = RPCProtocol(protocol=version, role=Role.SERVER)
    event = proto.receive('[2,"a","BootNotification",{"x":1}]')
    assert event == CallReceived(message_id="a", action="BootNotification", payload={"x": 1})
    assert proto.inbound_calls == frozenset({"a"})
    assert proto.role is Role.SERVER


@pytest.mark.parametrize("convert", [bytes, bytearray])
def test_call_received_as_bytes(convert: type[bytes] | type[bytearray]) -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    event = proto.receive(convert(b'[2,"a","A",{}]'))
    assert event == CallReceived(message_id="a", action="A", payload={})


@pytest.mark.parametrize("version", VERSIONS)
def test_duplicate_inbound_call_id(version: str) -> None:
    proto = RPCProtocol(protocol=version)
    assert isinstance(proto.receive('[2,"a","A",{}]'), CallReceived)
    event = proto.receive('[2,"a","B",{}]')
    assert isinstance(event, BadMessage)
    assert event.message_id == "a"
    assert type(event.error) is (RPCProtocolError if version == "ocpp1.6" else RPCFrameworkError)
    _check_reply(event, "a", REPLY_CODES["duplicate"][version])
    assert proto.inbound_calls == frozenset({"a"})  # the first call is still in flight
    assert proto.send_result("a", {}) == '[3,"a",{}]'
    # once answered, the id may be used again
    assert isinstance(proto.receive('[2,"a","A",{}]'), CallReceived)


@pytest.mark.parametrize("version", VERSIONS)
def test_send_result(version: str) -> None:
    proto = RPCProtocol(protocol=version)
    proto.receive('[2,"a","A",{}]')
    assert proto.send_result("a", {"status": "Accepted"}) == '[3,"a",{"status":"Accepted"}]'
    assert proto.inbound_calls == frozenset()
    with pytest.raises(ProtocolStateError, match="'a'"):
        proto.send_result("a", {})
    with pytest.raises(ProtocolStateError, match="'a'"):
        proto.send_error("a", RPCInternalError("x"))


def test_send_result_for_unknown_call() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    with pytest.raises(ProtocolStateError, match="never received"):
        proto.send_result("nope", {})


def test_send_result_that_cannot_be_encoded_keeps_the_call() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    proto.receive('[2,"a","A",{}]')
    with pytest.raises(ValueError):
        proto.send_result("a", {"x": math.nan})
    assert proto.inbound_calls == frozenset({"a"})


def test_send_result_with_a_lone_surrogate_keeps_the_call() -> None:
    proto = RPCProtocol(protocol="ocpp1.6")
    proto.receive('[2,"a","A",{}]')
    with pytest.raises(ValueError, match=r"payload\.data holds an unpaired UTF-16 surrogate"):
        proto.send_result("a", {"data": "\ud800"})
    assert proto.inbound_calls == frozenset({"a"})
    reply = proto.send_error("a", RPCInternalError("could not answer"))
    assert json.loads(reply) == [4, "a", "InternalError", "could not answer", {}]


@pytest.mark.parametrize(
    "error",
    [RPCInternalError("bad \udc00"), RPCInternalError("bad", {"why": "\ud800"})],
)
def test_send_error_with_a_lone_surrogate_keeps_the_call(error: RPCError) -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    proto.receive('[2,"a","A",{}]')
    with pytest.raises(ValueError, match=r"error(Description|Details\.why) holds an unpaired"):
        proto.send_error("a", error)
    assert proto.inbound_calls == frozenset({"a"})


def test_send_call_with_a_lone_surrogate_is_not_pending() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    with pytest.raises(ValueError, match=r"payload\.vendorId holds an unpaired"):
        proto.send_call("DataTransfer", {"vendorId": "\ud800"})
    assert proto.pending_calls == {}


@pytest.mark.parametrize("version", VERSIONS)
def test_send_error_twice(version: str) -> None:
    proto = RPCProtocol(protocol=version)
    proto.receive('[2,"a","A",{}]')
    proto.send_error("a", RPCNotImplementedError("no"))
    with pytest.raises(ProtocolStateError):
        proto.send_error("a", RPCNotImplementedError("no"))
    with pytest.raises(ProtocolStateError):
        proto.send_result("a", {})


def test_forget_inbound() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    proto.receive('[2,"a","A",{}]')
    proto.forget_inbound("a")
    assert proto.inbound_calls == frozenset()
    with pytest.raises(ProtocolStateError):
        proto.send_result("a", {})
    proto.forget_inbound("never")  # no error
    assert isinstance(proto.receive('[2,"a","A",{}]'), CallReceived)


SPELLINGS: Final[list[tuple[RPCError, str, str]]] = [
    # error raised, 1.6 spelling, 2.x spelling
    (RPCFormatViolationError("d"), "FormationViolation", "FormatViolation"),
    (RPCFormationViolationError("d"), "FormationViolation", "FormatViolation"),
    (RPCFrameworkError("d"), "FormationViolation", "RpcFrameworkError"),
    (RPCMessageTypeNotSupportedError("d"), "ProtocolError", "MessageTypeNotSupported"),
    (
        RPCOccurrenceConstraintViolationError("d"),
        "OccurenceConstraintViolation",
        "OccurrenceConstraintViolation",
    ),
    (
        RPCPropertyConstraintViolationError("d"),
        "PropertyConstraintViolation",
        "PropertyConstraintViolation",
    ),
    (RPCNotImplementedError("d"), "NotImplemented", "NotImplemented"),
    (RPCGenericError("d"), "GenericError", "GenericError"),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("error", "code_16", "code_2x"), SPELLINGS)
def test_send_error_spelling(version: str, error: RPCError, code_16: str, code_2x: str) -> None:
    proto = RPCProtocol(protocol=version)
    proto.receive('[2,"a","A",{}]')
    code = code_16 if version == "ocpp1.6" else code_2x
    assert proto.send_error("a", error) == f'[4,"a","{code}","d",{{}}]'


def test_send_error_details_and_description_cap() -> None:
    proto = RPCProtocol(protocol="ocpp1.6")
    proto.receive('[2,"a","A",{}]')
    text = proto.send_error("a", RPCFormatViolationError("é" * 1000, {"field": "x"}))
    reply = json.loads(text)
    assert reply[:3] == [4, "a", "FormationViolation"]
    assert len(reply[3]) == 255
    assert reply[3].endswith("...")
    assert reply[4] == {"field": "x"}


def test_send_error_keeps_a_vendor_code() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    proto.receive('[2,"a","A",{}]')
    err = RPCGenericError("d")
    err.code = "VendorSpecific"  # type: ignore[misc]
    assert json.loads(proto.send_error("a", err))[2] == "VendorSpecific"


# --- outbound calls ------------------------------------------------------------------


def _counter_ids() -> Any:
    counter = itertools.count()
    return lambda: f"id-{next(counter)}"


def test_id_factory_gives_deterministic_ids() -> None:
    proto = RPCProtocol(protocol="ocpp2.1", id_factory=_counter_ids(), max_outstanding_calls=3)
    assert proto.send_call("A", {}) == ("id-0", '[2,"id-0","A",{}]')
    assert proto.send_call("B", {"x": 1}) == ("id-1", '[2,"id-1","B",{"x":1}]')
    assert proto.send_send("C", {}) == ("id-2", '[6,"id-2","C",{}]')
    assert proto.send_call("D", {}, message_id="mine") == ("mine", '[2,"mine","D",{}]')
    assert proto.pending_calls == {"id-0": "A", "id-1": "B", "mine": "D"}


def test_default_ids_are_uuids() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    mid, text = proto.send_call("A", {})
    assert len(mid) == 36
    assert json.loads(text) == [2, mid, "A", {}]


@pytest.mark.parametrize("version", VERSIONS)
def test_result_received(version: str) -> None:
    proto = RPCProtocol(protocol=version, id_factory=lambda: "c1")
    proto.send_call("Heartbeat", {})
    event = proto.receive('[3,"c1",{"currentTime":"now"}]')
    assert event == ResultReceived(
        message_id="c1", action="Heartbeat", payload={"currentTime": "now"}
    )
    assert proto.pending_calls == {}


@pytest.mark.parametrize("version", VERSIONS)
def test_error_received(version: str) -> None:
    proto = RPCProtocol(protocol=version, id_factory=lambda: "c1")
    proto.send_call("Heartbeat", {})
    event = proto.receive('[4,"c1","NotSupported","no",{"k":1}]')
    assert event == ErrorReceived(
        message_id="c1",
        action="Heartbeat",
        code="NotSupported",
        description="no",
        details={"k": 1},
    )
    assert proto.pending_calls == {}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "text",
    ['[3,"c1",[]]', '[3,"c1"]', '[3,"c1",{},1]', '[4,"c1",1,"",{}]', '[4,"c1","X","",null]'],
)
def test_malformed_answer_fails_the_pending_call(version: str, text: str) -> None:
    proto = RPCProtocol(protocol=version, id_factory=lambda: "c1")
    proto.send_call("Heartbeat", {})
    event = proto.receive(text)
    assert isinstance(event, BadMessage)
    if version == "ocpp2.1" and text.startswith("[3"):
        # OCPP-J 2.1: a CALLRESULT that cannot be processed gets a CALLRESULTERROR.
        assert event.reply is not None
        assert json.loads(event.reply)[:2] == [5, "c1"]
    else:
        assert event.reply is None
    assert event.failed_call == "c1"
    assert event.failed_action == "Heartbeat"
    assert proto.pending_calls == {}
    assert proto.bad_message_count == 1


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("text", "description", "raw"),
    [
        # ocpp-ts sends an array of schema errors as errorDetails.
        ('[4,"c1","FormationViolation","bad",[{"path":"x"}]]', "bad", [{"path": "x"}]),
        ('[4,"c1","InternalError","oops",null]', "oops", None),
        ('[4,"c1","GenericError","x","text"]', "x", "text"),
        ('[4,"c1","GenericError",null,{}]', "", {}),
    ],
)
def test_callerror_with_malformed_details_keeps_what_the_peer_said(
    version: str, text: str, description: str, raw: object
) -> None:
    proto = RPCProtocol(protocol=version, id_factory=lambda: "c1")
    proto.send_call("Heartbeat", {})
    event = proto.receive(text)
    assert isinstance(event, BadMessage)
    assert event.reply is None  # a CALLERROR is never answered
    assert event.failed_call == "c1"
    assert event.peer_error == (json.loads(text)[2], description, raw)
    assert proto.bad_message_count == 1
    assert proto.pending_calls == {}


def test_malformed_callerror_for_unknown_id_carries_nothing() -> None:
    proto = RPCProtocol(protocol="ocpp1.6", id_factory=lambda: "c1")
    proto.send_call("Heartbeat", {})
    event = proto.receive('[4,"other","GenericError","x",[]]')
    assert isinstance(event, BadMessage)
    assert (event.failed_call, event.peer_error) == (None, None)
    assert proto.pending_calls == {"c1": "Heartbeat"}


def test_malformed_answer_for_another_id_leaves_the_pending_call() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", id_factory=lambda: "c1")
    proto.send_call("Heartbeat", {})
    event = proto.receive('[3,"other",[]]')
    assert isinstance(event, BadMessage)
    assert event.failed_call is None
    assert proto.pending_calls == {"c1": "Heartbeat"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("text", ['[3,"nope",{}]', '[4,"nope","GenericError","",{}]'])
def test_answer_for_unknown_id(version: str, text: str) -> None:
    proto = RPCProtocol(protocol=version, id_factory=lambda: "c1")
    proto.send_call("Heartbeat", {})
    event = proto.receive(text)
    assert isinstance(event, BadMessage)
    assert event.reply is None
    assert event.failed_call is None
    assert event.message_id == "nope"
    assert type(event.error) is RPCProtocolError
    assert proto.pending_calls == {"c1": "Heartbeat"}
    assert proto.bad_message_count == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_late_response(version: str) -> None:
    proto = RPCProtocol(protocol=version, id_factory=_counter_ids())
    proto.receive("garbage")
    assert proto.bad_message_count == 1
    mid, _ = proto.send_call("Heartbeat", {})
    proto.expire_call(mid)
    assert proto.pending_calls == {}
    event = proto.receive(f'[3,"{mid}",{{}}]')
    assert event == LateResponse(
        message_id=mid, action="Heartbeat", frame=CallResult(message_id=mid, payload={})
    )
    assert proto.bad_message_count == 1  # neither counts nor resets
    mid2, _ = proto.send_call("Reset", {})
    proto.expire_call(mid2)
    event = proto.receive(f'[4,"{mid2}","InternalError","x",{{}}]')
    assert event == LateResponse(
        message_id=mid2,
        action="Reset",
        frame=CallError(message_id=mid2, error_code="InternalError", error_description="x"),
    )
    assert proto.bad_message_count == 1
    # a second answer for the same id is no longer late: it is bad
    event = proto.receive(f'[3,"{mid}",{{}}]')
    assert isinstance(event, BadMessage)
    assert event.reply is None
    assert proto.bad_message_count == 2


def test_expire_unknown_call_is_a_no_op() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    proto.expire_call("nope")
    assert isinstance(proto.receive('[3,"nope",{}]'), BadMessage)


def test_expire_frees_the_outstanding_slot() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", id_factory=_counter_ids())
    mid, _ = proto.send_call("A", {})
    proto.expire_call(mid)
    assert proto.send_call("B", {})[0] == "id-1"


def test_late_id_memory_is_bounded() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", id_factory=_counter_ids(), late_id_memory=2)
    for _ in range(3):
        mid, _ = proto.send_call("A", {})
        proto.expire_call(mid)
    # id-0 was forgotten, id-1 and id-2 are remembered
    assert isinstance(proto.receive('[3,"id-0",{}]'), BadMessage)
    assert isinstance(proto.receive('[3,"id-1",{}]'), LateResponse)
    assert isinstance(proto.receive('[3,"id-2",{}]'), LateResponse)


def test_late_id_memory_zero_remembers_nothing() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", id_factory=lambda: "c1", late_id_memory=0)
    proto.send_call("A", {})
    proto.expire_call("c1")
    assert isinstance(proto.receive('[3,"c1",{}]'), BadMessage)


def test_reusing_an_expired_id_makes_it_pending_again() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", id_factory=lambda: "c1")
    proto.send_call("A", {})
    proto.expire_call("c1")
    proto.send_call("B", {})
    assert isinstance(proto.receive('[3,"c1",{}]'), ResultReceived)
    assert isinstance(proto.receive('[3,"c1",{}]'), BadMessage)  # not late any more


@pytest.mark.parametrize("version", VERSIONS)
def test_one_outstanding_call(version: str) -> None:
    proto = RPCProtocol(protocol=version, id_factory=_counter_ids())
    proto.send_call("A", {})
    with pytest.raises(ProtocolStateError, match="at most 1"):
        proto.send_call("B", {})
    assert proto.pending_calls == {"id-0": "A"}
    if version == "ocpp2.1":
        assert proto.send_send("S", {})[0] == "id-1"  # SEND is exempt
    proto.receive('[3,"id-0",{}]')
    assert proto.send_call("B", {})[1].startswith('[2,"id-')


def test_more_outstanding_calls() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", id_factory=_counter_ids(), max_outstanding_calls=2)
    proto.send_call("A", {})
    proto.send_call("B", {})
    with pytest.raises(ProtocolStateError, match="at most 2"):
        proto.send_call("C", {})
    unbounded = RPCProtocol(protocol="ocpp2.0.1", max_outstanding_calls=math.inf)
    for _ in range(50):
        unbounded.send_call("A", {})
    assert len(unbounded.pending_calls) == 50


def test_send_call_with_a_pending_id() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", max_outstanding_calls=2)
    proto.send_call("A", {}, message_id="x")
    with pytest.raises(ProtocolStateError, match="'x' is already pending"):
        proto.send_call("B", {}, message_id="x")
    assert proto.pending_calls == {"x": "A"}


@pytest.mark.parametrize("message_id", ["", "x" * 37])
def test_send_call_with_an_invalid_id(message_id: str) -> None:
    proto = RPCProtocol(protocol="ocpp2.1")
    with pytest.raises(ValueError, match="1 to 36"):
        proto.send_call("A", {}, message_id=message_id)
    with pytest.raises(ValueError, match="1 to 36"):
        proto.send_send("A", {}, message_id=message_id)
    assert proto.pending_calls == {}


def test_send_call_that_cannot_be_encoded_is_not_pending() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    with pytest.raises(ValueError):
        proto.send_call("A", {"x": math.inf})
    assert proto.pending_calls == {}


# --- SEND and CALLRESULTERROR (2.1 only) ----------------------------------------------


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
def test_send_and_callresulterror_need_21(version: str) -> None:
    proto = RPCProtocol(protocol=version)
    assert not proto.supports_send
    with pytest.raises(ProtocolStateError, match="SEND does not exist"):
        proto.send_send("A", {})
    with pytest.raises(ProtocolStateError, match="CALLRESULTERROR does not exist"):
        proto.send_call_result_error("a", RPCFormatViolationError("x"))


def test_send_and_callresulterror_on_21() -> None:
    proto = RPCProtocol(protocol="ocpp2.1", id_factory=lambda: "s1")
    assert proto.supports_send
    assert proto.send_send("NotifyPeriodicEventStream", {"id": 1}) == (
        "s1",
        '[6,"s1","NotifyPeriodicEventStream",{"id":1}]',
    )
    assert proto.pending_calls == {}  # SEND is never answered
    text = proto.send_call_result_error("c9", RPCOccurrenceConstraintViolationError("x" * 300))
    reply = json.loads(text)
    assert reply[:3] == [5, "c9", "OccurrenceConstraintViolation"]
    assert len(reply[3]) == 255
    assert proto.receive('[6,"p1","A",{"k":[]}]') == SendReceived(
        message_id="p1", action="A", payload={"k": []}
    )
    assert proto.receive('[5,"p2","FormatViolation","bad",{}]') == CallResultErrorReceived(
        message_id="p2", code="FormatViolation", description="bad", details={}
    )


# --- state machine --------------------------------------------------------------------


def test_initial_state() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1")
    assert proto.state is RPCState.OPEN
    assert proto.bad_message_count == 0
    assert proto.pending_calls == {}
    assert proto.inbound_calls == frozenset()


@pytest.mark.parametrize("version", VERSIONS)
def test_closing(version: str) -> None:
    proto = RPCProtocol(protocol=version, id_factory=lambda: "c1")
    proto.send_call("A", {})
    proto.receive('[2,"in","B",{}]')
    proto.start_close()
    assert proto.state is RPCState.CLOSING
    proto.start_close()  # idempotent
    assert proto.state is RPCState.CLOSING
    with pytest.raises(ProtocolStateError, match="CLOSING"):
        proto.send_call("A", {}, message_id="c2")
    if version == "ocpp2.1":
        with pytest.raises(ProtocolStateError, match="CLOSING"):
            proto.send_send("A", {})
    # answers still flow both ways
    assert proto.send_result("in", {}) == '[3,"in",{}]'
    assert isinstance(proto.receive('[3,"c1",{}]'), ResultReceived)


def test_closed_returns_pending_calls() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", id_factory=_counter_ids(), max_outstanding_calls=2)
    proto.send_call("A", {})
    proto.send_call("B", {})
    proto.receive('[2,"in","C",{}]')
    assert proto.closed() == {"id-0": "A", "id-1": "B"}
    assert proto.state is RPCState.CLOSED
    assert proto.pending_calls == {}
    assert proto.inbound_calls == frozenset()
    assert proto.closed() == {}  # idempotent
    with pytest.raises(ProtocolStateError, match="start close in state CLOSED"):
        proto.start_close()
    with pytest.raises(ProtocolStateError, match="CLOSED"):
        proto.send_call("A", {})
    with pytest.raises(ProtocolStateError):
        proto.send_result("in", {})


def test_closed_from_closing() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", id_factory=lambda: "c1")
    proto.send_call("A", {})
    proto.start_close()
    assert proto.closed() == {"c1": "A"}
    assert proto.state is RPCState.CLOSED


# --- bad-message counting -------------------------------------------------------------


def test_limit_exceeded() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", max_bad_messages=2)
    events = [proto.receive("x") for _ in range(4)]
    assert [e.count for e in events if isinstance(e, BadMessage)] == [1, 2, 3, 4]
    assert [e.limit_exceeded for e in events if isinstance(e, BadMessage)] == [
        False,
        False,
        True,
        True,
    ]
    proto.receive('[2,"a","A",{}]')
    assert proto.bad_message_count == 0


def test_zero_tolerance() -> None:
    proto = RPCProtocol(protocol="ocpp2.0.1", max_bad_messages=0)
    event = proto.receive("x")
    assert isinstance(event, BadMessage)
    assert event.limit_exceeded


BAD_TEXTS: Final = {
    version: [row[1] for row in TABLE]
    + ([row[1] for row in TABLE_21] if version == "ocpp2.1" else [])
    for version in VERSIONS
}


class BadMessageCounting(RuleBasedStateMachine):
    """The counter matches a model: consecutive bad frames, reset by good, late is neutral."""

    def __init__(self) -> None:
        super().__init__()
        self.proto = RPCProtocol(protocol="ocpp2.0.1")
        self.version = "ocpp2.0.1"
        self.limit: float = math.inf
        self.count = 0
        self.ids = itertools.count()

    @initialize(version=st.sampled_from(VERSIONS), limit=st.sampled_from([0, 1, 3, math.inf]))
    def setup(self, version: str, limit: float) -> None:
        self.version = version
        self.limit = limit
        self.proto = RPCProtocol(
            protocol=version,
            id_factory=lambda: f"m{next(self.ids)}",
            max_bad_messages=limit,
        )

    def _expect_good(self, event: object) -> None:
        assert not isinstance(event, BadMessage | LateResponse)
        self.count = 0

    def _expect_bad(self, event: object) -> None:
        assert isinstance(event, BadMessage)
        self.count += 1
        assert event.count == self.count
        assert event.limit_exceeded == (self.count > self.limit)

    @rule(data=st.data())
    def bad_frame(self, data: st.DataObject) -> None:
        text = data.draw(st.sampled_from(BAD_TEXTS[self.version]))
        self._expect_bad(self.proto.receive(text))

    @rule(payload=st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
    def inbound_call_answered(self, payload: dict[str, int]) -> None:
        mid = f"in{next(self.ids)}"
        self._expect_good(self.proto.receive(json.dumps([2, mid, "A", payload])))
        self.proto.send_result(mid, {})

    @rule(error=st.booleans())
    def our_call_answered(self, error: bool) -> None:
        mid, _ = self.proto.send_call("A", {})
        answer = [4, mid, "GenericError", "", {}] if error else [3, mid, {}]
        self._expect_good(self.proto.receive(json.dumps(answer)))

    @rule(error=st.booleans())
    def late_answer(self, error: bool) -> None:
        mid, _ = self.proto.send_call("A", {})
        self.proto.expire_call(mid)
        answer = [4, mid, "GenericError", "", {}] if error else [3, mid, {}]
        event = self.proto.receive(json.dumps(answer))
        assert isinstance(event, LateResponse)

    @rule()
    def duplicate_call(self) -> None:
        mid = f"in{next(self.ids)}"
        self._expect_good(self.proto.receive(json.dumps([2, mid, "A", {}])))
        self._expect_bad(self.proto.receive(json.dumps([2, mid, "A", {}])))
        self.proto.forget_inbound(mid)

    @rule()
    def malformed_answer_for_pending_call(self) -> None:
        mid, _ = self.proto.send_call("A", {})
        event = self.proto.receive(json.dumps([3, mid, []]))
        self._expect_bad(event)
        assert isinstance(event, BadMessage)
        assert event.failed_call == mid

    @rule()
    def send_or_callresulterror(self) -> None:
        if self.version != "ocpp2.1":
            return
        self._expect_good(self.proto.receive('[6,"s","A",{}]'))
        self._expect_good(self.proto.receive('[5,"r","GenericError","",{}]'))

    @invariant()
    def count_matches_model(self) -> None:
        assert self.proto.bad_message_count == self.count
        assert self.proto.pending_calls == {}


BadMessageCounting.TestCase.settings = settings(max_examples=60, stateful_step_count=30)
TestBadMessageCounting = BadMessageCounting.TestCase
