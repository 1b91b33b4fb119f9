"""The validation policy in the sans-IO core: outcomes per rule, and the relaxations.

The relaxations are checked against a recorded session of a sloppy OCPP 1.6
charger (``tests/corpus/sessions/sloppy-charger-16.jsonl``): each frame notes
the relaxations it needs (none, one, two, or ``null`` when nothing may make it
pass), and for every one of the 16 combinations of relaxations a frame must
pass exactly when the combination holds all it needs.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocpp_trio._core.errors import ValidationError
from ocpp_trio._core.policy import (
    MAX_REPAIRS,
    RELAXATIONS,
    PolicyRule,
    Relaxation,
    ValidationPolicy,
    Verdict,
)
from ocpp_trio._core.protocol import CallReceived, Role, RPCProtocol
from ocpp_trio._core.validation import Validator, create_validator, get_validator, load_schemas
from ocpp_trio.testing.strategies import invalid_payloads

SESSION: Final = Path(__file__).resolve().parents[1] / "corpus" / "sessions"
SLOPPY: Final = [
    json.loads(line)
    for line in (SESSION / "sloppy-charger-16.jsonl").read_text(encoding="utf-8").splitlines()
]
V16: Final = get_validator("ocpp1.6")
ALL_SUBSETS: Final = [
    frozenset(c)
    for n in range(len(RELAXATIONS) + 1)
    for c in itertools.combinations(sorted(RELAXATIONS), n)
]


def judge(
    policy: ValidationPolicy,
    action: str,
    payload: dict[str, Any],
    *,
    direction: Any = "request",
    validator: Validator = V16,
    inbound: bool = True,
) -> Verdict | None:
    """None when the payload passes as it is, else the policy's verdict."""
    try:
        validator.validate(action, direction, payload)
    except ValidationError as exc:
        return policy.judge(validator, action, direction, payload, exc, inbound=inbound)
    return None


def received(text: str) -> CallReceived:
    event = RPCProtocol(protocol="ocpp1.6", role=Role.SERVER).receive(text)
    assert isinstance(event, CallReceived)
    return event


def test_the_session_covers_every_relaxation() -> None:
    needed = {r for entry in SLOPPY for r in entry["needs"] or ()}
    assert needed == RELAXATIONS
    assert any(entry["needs"] is None for entry in SLOPPY)
    assert any(entry["needs"] == [] for entry in SLOPPY)


@pytest.mark.parametrize("relaxations", ALL_SUBSETS, ids=lambda s: "+".join(sorted(s)) or "none")
@pytest.mark.parametrize("entry", SLOPPY, ids=lambda e: json.loads(e["frame"])[1])
def test_each_relaxation_passes_exactly_its_own_case(
    relaxations: frozenset[Relaxation], entry: dict[str, Any]
) -> None:
    call = received(entry["frame"])
    policy = ValidationPolicy(relaxations=relaxations)
    verdict = judge(policy, call.action, call.payload)
    needs = entry["needs"]
    if needs == []:
        assert verdict is None  # valid as sent
        return
    assert verdict is not None
    should_pass = needs is not None and set(needs) <= relaxations
    assert (verdict.outcome == "relaxed") is should_pass
    if not should_pass:
        assert verdict.outcome == "reject"
        assert verdict.payload is None
        return
    assert verdict.payload is not None
    if "unknown_properties" in needs:
        # the vendor keys stay in what is delivered; nothing else is left to repair
        again = judge(
            ValidationPolicy(relaxations={"unknown_properties"}), call.action, verdict.payload
        )
        assert again is not None
        assert again.outcome == "relaxed"
    else:
        V16.validate(call.action, "request", verdict.payload)


def test_repairs_deliver_what_the_schema_says() -> None:
    everything = ValidationPolicy(relaxations=RELAXATIONS)
    by_id = {json.loads(e["frame"])[1]: received(e["frame"]) for e in SLOPPY}

    def repaired(mid: str) -> dict[str, Any]:
        call = by_id[mid]
        verdict = judge(everything, call.action, call.payload)
        assert verdict is not None
        assert verdict.payload is not None
        assert verdict.payload is not call.payload  # the original is never changed
        return verdict.payload

    assert repaired("s1")["connectorId"] == 1
    assert type(repaired("s1")["connectorId"]) is int
    assert repaired("s2")["status"] == "Available"
    assert repaired("s3") == {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
    assert repaired("t1")["timestamp"] == "2024-05-01T10:00:00Z"
    sample = repaired("m1")["meterValue"][0]["sampledValue"][0]
    assert sample["acmeQuality"] == "good"  # the vendor key is kept
    assert (repaired("m2")["connectorId"], repaired("m2")["transactionId"]) == (1, 7)
    assert repaired("x1")["reason"] == "Local"
    assert by_id["s1"].payload["connectorId"] == "1"


def test_numbers_as_strings_keeps_integers_integral() -> None:
    policy = ValidationPolicy(relaxations={"numbers_as_strings"})
    profile = {
        "chargingProfileId": "1",
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": "16.5"}],
        },
    }
    verdict = judge(policy, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile})
    assert verdict is not None
    assert verdict.payload is not None
    got = verdict.payload["csChargingProfiles"]
    assert got["chargingProfileId"] == 1
    assert got["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 16.5
    for text in ("1e400", "0x10", " 1", "1 ", "+1", "01", "NaN", ""):
        payload = {"connectorId": text, "errorCode": "NoError", "status": "Available"}
        verdict = judge(policy, "StatusNotification", payload)
        assert verdict is not None, text
        assert verdict.outcome == "reject", text


def test_enum_case_needs_one_match() -> None:
    enum_schema = {
        "$schema": "http://json-schema.org/draft-06/schema#",
        "type": "object",
        "properties": {"mode": {"type": "string", "enum": ["On", "ON", "Off"]}},
    }
    validator = create_validator("vendor", {("Set", "request"): enum_schema})
    policy = ValidationPolicy(relaxations={"enum_case"})
    ambiguous = judge(policy, "Set", {"mode": "on"}, validator=validator)
    assert ambiguous is not None
    assert ambiguous.outcome == "reject"
    clear = judge(policy, "Set", {"mode": "OFF"}, validator=validator)
    assert clear is not None
    assert clear.payload == {"mode": "Off"}


def test_relaxations_leave_our_own_payloads_alone() -> None:
    policy = ValidationPolicy(relaxations=RELAXATIONS)
    payload = {"connectorId": "1", "errorCode": "NoError", "status": "Available"}
    verdict = judge(policy, "StatusNotification", payload, inbound=False)
    assert verdict is not None
    assert verdict.outcome == "reject"


def test_repairs_are_bounded() -> None:
    policy = ValidationPolicy(relaxations={"numbers_as_strings"})
    many = [{"timestamp": "2024-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}]
    payload: dict[str, Any] = {"connectorId": "1", "transactionId": "2", "meterValue": many}
    assert judge(policy, "MeterValues", payload) is not None
    listing = {
        "listVersion": "1",
        "updateType": "Full",
        "localAuthorizationList": [
            {"idTag": f"T{i}", "idTagInfo": {"status": "Accepted", "expiryDate": "x"}}
            for i in range(3)
        ],
    }
    verdict = judge(policy, "SendLocalList", listing)
    assert verdict is not None
    assert verdict.outcome == "reject"
    assert verdict.error.rule == "format"  # the failure that remains is judged
    # one repair per string number, at most MAX_REPAIRS
    periods = [{"startPeriod": str(i), "limit": 6} for i in range(MAX_REPAIRS + 1)]
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": periods}
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": schedule,
    }
    request = {"connectorId": 1, "csChargingProfiles": profile}
    verdict = judge(policy, "SetChargingProfile", request)
    assert verdict is not None
    assert verdict.outcome == "reject"
    periods.pop()
    verdict = judge(policy, "SetChargingProfile", request)
    assert verdict is not None
    assert verdict.outcome == "relaxed"


# --- outcomes ----------------------------------------------------------------------

BAD_STATUS: Final = {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"}


def test_without_rules_everything_is_rejected() -> None:
    verdict = judge(ValidationPolicy(), "StatusNotification", BAD_STATUS)
    assert verdict is not None
    assert verdict.outcome == "reject"
    assert verdict.error.rule == "enum"


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([PolicyRule("report")], "report"),
        ([PolicyRule("ignore", action="StatusNotification")], "ignore"),
        ([PolicyRule("ignore", action="MeterValues")], "reject"),
        ([PolicyRule("ignore", rule="enum")], "ignore"),
        ([PolicyRule("ignore", rule="type")], "reject"),
        ([PolicyRule("ignore", direction="response")], "reject"),
        ([PolicyRule("ignore", protocol="ocpp2.0.1")], "reject"),
        # the most specific line wins, whatever the order
        ([PolicyRule("ignore"), PolicyRule("report", action="StatusNotification")], "report"),
        ([PolicyRule("report", action="StatusNotification"), PolicyRule("ignore")], "report"),
        (
            [
                PolicyRule("report", action="StatusNotification"),
                PolicyRule("reject", action="StatusNotification", rule="enum"),
            ],
            "reject",
        ),
        # equally specific: the later line wins
        (
            [PolicyRule("report", rule="enum"), PolicyRule("ignore", action="StatusNotification")],
            "ignore",
        ),
        (
            [
                PolicyRule(
                    "ignore",
                    protocol="ocpp1.6",
                    action="StatusNotification",
                    direction="request",
                    rule="enum",
                )
            ],
            "ignore",
        ),
    ],
)
def test_the_most_specific_line_decides(rules: list[PolicyRule], expected: str) -> None:
    verdict = judge(ValidationPolicy(rules), "StatusNotification", BAD_STATUS)
    assert verdict is not None
    assert verdict.outcome == expected
    assert verdict.payload is None


def test_default_outcome() -> None:
    policy = ValidationPolicy([PolicyRule("reject", action="Authorize")], default="report")
    assert policy.outcome("ocpp1.6", "StatusNotification", "request", "enum") == "report"
    assert policy.outcome("ocpp1.6", "Authorize", "request", "enum") == "reject"
    # a failure without a rule (require_schema) is matched by "*" only
    assert policy.outcome("ocpp1.6", "Nope", "request", None) == "report"


def test_a_relaxation_that_does_not_cover_the_failure_leaves_it_to_the_rules() -> None:
    policy = ValidationPolicy(
        [PolicyRule("report", rule="enum")], relaxations={"numbers_as_strings"}
    )
    payload = {"connectorId": "1", "errorCode": "NoError", "status": "Sleeping"}
    verdict = judge(policy, "StatusNotification", payload)
    assert verdict is not None
    assert verdict.outcome == "report"
    assert verdict.error.rule == "enum"  # the failure left after the repair


def test_policies_are_values() -> None:
    a = ValidationPolicy([PolicyRule("report")], relaxations=["enum_case"])
    b = ValidationPolicy((PolicyRule("report"),), relaxations={"enum_case"})
    a.outcome("ocpp1.6", "X", "request", "enum")  # fills a's memo only
    assert a == b
    assert hash(a) == hash(b)
    assert a != ValidationPolicy([PolicyRule("ignore")], relaxations=["enum_case"])


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="outcome must be one of"):
        PolicyRule("allow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction"):
        PolicyRule("report", direction="in")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="action must be"):
        PolicyRule("report", action="")
    with pytest.raises(ValueError, match="unknown relaxation"):
        ValidationPolicy(relaxations={"be_nice"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a string"):
        ValidationPolicy(relaxations="enum_case")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default must be"):
        ValidationPolicy(default="allow")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PolicyRule"):
        ValidationPolicy([("report",)])  # type: ignore[list-item]


# --- properties over every 1.6 action ------------------------------------------------


KEYS_16: Final = sorted(load_schemas("ocpp1.6"))
EVERY: Final = ValidationPolicy(relaxations=RELAXATIONS)
ONLY_UNKNOWN: Final = ValidationPolicy(relaxations={"unknown_properties"})


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from(KEYS_16).flatmap(
        lambda key: st.tuples(st.just(key), invalid_payloads("ocpp1.6", *key))
    )
)
def test_judging_never_changes_the_payload_and_repairs_are_valid(
    drawn: tuple[tuple[str, Any], tuple[Any, type]],
) -> None:
    (action, direction), (payload, _) = drawn
    before = json.dumps(payload, sort_keys=True, default=repr)
    verdict = judge(EVERY, action, payload, direction=direction)
    assert verdict is not None  # an invalid payload
    assert json.dumps(payload, sort_keys=True, default=repr) == before
    if verdict.outcome == "relaxed":
        assert verdict.payload is not None
        again = judge(ONLY_UNKNOWN, action, verdict.payload, direction=direction)
        assert again is None or again.outcome == "relaxed"
    else:
        assert verdict.outcome == "reject"
        assert verdict.payload is None
