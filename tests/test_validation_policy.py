"""The validation policy on live connections: report, ignore, relaxations, per station."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Final

import pytest
import trio
import trio.testing

from ocpp_trio import (
    AuthAccept,
    CallErrorReceived,
    HandlerContext,
    HandshakeRejected,
    HandshakeRequest,
    OCPPConnection,
    PolicyRule,
    ValidationError,
    ValidationPolicy,
    get_validator,
)
from ocpp_trio.events import StrictValidationFailureEvent
from ocpp_trio.testing import open_memory_pair, open_memory_server

from .helpers import Recorder

NOW: Final = "2024-05-01T10:00:00Z"
SLEEPING: Final = {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"}
STRING_ID: Final = {"connectorId": "1", "errorCode": "NoError", "status": "Available"}
#: Valid answers to the session's actions (the others answer {}).
ANSWERS: Final[dict[str, dict[str, Any]]] = {
    "BootNotification": {"status": "Accepted", "currentTime": NOW, "interval": 300},
    "Authorize": {"idTagInfo": {"status": "Accepted"}},
    "StartTransaction": {"idTagInfo": {"status": "Accepted"}, "transactionId": 7},
    "Heartbeat": {"currentTime": NOW},
}
SESSION: Final = Path(__file__).resolve().parent / "corpus" / "sessions" / "sloppy-charger-16.jsonl"


def csms_with(policy: ValidationPolicy | None) -> dict[str, Any]:
    return {"csms_options": {"strict_mode": True, "validation_policy": policy}}


def record_status(csms: OCPPConnection, seen: list[dict[str, Any]]) -> None:
    def status(ctx: HandlerContext) -> dict[str, Any]:
        seen.append(ctx.params)
        return {}

    csms.handle("StatusNotification", status)


async def test_report_delivers_emits_and_counts() -> None:
    policy = ValidationPolicy([PolicyRule("report", action="StatusNotification", rule="enum")])
    seen: list[dict[str, Any]] = []
    async with open_memory_pair("ocpp1.6", **csms_with(policy)) as (station, csms):
        record_status(csms, seen)
        failures = Recorder(csms, "strict_validation_failure")
        assert await station.call("StatusNotification", SLEEPING) == {}
        assert seen == [SLEEPING]
        (event,) = failures["strict_validation_failure"]
        assert isinstance(event, StrictValidationFailureEvent)
        assert event.outcome == "report"
        assert (event.method, event.direction, event.outbound) == (
            "StatusNotification",
            "request",
            False,
        )
        assert isinstance(event.error, ValidationError)
        assert event.error.rule == "enum"
        assert csms.validation_counts == {"report": 1}
        # another rule in the same action is still refused
        with pytest.raises(CallErrorReceived) as info:
            await station.call("StatusNotification", STRING_ID)
        assert info.value.code == "TypeConstraintViolation"
        assert csms.validation_counts == {"report": 1, "reject": 1}
        assert [e.outcome for e in failures["strict_validation_failure"]] == [  # type: ignore[attr-defined]
            "report",
            "reject",
        ]


async def test_ignore_delivers_silently() -> None:
    policy = ValidationPolicy([PolicyRule("ignore", action="StatusNotification")])
    seen: list[dict[str, Any]] = []
    async with open_memory_pair("ocpp1.6", **csms_with(policy)) as (station, csms):
        record_status(csms, seen)
        failures = Recorder(csms, "strict_validation_failure")
        assert await station.call("StatusNotification", SLEEPING) == {}
        assert await station.call("StatusNotification", STRING_ID) == {}
        assert seen == [SLEEPING, STRING_ID]  # as sent: ignore repairs nothing
        assert failures["strict_validation_failure"] == []
        assert csms.validation_counts == {"ignore": 2}


async def test_without_a_policy_failures_are_refused_and_counted() -> None:
    seen: list[dict[str, Any]] = []
    async with open_memory_pair("ocpp1.6", **csms_with(None)) as (station, csms):
        record_status(csms, seen)
        assert csms.validation_counts == {}
        with pytest.raises(CallErrorReceived) as info:
            await station.call("StatusNotification", SLEEPING)
        assert info.value.code == "PropertyConstraintViolation"
        assert seen == []
        assert csms.validation_counts == {"reject": 1}


async def test_relaxations_hand_the_repaired_payload_to_the_handler() -> None:
    policy = ValidationPolicy(relaxations={"numbers_as_strings"})
    seen: list[dict[str, Any]] = []
    async with open_memory_pair("ocpp1.6", **csms_with(policy)) as (station, csms):
        record_status(csms, seen)
        failures = Recorder(csms, "strict_validation_failure")
        assert await station.call("StatusNotification", STRING_ID) == {}
        assert seen == [{**STRING_ID, "connectorId": 1}]
        assert failures["strict_validation_failure"] == []
        assert csms.validation_counts == {"relaxed": 1}


async def test_the_recorded_sloppy_session_with_every_relaxation() -> None:
    """The recorded charger, replayed frame by frame against a relaxed strict CSMS."""
    policy = ValidationPolicy(
        relaxations={
            "numbers_as_strings",
            "unknown_properties",
            "enum_case",
            "timestamps_without_zone",
        }
    )
    entries = [json.loads(line) for line in SESSION.read_text(encoding="utf-8").splitlines()]
    handled: list[str] = []
    async with open_memory_pair("ocpp1.6", csms_options={"strict_mode": True}) as (station, csms):
        csms.reconfigure(validation_policy=policy)

        def any_call(ctx: HandlerContext) -> dict[str, Any]:
            handled.append(ctx.message_id)
            # the handler sees the repaired payload: valid, but for the vendor keys kept
            params = copy.deepcopy(ctx.params)
            for value in params.get("meterValue", ()):
                for sample in value["sampledValue"]:
                    sample.pop("acmeQuality", None)
            get_validator("ocpp1.6").validate(ctx.method, "request", params)
            return ANSWERS.get(ctx.method, {})

        csms.handle(any_call)
        answers = Recorder(station, "message")
        for entry in entries:
            await station.send_raw(entry["frame"])
            await trio.testing.wait_all_tasks_blocked()
        replies = {
            json.loads(e.text)[1]: json.loads(e.text)[0]  # type: ignore[attr-defined]
            for e in answers["message"]
            if not e.outbound  # type: ignore[attr-defined]
        }
    for entry in entries:
        mid = json.loads(entry["frame"])[1]
        assert replies[mid] == (4 if entry["needs"] is None else 3), mid
    assert handled == [json.loads(e["frame"])[1] for e in entries if e["needs"] is not None]
    assert csms.validation_counts == {
        "relaxed": sum(1 for e in entries if e["needs"]),
        "reject": sum(1 for e in entries if e["needs"] is None),
    }


async def test_relaxed_results_are_returned_repaired() -> None:
    policy = ValidationPolicy(relaxations={"numbers_as_strings", "enum_case"})
    async with open_memory_pair(
        "ocpp1.6", station_options={"strict_mode": True, "validation_policy": policy}
    ) as (station, csms):
        csms.handle(
            "BootNotification",
            lambda ctx: {"status": "accepted", "currentTime": NOW, "interval": "300"},
        )
        result = await station.call(
            "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
        )
        assert result == {"status": "Accepted", "currentTime": NOW, "interval": 300}
        assert station.validation_counts == {"relaxed": 1}


async def test_our_own_payloads_are_judged_but_never_repaired() -> None:
    policy = ValidationPolicy(
        [PolicyRule("report", direction="request", action="StatusNotification")],
        relaxations={"numbers_as_strings"},
    )
    async with open_memory_pair(
        "ocpp1.6", station_options={"strict_mode": True, "validation_policy": policy}
    ) as (station, csms):
        got: list[dict[str, Any]] = []
        record_status(csms, got)
        failures = Recorder(station, "strict_validation_failure")
        await station.call("StatusNotification", STRING_ID)  # reported, sent as it is
        assert got == [STRING_ID]
        (event,) = failures["strict_validation_failure"]
        assert isinstance(event, StrictValidationFailureEvent)
        assert (event.outbound, event.outcome) == (True, "report")
        with pytest.raises(ValidationError):  # not repaired: ours, so refused
            await station.call("Authorize", {"idTag": 5})


async def test_reconfigure_changes_the_policy_at_run_time() -> None:
    seen: list[dict[str, Any]] = []
    async with open_memory_pair("ocpp1.6", **csms_with(None)) as (station, csms):
        record_status(csms, seen)
        with pytest.raises(CallErrorReceived):
            await station.call("StatusNotification", SLEEPING)
        csms.reconfigure(validation_policy=ValidationPolicy(default="ignore"))
        assert await station.call("StatusNotification", SLEEPING) == {}
        csms.reconfigure(validation_policy=None)
        with pytest.raises(CallErrorReceived):
            await station.call("StatusNotification", SLEEPING)
        assert csms.validation_counts == {"reject": 2, "ignore": 1}
        with pytest.raises(TypeError, match="validation_policy must be"):
            csms.reconfigure(validation_policy="lenient")


# --- per station, from auth ------------------------------------------------------

VENDOR_SAMPLE: Final = {
    "connectorId": 1,
    "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": "1", "acmeQuality": "good"}]}],
}


def auth_for_old_firmware(request: HandshakeRequest) -> AuthAccept | bool:
    if request.identity == "SLOPPY":
        return AuthAccept(
            options={"validation_policy": ValidationPolicy(relaxations={"numbers_as_strings"})}
        )
    if request.identity == "OLD":
        return AuthAccept(
            options={"strict_mode_validators": [get_validator("ocpp1.6", variant="pre-errata")]}
        )
    return True


async def test_a_policy_set_in_auth_applies_to_that_station_only() -> None:
    seen: dict[str, list[dict[str, Any]]] = {}

    async def on_station(conn: OCPPConnection) -> None:
        def status(ctx: HandlerContext) -> dict[str, Any]:
            seen.setdefault(conn.identity, []).append(ctx.params)
            return {}

        conn.handle("StatusNotification", status)
        conn.handle("MeterValues", lambda ctx: {})
        await conn.wait_closed()

    async with (
        open_memory_server(on_station, strict_mode=True, auth=auth_for_old_firmware) as srv,
        srv.connect("SLOPPY") as sloppy,
        srv.connect("STRICT") as strict,
    ):
        assert await sloppy.call("StatusNotification", STRING_ID) == {}
        with pytest.raises(CallErrorReceived) as info:
            await strict.call("StatusNotification", STRING_ID)
        assert info.value.code == "TypeConstraintViolation"
        assert seen == {"SLOPPY": [{**STRING_ID, "connectorId": 1}]}
        assert srv.clients["SLOPPY"].validation_counts == {"relaxed": 1}
        assert srv.clients["STRICT"].validation_counts == {"reject": 1}
        assert srv.clients["STRICT"].options.validation_policy is None
        assert srv.server.options.validation_policy is None


async def test_the_earlier_16_schemas_for_one_station_from_auth() -> None:
    async def on_station(conn: OCPPConnection) -> None:
        conn.handle("MeterValues", lambda ctx: {})
        await conn.wait_closed()

    async with (
        open_memory_server(on_station, strict_mode=True, auth=auth_for_old_firmware) as srv,
        srv.connect("OLD") as old,
        srv.connect("NEW") as new,
    ):
        assert await old.call("MeterValues", VENDOR_SAMPLE) == {}
        with pytest.raises(CallErrorReceived) as info:
            await new.call("MeterValues", VENDOR_SAMPLE)
        assert info.value.code == "FormationViolation"


async def test_bad_options_from_auth_refuse_the_station() -> None:
    async with open_memory_server(
        None, auth=lambda request: AuthAccept(options={"validation_policy": "lenient"})
    ) as srv:
        with pytest.raises(HandshakeRejected) as info:
            async with srv.connect("CP1"):
                pass  # pragma: no cover
        assert info.value.status_code == 500


async def test_one_rule_of_one_action_relaxed_both_ways() -> None:
    """A 2.0.1 exiResponse over the OCA's 5600 characters (schemas/README.md, edit 5)."""
    long_chain = {"status": "Accepted", "exiResponse": "A" * 7000}
    request = {
        "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
        "action": "Install",
        "exiRequest": "AA==",
    }
    allow = ValidationPolicy(
        [
            PolicyRule(
                "ignore", action="Get15118EVCertificate", direction="response", rule="maxLength"
            )
        ]
    )
    async with open_memory_pair("ocpp2.0.1", strict_mode=True) as (station, csms):
        csms.handle("Get15118EVCertificate", lambda ctx: long_chain)
        with pytest.raises(CallErrorReceived) as info:  # the CSMS refuses its own answer
            await station.call("Get15118EVCertificate", request)
        assert info.value.code == "InternalError"
        csms.reconfigure(validation_policy=allow)
        with pytest.raises(ValidationError) as refused:  # now the station refuses it
            await station.call("Get15118EVCertificate", request)
        assert refused.value.rule == "maxLength"
        station.reconfigure(validation_policy=allow)
        assert await station.call("Get15118EVCertificate", request) == long_chain
        assert csms.validation_counts == {"reject": 1, "ignore": 2}
        assert station.validation_counts == {"reject": 1, "ignore": 1}
