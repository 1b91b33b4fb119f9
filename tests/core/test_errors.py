"""Tests for ocpp_trio._core.errors: codes, spellings, the exception hierarchy."""

from __future__ import annotations

from typing import Final

import pytest

from ocpp_trio._core.errors import (
    CODES_BY_PROTOCOL,
    MAX_DESCRIPTION_LENGTH,
    CallErrorReceived,
    ErrorCode,
    FrameDecodeError,
    OCPPError,
    RPCError,
    RPCFormationViolationError,
    RPCFormatViolationError,
    RPCFrameworkError,
    RPCGenericError,
    RPCInternalError,
    RPCMessageTypeNotSupportedError,
    RPCNotImplementedError,
    RPCNotSupportedError,
    RPCOccurrenceConstraintViolationError,
    RPCPropertyConstraintViolationError,
    RPCProtocolError,
    RPCSecurityError,
    RPCTypeConstraintViolationError,
    code_for_protocol,
    create_rpc_error,
    error_to_dict,
    truncate_description,
)

#: Every wire code and the class create_rpc_error gives for it.
CLASS_BY_CODE: Final[dict[str, type[RPCError]]] = {
    "GenericError": RPCGenericError,
    "NotImplemented": RPCNotImplementedError,
    "NotSupported": RPCNotSupportedError,
    "InternalError": RPCInternalError,
    "ProtocolError": RPCProtocolError,
    "SecurityError": RPCSecurityError,
    "FormatViolation": RPCFormatViolationError,
    "FormationViolation": RPCFormationViolationError,
    "PropertyConstraintViolation": RPCPropertyConstraintViolationError,
    "OccurrenceConstraintViolation": RPCOccurrenceConstraintViolationError,
    "OccurenceConstraintViolation": RPCOccurrenceConstraintViolationError,
    "TypeConstraintViolation": RPCTypeConstraintViolationError,
    "MessageTypeNotSupported": RPCMessageTypeNotSupportedError,
    "RpcFrameworkError": RPCFrameworkError,
}


def test_class_table_covers_every_error_code() -> None:
    assert set(CLASS_BY_CODE) == {code.value for code in ErrorCode}


@pytest.mark.parametrize(("code", "cls"), CLASS_BY_CODE.items())
def test_create_rpc_error(code: str, cls: type[RPCError]) -> None:
    err = create_rpc_error(code, "desc", {"k": [1]})
    assert type(err) is cls
    assert isinstance(err, RPCError)
    assert isinstance(err, OCPPError)
    assert err.description == "desc"
    assert err.details == {"k": [1]}


def test_both_occurrence_spellings_give_one_class() -> None:
    a = create_rpc_error("OccurenceConstraintViolation")
    b = create_rpc_error("OccurrenceConstraintViolation")
    assert type(a) is type(b) is RPCOccurrenceConstraintViolationError
    assert a.code == b.code == "OccurrenceConstraintViolation"


def test_unknown_code_keeps_the_code() -> None:
    err = create_rpc_error("VendorSpecificError", "d", {"x": 1})
    assert type(err) is RPCGenericError
    assert err.code == "VendorSpecificError"
    assert RPCGenericError.code == "GenericError"  # the class is untouched
    assert RPCGenericError().code == "GenericError"
    assert error_to_dict(err) == {
        "code": "VendorSpecificError",
        "description": "d",
        "details": {"x": 1},
    }


def test_rpc_error_defaults_and_text() -> None:
    err = RPCInternalError()
    assert (err.description, err.details) == ("", {})
    assert str(err) == "InternalError"
    err = RPCInternalError("boom", {"a": 1})
    assert str(err) == "InternalError: boom"
    assert repr(err) == "RPCInternalError(code='InternalError', description='boom')"
    assert RPCError.code == "GenericError"


def test_details_are_copied() -> None:
    details = {"a": 1}
    err = RPCInternalError("d", details)
    details["b"] = 2
    assert err.details == {"a": 1}
    as_dict = error_to_dict(err)
    as_dict["details"]["c"] = 3
    assert err.details == {"a": 1}


def test_error_to_dict() -> None:
    err = RPCPropertyConstraintViolationError("bad enum", {"field": "status"})
    assert error_to_dict(err) == {
        "code": "PropertyConstraintViolation",
        "description": "bad enum",
        "details": {"field": "status"},
    }


#: code -> (1.6 spelling, 2.0.1 / 2.1 spelling)
SPELLINGS: Final[dict[ErrorCode, tuple[str, str]]] = {
    ErrorCode.GENERIC_ERROR: ("GenericError", "GenericError"),
    ErrorCode.NOT_IMPLEMENTED: ("NotImplemented", "NotImplemented"),
    ErrorCode.NOT_SUPPORTED: ("NotSupported", "NotSupported"),
    ErrorCode.INTERNAL_ERROR: ("InternalError", "InternalError"),
    ErrorCode.PROTOCOL_ERROR: ("ProtocolError", "ProtocolError"),
    ErrorCode.SECURITY_ERROR: ("SecurityError", "SecurityError"),
    ErrorCode.FORMAT_VIOLATION: ("FormationViolation", "FormatViolation"),
    ErrorCode.FORMATION_VIOLATION: ("FormationViolation", "FormatViolation"),
    ErrorCode.PROPERTY_CONSTRAINT_VIOLATION: (
        "PropertyConstraintViolation",
        "PropertyConstraintViolation",
    ),
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: (
        "OccurenceConstraintViolation",
        "OccurrenceConstraintViolation",
    ),
    ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION: (
        "OccurenceConstraintViolation",
        "OccurrenceConstraintViolation",
    ),
    ErrorCode.TYPE_CONSTRAINT_VIOLATION: ("TypeConstraintViolation", "TypeConstraintViolation"),
    ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: ("ProtocolError", "MessageTypeNotSupported"),
    ErrorCode.RPC_FRAMEWORK_ERROR: ("FormationViolation", "RpcFrameworkError"),
}


def test_spelling_table_covers_every_code() -> None:
    assert set(SPELLINGS) == set(ErrorCode)


@pytest.mark.parametrize("code", list(ErrorCode))
@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"])
def test_code_for_protocol(code: ErrorCode, protocol: str) -> None:
    expected = SPELLINGS[code][0 if protocol == "ocpp1.6" else 1]
    assert code_for_protocol(code, protocol) == expected
    assert code_for_protocol(code.value, protocol) == expected  # a plain string works too
    assert type(code_for_protocol(code, protocol)) is str
    # what we send is always a code the version defines
    assert expected in CODES_BY_PROTOCOL[protocol]


@pytest.mark.parametrize("code", list(ErrorCode))
@pytest.mark.parametrize("protocol", [None, "vendor.example", "ocpp2.0"])
def test_code_for_vendor_protocol_is_unchanged(code: ErrorCode, protocol: str | None) -> None:
    assert code_for_protocol(code, protocol) == code.value


@pytest.mark.parametrize("protocol", [None, "ocpp1.6", "ocpp2.0.1", "ocpp2.1"])
def test_code_for_protocol_keeps_nonstandard_codes(protocol: str | None) -> None:
    assert code_for_protocol("VendorSpecific", protocol) == "VendorSpecific"


def test_codes_by_protocol() -> None:
    assert CODES_BY_PROTOCOL["ocpp2.1"] == CODES_BY_PROTOCOL["ocpp2.0.1"]
    assert len(CODES_BY_PROTOCOL["ocpp1.6"]) == 10
    assert len(CODES_BY_PROTOCOL["ocpp2.0.1"]) == 12
    assert "RpcFrameworkError" not in CODES_BY_PROTOCOL["ocpp1.6"]
    assert "FormationViolation" not in CODES_BY_PROTOCOL["ocpp2.0.1"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("short", "short"),
        ("x" * MAX_DESCRIPTION_LENGTH, "x" * MAX_DESCRIPTION_LENGTH),
        ("x" * (MAX_DESCRIPTION_LENGTH + 1), "x" * (MAX_DESCRIPTION_LENGTH - 3) + "..."),
        ("é" * 1000, "é" * (MAX_DESCRIPTION_LENGTH - 3) + "..."),
    ],
)
def test_truncate_description(text: str, expected: str) -> None:
    assert MAX_DESCRIPTION_LENGTH == 255
    assert truncate_description(text) == expected
    assert len(truncate_description(text)) <= MAX_DESCRIPTION_LENGTH


def test_call_error_received() -> None:
    exc = CallErrorReceived("NotSupported", "no display", {"k": 1}, action="SetDisplayMessage")
    assert isinstance(exc, OCPPError)
    assert (exc.code, exc.description, exc.details, exc.action) == (
        "NotSupported",
        "no display",
        {"k": 1},
        "SetDisplayMessage",
    )
    assert type(exc.error) is RPCNotSupportedError
    assert exc.error.description == "no display"
    assert exc.error.details == {"k": 1}
    assert str(exc) == "SetDisplayMessage: peer answered NotSupported: no display"


def test_call_error_received_without_action_or_description() -> None:
    exc = CallErrorReceived("Vendor", "", {})
    assert exc.action == ""
    assert str(exc) == "peer answered Vendor"
    assert type(exc.error) is RPCGenericError
    assert exc.error.code == "Vendor"


def test_call_error_received_copies_details() -> None:
    details = {"a": 1}
    exc = CallErrorReceived("GenericError", "", details)
    details["b"] = 2
    assert exc.details == {"a": 1}


def test_frame_decode_error() -> None:
    err = RPCFrameworkError("message is not valid JSON")
    exc = FrameDecodeError(err)
    assert (exc.error, exc.message_id, exc.message_type) == (err, "-1", None)
    assert str(exc) == "message is not valid JSON"
    exc = FrameDecodeError(err, message_id="a", message_type=2)
    assert (exc.message_id, exc.message_type) == ("a", 2)
