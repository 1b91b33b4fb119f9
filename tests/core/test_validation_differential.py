"""Differential test: our validator against the ``jsonschema`` reference.

For every action of every built-in protocol, in both directions, payloads
drawn by :mod:`ocpp_trio.testing._strategies` must be judged the same way by
``ocpp_trio._core.validation`` (fastjsonschema, adapted schemas) and by
``jsonschema`` (``Draft4Validator`` / ``Draft6Validator`` as the file's
``$schema`` says, run on the *unadapted* OCA file), with the default sets and
with OCPP 1.6's earlier files (the ``"pre-errata"`` variant):

* a valid payload passes both;
* a payload breaking one rule fails both, ours with exactly the claimed error
  class, and the reference reports a failing keyword of that class.

Deliberate differences, each pinned by a test at the end of this module:

1. Formats.  jsonschema asserts ``format`` only with a ``FormatChecker`` and
   only for the formats whose optional packages are installed (``date-time``
   needs ``rfc3339-validator``, ``uri`` needs ``rfc3987``; neither is a
   dependency here).  We assert RFC 3339 ``date-time`` and ``uri``, so the
   reference is given a ``FormatChecker`` with checkers written here from the
   RFCs' grammar (``date-time``) or by ``rfc3986-validator`` (``uri``, the
   checker jsonschema uses when it is installed), independently of ours.  fastjsonschema's built-in
   ``date-time`` pattern also accepts ``+hhmm`` offsets; ours does not.
2. ``multipleOf``.  jsonschema divides binary floats, so it rejects ``0.7``
   as a multiple of ``0.1``; we (through fastjsonschema) divide
   ``Decimal(repr(x))`` and accept it.  The reference therefore sees schema
   and payload parsed with ``parse_float=Decimal``, as an OCPP peer that
   keeps the wire's decimal spelling would.
"""

from __future__ import annotations

import calendar
import json
import re
from decimal import Decimal
from typing import Any

import fastjsonschema
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from rfc3986_validator import validate_rfc3986

from ocpp_trio._core.errors import (
    RPCError,
    RPCFormatViolationError,
    RPCPropertyConstraintViolationError,
    ValidationError,
)
from ocpp_trio._core.validation import (
    RULE_ERRORS,
    SCHEMA_VARIANTS,
    SUPPORTED_PROTOCOLS,
    get_validator,
    load_schemas,
)
from ocpp_trio.testing._strategies import invalid_payloads, payloads

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)


def reference_date_time(value: object) -> bool:
    """RFC 3339 §5.6 ``date-time``, written from the ABNF and §5.7's restrictions."""
    if not isinstance(value, str):
        return True
    m = _RFC3339.fullmatch(value)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not 1 <= month <= 12:
        return False
    days = [31, 29 if calendar.isleap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not 1 <= day <= days[month - 1]:
        return False
    if hour > 23 or minute > 59 or second > 60:
        return False
    off_h, off_m = m.group(7), m.group(8)
    return off_h is None or (int(off_h) <= 23 and int(off_m) <= 59)


def reference_uri(value: object) -> bool:
    """RFC 3986 §3 ``URI``, by ``rfc3986-validator`` (what jsonschema itself uses for ``uri``)."""
    if not isinstance(value, str):
        return True
    # Its pattern ends in `$`, which also matches before a final newline.
    return not value.endswith("\n") and bool(validate_rfc3986(value, rule="URI"))


FORMAT_CHECKER = jsonschema.FormatChecker()
FORMAT_CHECKER.checks("date-time")(reference_date_time)
FORMAT_CHECKER.checks("uri")(reference_uri)

KEYS = [
    pytest.param(protocol, None, action, direction, id=f"{protocol}-{action}-{direction}")
    for protocol in SUPPORTED_PROTOCOLS
    for (action, direction) in sorted(load_schemas(protocol, raw=True))
] + [
    pytest.param(
        protocol, variant, action, direction, id=f"{protocol}-{variant}-{action}-{direction}"
    )
    for protocol, variants in SCHEMA_VARIANTS.items()
    for variant in variants
    for (action, direction) in sorted(load_schemas(protocol, raw=True, variant=variant))
]

_REFERENCE: dict[tuple[str, str | None, str, str], Any] = {}


def reference(protocol: str, action: str, direction: str, variant: str | None = None) -> Any:
    key = (protocol, variant, action, direction)
    if key not in _REFERENCE:
        raw = load_schemas(protocol, raw=True, variant=variant)[(action, direction)]
        schema = json.loads(json.dumps(raw), parse_float=Decimal)
        cls = jsonschema.validators.validator_for(schema)
        expected = {
            "http://json-schema.org/draft-04/schema#": jsonschema.Draft4Validator,
            "http://json-schema.org/draft-06/schema#": jsonschema.Draft6Validator,
        }[schema["$schema"]]
        assert cls is expected
        _REFERENCE[key] = cls(schema, format_checker=FORMAT_CHECKER)
    return _REFERENCE[key]


def as_decimal(payload: Any) -> Any:
    return json.loads(json.dumps(payload), parse_float=Decimal)


def reference_classes(errors: list[jsonschema.ValidationError]) -> set[type[RPCError]]:
    """The error classes our mapping gives to the reference's failing keywords."""
    out: set[type[RPCError]] = set()
    for error in errors:
        if error.validator == "type" and not error.absolute_path:
            out.add(RPCFormatViolationError)
        else:
            out.add(RULE_ERRORS.get(str(error.validator), RPCFormatViolationError))
    return out


@pytest.mark.parametrize(("protocol", "variant", "action", "direction"), KEYS)
def test_agrees_with_jsonschema(
    protocol: str, variant: str | None, action: str, direction: Any
) -> None:
    ours = get_validator(protocol, variant=variant)
    ref = reference(protocol, action, direction, variant)

    @settings(
        max_examples=5,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        payloads(protocol, action, direction, variant=variant),
        invalid_payloads(protocol, action, direction, variant=variant),
    )
    def check(valid: Any, broken: tuple[Any, type[RPCError]]) -> None:
        ours.validate(action, direction, valid)
        assert list(ref.iter_errors(as_decimal(valid))) == []

        payload, expected = broken
        with pytest.raises(ValidationError) as info:
            ours.validate(action, direction, payload)
        assert type(info.value.error) is expected
        errors = list(ref.iter_errors(as_decimal(payload)))
        assert errors, "the reference accepted a payload we reject"
        assert expected in reference_classes(errors)

    check()


def test_every_file_is_covered() -> None:
    # the three default sets, and OCPP 1.6's earlier files ("pre-errata")
    assert len(KEYS) == 78 + 128 + 181 + 78


# --- the deliberate differences -------------------------------------------------


def test_date_time_offset_without_colon() -> None:
    """``+hhmm`` is not RFC 3339: we reject it, fastjsonschema's default accepts it."""
    schema = {"$schema": "http://json-schema.org/draft-06/schema#", "type": "string"}
    schema["format"] = "date-time"
    value = "2024-01-01T10:00:00+0100"
    fastjsonschema.compile(schema)(value)  # fastjsonschema's own pattern: accepted
    assert not reference_date_time(value)
    with pytest.raises(ValidationError) as info:
        get_validator("ocpp1.6").validate(
            "Authorize", "response", {"idTagInfo": {"status": "Accepted", "expiryDate": value}}
        )
    assert isinstance(info.value.error, RPCPropertyConstraintViolationError)


def test_jsonschema_without_format_checker_ignores_date_time() -> None:
    raw = load_schemas("ocpp1.6", raw=True)[("Authorize", "response")]
    payload = {"idTagInfo": {"status": "Accepted", "expiryDate": "tomorrow"}}
    jsonschema.Draft4Validator(raw).validate(payload)  # no FormatChecker: accepted
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(raw, format_checker=FORMAT_CHECKER).validate(payload)
    with pytest.raises(ValidationError):
        get_validator("ocpp1.6").validate("Authorize", "response", payload)


def test_multiple_of_is_decimal_exact() -> None:
    """0.7 is a multiple of 0.1: jsonschema on floats disagrees, on Decimals agrees."""
    raw = load_schemas("ocpp1.6", raw=True)[("SetChargingProfile", "request")]
    payload = {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 0.7}],
            },
        },
    }
    get_validator("ocpp1.6").validate("SetChargingProfile", "request", payload)
    # float division: 0.7 / 0.1 == 6.999999999999999
    assert list(jsonschema.Draft4Validator(raw).iter_errors(payload))
    ref = reference("ocpp1.6", "SetChargingProfile", "request")
    assert list(ref.iter_errors(as_decimal(payload))) == []
