"""Tests of ocpp_trio._core.validation: loading, error mapping, descriptions, numbers, formats."""

from __future__ import annotations

import ast
import copy
import re
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_trio._core import validation
from ocpp_trio._core.errors import (
    MAX_DESCRIPTION_LENGTH,
    RPCError,
    RPCFormatViolationError,
    RPCNotImplementedError,
    RPCNotSupportedError,
    RPCOccurrenceConstraintViolationError,
    RPCPropertyConstraintViolationError,
    RPCTypeConstraintViolationError,
    ValidationError,
    code_for_protocol,
)
from ocpp_trio._core.validation import (
    LOAD_TIME_ADAPTATIONS,
    SUPPORTED_PROTOCOLS,
    URI_PATTERN,
    Validator,
    adapt_schema,
    create_validator,
    get_validator,
    load_schemas,
    send_only_actions,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
DRAFT6 = "http://json-schema.org/draft-06/schema#"

BOOT_16 = {"chargePointVendor": "VendorX", "chargePointModel": "ModelY"}
AUTH_16_RESPONSE = {"idTagInfo": {"status": "Accepted"}}


def error_of(validator: Validator, action: str, direction: Any, payload: Any) -> RPCError:
    with pytest.raises(ValidationError) as info:
        validator.validate(action, direction, payload)
    assert info.value.protocol == validator.protocol
    assert info.value.action == action
    assert info.value.direction == direction
    return info.value.error


# --- loading ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "files", "actions", "send_only"),
    [
        ("ocpp1.6", 78, 39, set()),
        ("ocpp2.0.1", 128, 64, set()),
        ("ocpp2.1", 181, 91, {"NotifyPeriodicEventStream"}),
    ],
)
def test_loader_counts(protocol: str, files: int, actions: int, send_only: set[str]) -> None:
    assert len(list((SCHEMAS / protocol).glob("*.json"))) == files
    schemas = load_schemas(protocol)
    assert len(schemas) == files
    requests = {a for a, d in schemas if d == "request"}
    responses = {a for a, d in schemas if d == "response"}
    assert len(requests) == actions
    assert requests - responses == send_only
    assert responses <= requests
    assert send_only_actions(protocol) == send_only
    validator = get_validator(protocol)
    assert validator.actions == requests
    assert validator.send_only_actions == send_only


def test_file_names_map_to_action_and_direction() -> None:
    assert {("BootNotification", "request"), ("BootNotification", "response")} <= set(
        load_schemas("ocpp1.6")
    )
    assert ("SignCertificate", "request") in load_schemas("ocpp1.6")  # Security Extension
    v201 = load_schemas("ocpp2.0.1")
    assert ("TransactionEvent", "request") in v201
    assert ("TransactionEvent", "response") in v201
    assert not any(action.endswith(("Request", "Response")) for action, _ in v201)
    v21 = load_schemas("ocpp2.1")
    assert ("NotifyPeriodicEventStream", "request") in v21
    assert ("NotifyPeriodicEventStream", "response") not in v21


def test_adaptations_are_applied_and_listed() -> None:
    assert len(LOAD_TIME_ADAPTATIONS) >= 5
    raw = load_schemas("ocpp2.1", raw=True)[("BootNotification", "request")]
    adapted = load_schemas("ocpp2.1")[("BootNotification", "request")]
    assert raw["$id"].startswith("urn:OCPP:")
    assert "$id" not in adapted
    assert "comment" in raw
    assert "comment" not in adapted
    assert "javaType" not in str(adapted)
    assert "description" not in str(adapted)
    assert "$id" not in load_schemas("ocpp1.6")[("SignCertificate", "request")]
    # data is untouched: enum values, required names, and properties named like keywords
    schema = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "description": {"type": "string"}},
        "required": ["id", "description"],
        "definitions": {"E": {"enum": ["title", "description"]}},
    }
    assert adapt_schema(schema) == schema


def test_remote_refs_are_refused() -> None:
    with pytest.raises(ValueError, match="local"):
        adapt_schema({"$ref": "http://example.com/schema.json"})
    with pytest.raises(ValueError, match="local"):
        create_validator("x", {("A", "request"): {"properties": {"a": {"$ref": "other.json#"}}}})


def test_get_validator_is_shared_and_checks_the_protocol() -> None:
    assert SUPPORTED_PROTOCOLS == ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
    assert get_validator("ocpp2.0.1") is get_validator("ocpp2.0.1")
    with pytest.raises(ValueError, match=r"ocpp1\.5"):
        get_validator("ocpp1.5")


def test_module_imports_no_trio() -> None:
    """The module itself imports only the stdlib, fastjsonschema and ``.errors``.

    (Checked on the source: importing ``ocpp_trio._core.validation`` also runs
    ``ocpp_trio/__init__.py``, which re-exports the Trio layer.)
    """
    source = Path(validation.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or "").split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"fastjsonschema", ".errors"}
    assert imported <= allowed, imported - allowed


def test_precompile_and_schema() -> None:
    validator = create_validator("ocpp1.6", SCHEMAS / "ocpp1.6")
    validator.precompile()
    assert "78 compiled" in repr(validator)
    assert validator.schema("Heartbeat", "request")["type"] == "object"
    with pytest.raises(KeyError):
        validator.schema("Nope", "request")


# --- valid payloads ----------------------------------------------------------------


def test_valid_payloads_pass() -> None:
    get_validator("ocpp1.6").validate("BootNotification", "request", BOOT_16)
    get_validator("ocpp1.6").validate("Authorize", "response", AUTH_16_RESPONSE)
    get_validator("ocpp2.0.1").validate(
        "BootNotification",
        "request",
        {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}},
    )
    get_validator("ocpp2.1").validate(
        "NotifyPeriodicEventStream",
        "request",
        {"id": 1, "pending": 0, "basetime": "2024-01-01T00:00:00Z", "data": [{"t": 0.5, "v": "1"}]},
    )


def test_validation_never_inserts_defaults() -> None:
    payload = {"getVariableData": [{"component": {"name": "C"}, "variable": {"name": "V"}}]}
    before = copy.deepcopy(payload)
    get_validator("ocpp2.0.1").validate("GetVariables", "request", payload)
    assert payload == before  # attributeType has "default": "Actual" in the schema


# --- the error mapping, rule by rule --------------------------------------------------

OCA_CASES = [
    # type
    (
        "ocpp1.6",
        "BootNotification",
        "request",
        {**BOOT_16, "chargePointModel": 5},
        RPCTypeConstraintViolationError,
        "chargePointModel must be string, not integer",
    ),
    # required
    (
        "ocpp1.6",
        "BootNotification",
        "request",
        {"chargePointVendor": "V"},
        RPCOccurrenceConstraintViolationError,
        "chargePointModel is required",
    ),
    (
        "ocpp1.6",
        "Authorize",
        "response",
        {"idTagInfo": {}},
        RPCOccurrenceConstraintViolationError,
        "idTagInfo.status is required",
    ),
    # enum
    (
        "ocpp1.6",
        "Authorize",
        "response",
        {"idTagInfo": {"status": "Maybe"}},
        RPCPropertyConstraintViolationError,
        "idTagInfo.status must be one of ['Accepted', 'Blocked', 'Expired', 'Invalid', "
        "'ConcurrentTx']",
    ),
    # maxLength
    (
        "ocpp1.6",
        "BootNotification",
        "request",
        {**BOOT_16, "chargePointVendor": "V" * 21},
        RPCPropertyConstraintViolationError,
        "chargePointVendor must be at most 20 characters",
    ),
    # format
    (
        "ocpp1.6",
        "Authorize",
        "response",
        {"idTagInfo": {"status": "Accepted", "expiryDate": "soon"}},
        RPCPropertyConstraintViolationError,
        "idTagInfo.expiryDate must be an RFC 3339 date-time",
    ),
    # additionalProperties
    (
        "ocpp1.6",
        "BootNotification",
        "request",
        {**BOOT_16, "colour": "red"},
        RPCFormatViolationError,
        "payload has unexpected property 'colour'",
    ),
    (
        "ocpp1.6",
        "Authorize",
        "response",
        {"idTagInfo": {"status": "Accepted", "a": 1, "b": 2}},
        RPCFormatViolationError,
        "idTagInfo has unexpected property 'a' (and 1 more)",
    ),
    # a payload that is not an object
    ("ocpp1.6", "Heartbeat", "request", [], RPCFormatViolationError, None),
    ("ocpp2.0.1", "Heartbeat", "request", None, RPCFormatViolationError, None),
    ("ocpp2.1", "Heartbeat", "request", "{}", RPCFormatViolationError, None),
    # minItems, with an array index in the path (the OCA's 1.6 files have no
    # minItems: an empty sampledValue passes there, see test_16_editions_differ)
    (
        "ocpp2.0.1",
        "MeterValues",
        "request",
        {
            "evseId": 1,
            "meterValue": [{"timestamp": "2024-01-01T00:00:00Z", "sampledValue": []}],
        },
        RPCOccurrenceConstraintViolationError,
        "meterValue[0].sampledValue must have at least 1 items",
    ),
    # minimum / maximum (2.0.1 writes them as 0.0 and 100.0)
    (
        "ocpp2.0.1",
        "NotifyEVChargingNeeds",
        "request",
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC",
                "dcChargingParameters": {
                    "evMaxCurrent": 1,
                    "evMaxVoltage": 1,
                    "stateOfCharge": 101,
                },
            },
        },
        RPCPropertyConstraintViolationError,
        "chargingNeeds.dcChargingParameters.stateOfCharge must be <= 100",
    ),
    # multipleOf (1.6 charging limits)
    (
        "ocpp1.6",
        "SetChargingProfile",
        "request",
        {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.05}],
                },
            },
        },
        RPCPropertyConstraintViolationError,
        "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit must be a multiple "
        "of 0.1",
    ),
]


@pytest.mark.parametrize(
    ("protocol", "action", "direction", "payload", "cls", "description"), OCA_CASES
)
def test_oca_rule_mapping(
    protocol: str,
    action: str,
    direction: Any,
    payload: Any,
    cls: type[RPCError],
    description: str | None,
) -> None:
    error = error_of(get_validator(protocol), action, direction, payload)
    assert type(error) is cls
    if description is not None:
        assert error.description == description
    else:
        assert error.description.startswith("payload must be a JSON object")


CUSTOM = create_validator(
    "vendor.test",
    {
        ("Rules", "request"): {
            "$schema": DRAFT6,
            "type": "object",
            "properties": {
                "text": {"type": "string", "minLength": 2, "pattern": "^[a-z]+$"},
                "exact": {"const": "fixed"},
                "low": {"type": "number", "exclusiveMinimum": 0},
                "high": {"type": "integer", "exclusiveMaximum": 10},
                "min": {"type": "integer", "minimum": 1},
                "list": {"type": "array", "maxItems": 2},
                "obj": {"type": "object", "minProperties": 1, "maxProperties": 1},
                "either": {"type": ["string", "integer"]},
                "any": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
        },
        ("Rules4", "request"): {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "object",
            "properties": {"low": {"type": "number", "minimum": 0, "exclusiveMinimum": True}},
        },
    },
)


@pytest.mark.parametrize(
    ("action", "payload", "cls", "description"),
    [
        (
            "Rules",
            {"text": "a"},
            RPCPropertyConstraintViolationError,
            "text must be at least 2 characters",
        ),
        ("Rules", {"text": "AB"}, RPCPropertyConstraintViolationError, "text must match ^[a-z]+$"),
        ("Rules", {"exact": "other"}, RPCPropertyConstraintViolationError, "exact must be 'fixed'"),
        ("Rules", {"low": 0}, RPCPropertyConstraintViolationError, "low must be > 0"),
        ("Rules4", {"low": 0}, RPCPropertyConstraintViolationError, "low must be > 0"),
        ("Rules", {"high": 10}, RPCPropertyConstraintViolationError, "high must be < 10"),
        ("Rules", {"min": 0}, RPCPropertyConstraintViolationError, "min must be >= 1"),
        (
            "Rules",
            {"list": [1, 2, 3]},
            RPCOccurrenceConstraintViolationError,
            "list must have at most 2 items",
        ),
        (
            "Rules",
            {"obj": {}},
            RPCOccurrenceConstraintViolationError,
            "obj must have at least 1 properties",
        ),
        (
            "Rules",
            {"obj": {"a": 1, "b": 2}},
            RPCOccurrenceConstraintViolationError,
            "obj must have at most 1 properties",
        ),
        (
            "Rules",
            {"either": 1.5},
            RPCTypeConstraintViolationError,
            "either must be string or integer, not number",
        ),
        ("Rules", {"any": 1.5}, RPCFormatViolationError, "any breaks the schema rule 'anyOf'"),
    ],
)
def test_custom_rule_mapping(
    action: str, payload: Any, cls: type[RPCError], description: str
) -> None:
    error = error_of(CUSTOM, action, "request", payload)
    assert type(error) is cls
    assert error.description == description


METER_16 = {"timestamp": "2024-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}


@pytest.mark.parametrize(
    ("payload", "path", "field", "rule"),
    [
        (
            {"connectorId": 1, "meterValue": [{**METER_16, "sampledValue": [{"value": 5}]}]},
            ("meterValue", 0, "sampledValue", 0, "value"),
            "meterValue[0].sampledValue[0].value",
            "type",
        ),
        (
            {"connectorId": 1, "meterValue": [METER_16, {**METER_16, "sampledValue": [{}]}]},
            ("meterValue", 1, "sampledValue", 0),
            "meterValue[1].sampledValue[0]",
            "required",
        ),
        (
            {"connectorId": 1, "meterValue": [{**METER_16, "extra": 1}]},
            ("meterValue", 0),
            "meterValue[0]",
            "additionalProperties",
        ),
        (
            {"connectorId": 1, "meterValue": [{**METER_16, "timestamp": "yesterday"}]},
            ("meterValue", 0, "timestamp"),
            "meterValue[0].timestamp",
            "format",
        ),
        ({"meterValue": [METER_16]}, (), "", "required"),
        ([], (), "", "type"),
    ],
)
def test_the_error_carries_the_field_path_and_the_rule(
    payload: Any, path: tuple[str | int, ...], field: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as info:
        get_validator("ocpp1.6").validate("MeterValues", "request", payload)
    exc = info.value
    assert (exc.path, exc.field, exc.rule) == (path, field, rule)
    assert str(exc).endswith(f" (rule {rule!r} at {field or 'the payload'})")


def test_the_error_names_the_length_rule() -> None:
    error = ValidationError(
        RPCPropertyConstraintViolationError("a[2].b must be at most 3 characters"),
        protocol="p",
        action="A",
        direction="request",
        path=("a", 2, "b"),
        rule="maxLength",
    )
    assert error.field == "a[2].b"
    assert str(error) == (
        "p A request: PropertyConstraintViolation: a[2].b must be at most 3 characters "
        "(rule 'maxLength' at a[2].b)"
    )
    with pytest.raises(ValidationError) as info:
        CUSTOM.validate("Rules", "request", {"text": "a"})
    assert (info.value.path, info.value.rule) == (("text",), "minLength")


def test_a_missing_schema_has_no_rule() -> None:
    validator = create_validator("ocpp2.1", SCHEMAS / "ocpp2.1", require_schema=True)
    with pytest.raises(ValidationError) as info:
        validator.validate("VendorThing", "request", {})
    assert (info.value.path, info.value.field, info.value.rule) == ((), "", None)
    assert "rule" not in str(info.value)


def test_canonical_classes_are_spelled_per_version() -> None:
    error = error_of(get_validator("ocpp1.6"), "BootNotification", "request", {**BOOT_16, "x": 1})
    assert code_for_protocol(error.code, "ocpp1.6") == "FormationViolation"
    assert code_for_protocol(error.code, "ocpp2.0.1") == "FormatViolation"
    error = error_of(get_validator("ocpp1.6"), "BootNotification", "request", {})
    assert code_for_protocol(error.code, "ocpp1.6") == "OccurenceConstraintViolation"


# --- descriptions: length, no payload echo ----------------------------------------------


def test_description_is_capped_at_255() -> None:
    validator = create_validator(
        "vendor.test",
        {("Big", "request"): {"properties": {"e": {"enum": [f"v{i:04}" for i in range(500)]}}}},
    )
    error = error_of(validator, "Big", "request", {"e": "nope"})
    assert len(error.description) == MAX_DESCRIPTION_LENGTH
    assert error.description.startswith("e must be one of ['v0000', ")
    assert error.description.endswith("...")


def test_description_never_echoes_the_payload() -> None:
    secret = "s3cr3t-" * 10
    payloads = [
        {**BOOT_16, "chargePointVendor": secret},  # too long
        {**BOOT_16, "chargePointModel": [secret]},  # wrong type
        {**BOOT_16, secret: secret},  # unexpected property: its name is shortened
        [secret],  # not an object
    ]
    for payload in payloads:
        with pytest.raises(ValidationError) as info:
            get_validator("ocpp1.6").validate("BootNotification", "request", payload)
        assert secret not in info.value.error.description
        assert secret not in str(info.value)
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__


# --- unknown actions ---------------------------------------------------------------


def test_unknown_action_passes_by_default() -> None:
    get_validator("ocpp1.6").validate("VendorThing", "request", {"anything": [1, 2]})
    get_validator("ocpp2.1").validate("NotifyPeriodicEventStream", "response", {})


def test_unknown_action_with_require_schema() -> None:
    validator = create_validator("ocpp2.1", SCHEMAS / "ocpp2.1", require_schema=True)
    error = error_of(validator, "VendorThing" * 10, "request", {})
    assert type(error) is RPCNotImplementedError
    assert len(error.description) < 100
    error = error_of(validator, "NotifyPeriodicEventStream", "response", {})
    assert type(error) is RPCNotSupportedError
    assert validator.send_only_actions == {"NotifyPeriodicEventStream"}


def test_bad_direction_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="direction"):
        get_validator("ocpp1.6").validate("Heartbeat", "reply", {})  # type: ignore[arg-type]


# --- create_validator ----------------------------------------------------------------


OBJ = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
    "additionalProperties": False,
}


def test_create_validator_accepts_both_mapping_forms() -> None:
    by_key = create_validator(
        "vendor.a", {("Do", "request"): OBJ, ("Do", "response"): OBJ, ("Tell", "request"): OBJ}
    )
    nested = create_validator(
        "vendor.a", {"Do": {"request": OBJ, "response": OBJ}, "Tell": {"request": OBJ}}
    )
    for validator in (by_key, nested):
        assert validator.protocol == "vendor.a"
        assert validator.actions == {"Do", "Tell"}
        assert validator.send_only_actions == {"Tell"}
        assert validator.has_schema("Do", "response")
        assert not validator.has_schema("Tell", "response")
        validator.validate("Do", "response", {"n": 1})
        assert (
            type(error_of(validator, "Do", "request", {})) is RPCOccurrenceConstraintViolationError
        )
    explicit = create_validator("vendor.a", {"Tell": {"request": OBJ}}, send_only=())
    assert explicit.send_only_actions == frozenset()
    with pytest.raises(ValueError, match="direction"):
        create_validator("vendor.a", {"Do": {"reply": OBJ}})
    with pytest.raises(ValueError, match="JSON object"):
        create_validator("vendor.a", {("Do", "request"): ["not", "a", "schema"]})  # type: ignore[dict-item]


def test_create_validator_from_folders(tmp_path: Path) -> None:
    two_x = tmp_path / "v2"
    two_x.mkdir()
    for name in [
        "HeartbeatRequest.json",
        "HeartbeatResponse.json",
        "NotifyPeriodicEventStream.json",
    ]:
        shutil.copy(SCHEMAS / "ocpp2.1" / name, two_x / name)
    (two_x / "README.md").write_text("not a schema")
    validator = create_validator("vendor.v2", str(two_x))
    assert validator.actions == {"Heartbeat", "NotifyPeriodicEventStream"}
    assert validator.send_only_actions == {"NotifyPeriodicEventStream"}

    one_six = tmp_path / "v16"
    one_six.mkdir()
    for name in ["Heartbeat.json", "HeartbeatResponse.json"]:
        shutil.copy(SCHEMAS / "ocpp1.6" / name, one_six / name)
    validator = create_validator("vendor.v16", one_six)
    assert validator.has_schema("Heartbeat", "request")
    assert validator.has_schema("Heartbeat", "response")
    assert validator.send_only_actions == frozenset()
    with pytest.raises(FileNotFoundError):
        create_validator("vendor.x", tmp_path / "missing")


def test_broken_custom_schema_surfaces_on_compile() -> None:
    validator = create_validator("vendor.b", {("Do", "request"): {"type": "no-such-type"}})
    with pytest.raises(ValueError, match="cannot be compiled"):
        validator.precompile()


# --- numbers -------------------------------------------------------------------------


NUMBER = {"type": "object", "properties": {"x": {"type": "number"}, "i": {"type": "integer"}}}
NUMBERS = create_validator(
    "vendor.n",
    {
        ("D6", "request"): {"$schema": DRAFT6, **NUMBER},
        ("D4", "request"): {"$schema": "http://json-schema.org/draft-04/schema#", **NUMBER},
    },
)


@pytest.mark.parametrize("action", ["D4", "D6"])
@pytest.mark.parametrize("value", [0, 7, -3, 1.5, 1e300, 2**70])
def test_number_accepts_int_and_float(action: str, value: float) -> None:
    NUMBERS.validate(action, "request", {"x": value})


@pytest.mark.parametrize("action", ["D4", "D6"])
@pytest.mark.parametrize(
    ("field", "value"), [("x", True), ("i", False), ("i", 1.5), ("x", "1"), ("i", "1")]
)
def test_type_errors_for_numbers(action: str, field: str, value: Any) -> None:
    error = error_of(NUMBERS, action, "request", {field: value})
    assert type(error) is RPCTypeConstraintViolationError


def test_integer_one_point_zero_follows_the_draft() -> None:
    NUMBERS.validate("D6", "request", {"i": 1.0})
    assert type(error_of(NUMBERS, "D4", "request", {"i": 1.0})) is RPCTypeConstraintViolationError
    # the same on the OCA files: 1.6 core is draft-04, 2.0.1 is draft-06
    response = {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300.0}
    get_validator("ocpp2.0.1").validate("BootNotification", "response", response)
    error = error_of(get_validator("ocpp1.6"), "BootNotification", "response", response)
    assert error.description == "interval must be integer, not number"


@pytest.mark.parametrize("limit", [0.7, 6.1, 32, 32.0, 0.30000000000000004 - 0.00000000000000004])
def test_multiple_of_on_decimal_spelling(limit: float) -> None:
    schema = {"type": "number", "multipleOf": 0.1}
    validator = create_validator(
        "vendor.m",
        {("M", "request"): {"$schema": DRAFT6, "type": "object", "properties": {"v": schema}}},
    )
    validator.validate("M", "request", {"v": limit})
    error = error_of(validator, "M", "request", {"v": 0.25})
    assert error.description == "v must be a multiple of 0.1"


# --- date-time ------------------------------------------------------------------------


def auth_with(expiry: str) -> dict[str, Any]:
    return {"idTagInfo": {"status": "Accepted", "expiryDate": expiry}}


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00z",
        "2024-01-01t00:00:00Z",
        "2024-06-30T23:59:59.123456+02:00",
        "2024-12-31T23:59:60Z",  # leap second
        "2024-02-29T12:00:00-05:30",
        "2000-02-29T12:00:00Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_date_time_accepted(value: str) -> None:
    get_validator("ocpp1.6").validate("Authorize", "response", auth_with(value))
    get_validator("ocpp2.0.1").validate("Heartbeat", "response", {"currentTime": value})


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01",
        "2024-01-01T00:00:00",  # no offset
        "2024-01-01 00:00:00Z",  # space
        "2024-01-01T00:00:00+0100",  # ISO 8601 basic offset, not RFC 3339
        "2024-01-01T00:00Z",  # no seconds
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:61Z",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00.Z",
        "２０２４-01-01T00:00:00Z",  # non-ASCII digits
        "2024-01-01T00:00:00Z\n",
        "",
    ],
)
def test_date_time_rejected(value: str) -> None:
    error = error_of(get_validator("ocpp2.0.1"), "Heartbeat", "response", {"currentTime": value})
    assert type(error) is RPCPropertyConstraintViolationError
    assert error.description == "currentTime must be an RFC 3339 date-time"


def test_formats_can_be_turned_off() -> None:
    lenient = create_validator("ocpp2.0.1", SCHEMAS / "ocpp2.0.1", check_formats=False)
    lenient.validate("Heartbeat", "response", {"currentTime": "yesterday"})


#: RFC 3986 ``URI`` cases, each named after the ABNF rule (Appendix A) it exercises.
URI_CASES: Final = [
    # scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    ("ftp://host/diag", True),
    ("HTTP://A", True),
    ("coap+tcp://h", True),
    ("a.b-c:x", True),
    ("1ab:x", False),  # a scheme starts with a letter
    (":x", False),  # an empty scheme
    ("a b:x", False),
    ("nouri", False),  # no ":"
    # hier-part = path-empty / path-rootless / path-absolute / "//" authority path-abempty
    ("x:", True),
    ("ftp:", True),
    ("urn:oasis:names:tc", True),
    ("mailto:ops@example.com", True),
    ("x:/", True),
    ("x://", True),  # an empty reg-name
    ("file:///etc/fw.bin", True),
    ("https://h.example/a?b=c", True),
    ("http://h/a//b", True),  # empty segments
    # authority = [ userinfo "@" ] host [ ":" port ]
    ("ftp://user:pw@h:21/x", True),
    ("http://h:/", True),  # port = *DIGIT
    ("http://h:8a/", False),
    ("http://a@b@c/", False),  # "@" is not a userinfo character
    # IP-literal = "[" ( IPv6address / IPvFuture ) "]"
    ("http://[::1]/", True),
    ("http://[2001:db8::7]:8080/", True),
    ("http://[::ffff:192.0.2.1]/", True),
    ("http://[1:2:3:4:5:6:7:8]/", True),
    ("http://[v7.a:b]/", True),
    ("http://[1::2::3]/", False),  # "::" at most once
    ("http://[1:2:3:4:5:6:7:8:9]/", False),
    ("http://[fe80::1%25eth0]/", False),  # zone ids are RFC 6874, not RFC 3986
    ("http://[::1/", False),
    # pct-encoded = "%" HEXDIG HEXDIG
    ("http://a/%2Fb%c3%A9", True),
    ("http://a/%zz", False),
    ("http://a/%2", False),
    ("http://a/%", False),
    # characters outside unreserved / sub-delims / ":" / "@" / "/" / "?"
    ("http://a/<b>", False),
    ("http://a/b c", False),
    ("not a uri", False),
    ('http://a/"q"', False),
    ("http://a/\\b", False),
    ("http://a/{x}", False),
    ("http://a/b|c", False),
    ("http://é.example/", False),  # an IRI, not a URI
    ("http://a/\u00e9", False),
    # query and fragment = *( pchar / "/" / "?" )
    ("http://a/?x=1&y=/?:@!$'()*+,;=", True),
    ("http://a/#frag/?", True),
    ("http://a/#b#c", False),
    ("http://a/?b#c#d", False),
    # a relative reference is not a URI
    ("//h/path", False),
    ("/path", False),
    ("", False),
    ("http://a/\n", False),
]


@pytest.mark.parametrize(("value", "ok"), URI_CASES)
def test_uri_format_is_rfc_3986(value: str, ok: bool) -> None:
    payload = {"location": value, "retrieveDate": "2024-01-01T00:00:00Z"}
    if ok:
        get_validator("ocpp1.6").validate("UpdateFirmware", "request", payload)
    else:
        error = error_of(get_validator("ocpp1.6"), "UpdateFirmware", "request", payload)
        assert type(error) is RPCPropertyConstraintViolationError
        assert error.description == "location must be a valid uri"


@pytest.mark.parametrize(("value", "ok"), URI_CASES)
def test_uri_cases_agree_with_the_reference(value: str, ok: bool) -> None:
    """The cases above, checked against jsonschema's own choice of RFC 3986 checker.

    Its regular expression ends in ``$``, which also matches before a final
    newline, so that one case is left to the grammar.
    """
    from rfc3986_validator import validate_rfc3986

    if value.endswith("\n"):
        assert not ok
        return
    assert bool(validate_rfc3986(value, rule="URI")) is ok


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab:/?#[]@%2F!$&'()*+,;=.-_~ <>é1", max_size=16))
def test_uri_pattern_agrees_with_rfc3986_validator(value: str) -> None:
    from rfc3986_validator import validate_rfc3986

    ours = re.match(URI_PATTERN, value) is not None
    assert ours is bool(validate_rfc3986(value, rule="URI")), value


# --- concurrency ------------------------------------------------------------------------


def test_threads_share_a_validator() -> None:
    validator = create_validator("ocpp1.6", SCHEMAS / "ocpp1.6")
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                validator.validate("BootNotification", "request", BOOT_16)
                with pytest.raises(ValidationError):
                    validator.validate("BootNotification", "request", {})
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert "1 compiled" in repr(validator)
