"""OCPP 1.6's two schema editions: exactly the differences schemas/README.md lists.

The default set is the OCA's 2019-12 set (published with the OCPP 1.6 errata
sheet v4.0); the ``"pre-errata"`` variant holds the files as first published.
The comparison is by constraint, not by text: each schema is flattened into
``(path, keyword) -> value`` and the two editions compared file by file.
``additionalProperties`` on a node that is not an object (the 2019-12 set adds
it to every enum) constrains nothing, so it is left out.
"""

from __future__ import annotations

from typing import Any, Final

import pytest

from ocpp_trio._core.errors import (
    RPCFormatViolationError,
    RPCPropertyConstraintViolationError,
    RPCTypeConstraintViolationError,
    ValidationError,
)
from ocpp_trio._core.validation import SCHEMA_VARIANTS, get_validator, load_schemas

_NOT_CONSTRAINTS: Final = frozenset({"title", "description", "$schema", "id", "$id"})


def flatten(node: Any, path: str = "") -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for key, value in node.items():
        if key in _NOT_CONSTRAINTS:
            continue
        if key == "properties":
            for name, sub in value.items():
                out.update(flatten(sub, f"{path}.{name}"))
        elif key == "items":
            out.update(flatten(value, f"{path}[]"))
        elif key in ("enum", "required"):
            out[(path, key)] = frozenset(value)
        elif isinstance(value, dict):
            out[(path, key)] = repr(sorted(value.items()))  # a misplaced subschema
        else:
            out[(path, key)] = value
    return out


def differences() -> set[tuple[str, str, str, str]]:
    errata = load_schemas("ocpp1.6", raw=True)
    earlier = load_schemas("ocpp1.6", raw=True, variant="pre-errata")
    assert errata.keys() == earlier.keys()
    found: set[tuple[str, str, str, str]] = set()
    for (action, direction), schema in errata.items():
        new, old = flatten(schema), flatten(earlier[(action, direction)])
        for path, keyword in new.keys() | old.keys():
            if new.get((path, keyword)) == old.get((path, keyword)):
                continue
            if keyword == "additionalProperties":
                kind = new.get((path, "type"), old.get((path, "type")))
                if kind != "object":
                    continue
            found.add((action, direction, path or "/", keyword))
    return found


#: What the OCA's 2019-12 set changed (schemas/README.md has the same list).
EXPECTED: Final = {
    # `additionalProperties: false` on inner objects (errata: "JSON Schema files
    # do allow for extra fields within inner objects")
    ("Authorize", "response", ".idTagInfo", "additionalProperties"),
    ("GetCompositeSchedule", "response", ".chargingSchedule", "additionalProperties"),
    (
        "GetCompositeSchedule",
        "response",
        ".chargingSchedule.chargingSchedulePeriod[]",
        "additionalProperties",
    ),
    ("GetConfiguration", "response", ".configurationKey[]", "additionalProperties"),
    ("MeterValues", "request", ".meterValue[]", "additionalProperties"),
    ("MeterValues", "request", ".meterValue[].sampledValue[]", "additionalProperties"),
    ("RemoteStartTransaction", "request", ".chargingProfile", "additionalProperties"),
    (
        "RemoteStartTransaction",
        "request",
        ".chargingProfile.chargingSchedule",
        "additionalProperties",
    ),
    (
        "RemoteStartTransaction",
        "request",
        ".chargingProfile.chargingSchedule.chargingSchedulePeriod[]",
        "additionalProperties",
    ),
    ("SendLocalList", "request", ".localAuthorizationList[]", "additionalProperties"),
    (
        "SendLocalList",
        "request",
        ".localAuthorizationList[].idTagInfo",
        "additionalProperties",
    ),
    ("SetChargingProfile", "request", ".csChargingProfiles", "additionalProperties"),
    (
        "SetChargingProfile",
        "request",
        ".csChargingProfiles.chargingSchedule",
        "additionalProperties",
    ),
    (
        "SetChargingProfile",
        "request",
        ".csChargingProfiles.chargingSchedule.chargingSchedulePeriod[]",
        "additionalProperties",
    ),
    ("StartTransaction", "response", ".idTagInfo", "additionalProperties"),
    ("StopTransaction", "request", ".transactionData[]", "additionalProperties"),
    (
        "StopTransaction",
        "request",
        ".transactionData[].sampledValue[]",
        "additionalProperties",
    ),
    ("StopTransaction", "response", ".idTagInfo", "additionalProperties"),
    # `Celsius`, the right spelling, next to `Celcius`
    ("MeterValues", "request", ".meterValue[].sampledValue[].unit", "enum"),
    ("StopTransaction", "request", ".transactionData[].sampledValue[].unit", "enum"),
    # integers that were numbers
    ("BootNotification", "response", ".interval", "type"),
    ("UpdateFirmware", "request", ".retries", "type"),
    ("UpdateFirmware", "request", ".retryInterval", "type"),
    # the earlier SendLocalList holds idTagInfo's expiryDate and parentIdTag
    # beside `properties` instead of in it, so they were never checked
    ("SendLocalList", "request", ".localAuthorizationList[].idTagInfo", "expiryDate"),
    ("SendLocalList", "request", ".localAuthorizationList[].idTagInfo", "parentIdTag"),
    ("SendLocalList", "request", ".localAuthorizationList[].idTagInfo.expiryDate", "type"),
    ("SendLocalList", "request", ".localAuthorizationList[].idTagInfo.expiryDate", "format"),
    ("SendLocalList", "request", ".localAuthorizationList[].idTagInfo.parentIdTag", "type"),
    (
        "SendLocalList",
        "request",
        ".localAuthorizationList[].idTagInfo.parentIdTag",
        "maxLength",
    ),
}


def test_the_16_editions_differ_exactly_as_documented() -> None:
    assert SCHEMA_VARIANTS == {"ocpp1.6": ("pre-errata",)}
    assert differences() == EXPECTED


SAMPLE = {"value": "21.5", "measurand": "Temperature"}


def meter_values(**extra: Any) -> dict[str, Any]:
    sample = {**SAMPLE, **extra}
    return {
        "connectorId": 1,
        "meterValue": [{"timestamp": "2024-01-01T00:00:00Z", "sampledValue": [sample]}],
    }


@pytest.mark.parametrize(
    ("action", "direction", "payload", "errata_error"),
    [
        # a vendor key inside sampledValue
        ("MeterValues", "request", meter_values(vendorQuality="good"), RPCFormatViolationError),
        ("MeterValues", "request", meter_values(unit="Celsius"), None),
        (
            "StopTransaction",
            "request",
            {
                "meterStop": 1,
                "timestamp": "2024-01-01T00:00:00Z",
                "transactionId": 1,
                "transactionData": [
                    {
                        "timestamp": "2024-01-01T00:00:00Z",
                        "sampledValue": [{**SAMPLE, "unit": "Celsius"}],
                    }
                ],
            },
            None,
        ),
        (
            "BootNotification",
            "response",
            {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 1.5},
            RPCTypeConstraintViolationError,
        ),
        (
            "SendLocalList",
            "request",
            {
                "listVersion": 1,
                "updateType": "Full",
                "localAuthorizationList": [
                    {"idTag": "A", "idTagInfo": {"status": "Accepted", "expiryDate": "soon"}}
                ],
            },
            RPCPropertyConstraintViolationError,
        ),
    ],
)
def test_payloads_the_editions_judge_differently(
    action: str, direction: Any, payload: dict[str, Any], errata_error: type | None
) -> None:
    errata = get_validator("ocpp1.6")
    earlier = get_validator("ocpp1.6", variant="pre-errata")
    if errata_error is None:
        errata.validate(action, direction, payload)
        with pytest.raises(ValidationError) as info:
            earlier.validate(action, direction, payload)
        assert type(info.value.error) is RPCPropertyConstraintViolationError  # Celsius
    else:
        earlier.validate(action, direction, payload)
        with pytest.raises(ValidationError) as info:
            errata.validate(action, direction, payload)
        assert type(info.value.error) is errata_error


def test_empty_meter_values_pass_both_editions() -> None:
    """Neither OCA edition has the 1..* cardinality of meterValue as minItems."""
    payload = {"connectorId": 1, "meterValue": []}
    get_validator("ocpp1.6").validate("MeterValues", "request", payload)
    get_validator("ocpp1.6", variant="pre-errata").validate("MeterValues", "request", payload)


def test_variants_are_shared_and_named() -> None:
    earlier = get_validator("ocpp1.6", variant="pre-errata")
    assert earlier is get_validator("ocpp1.6", variant="pre-errata")
    assert earlier is not get_validator("ocpp1.6")
    assert (earlier.protocol, earlier.variant, get_validator("ocpp1.6").variant) == (
        "ocpp1.6",
        "pre-errata",
        None,
    )
    assert "pre-errata" in repr(earlier)
    with pytest.raises(ValueError, match="no schema variant 'x'"):
        get_validator("ocpp1.6", variant="x")
    with pytest.raises(ValueError, match="it has none"):
        get_validator("ocpp2.0.1", variant="pre-errata")
