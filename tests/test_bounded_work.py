"""Bounded work per message: what a peer's message may cost is decided before it is spent.

| check, cheapest first     | what is spared                      | seen here through              |
| ------------------------- | ----------------------------------- | ------------------------------ |
| max_message_size (256 KiB)| everything past the transport       | close 1009, ``limit`` event    |
| max_inbound_call_rate     | JSON decoding and validation        | a broken payload over the rate |
|                           |                                     | gets "rate limit", not a       |
|                           |                                     | ``bad_message``                |
| a handler for the action  | validation                          | no ``strict_validation_failure``|
| strict mode               | the handler                         | (tests/test_connection.py)     |
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from ocpp_trio import ConnectionClosed, ConnectionOptions, OCPPConnection, create_validator
from ocpp_trio._rpc.options import DEFAULT_MAX_MESSAGE_SIZE
from ocpp_trio.events import BadMessageEvent, LimitEvent, StrictValidationFailureEvent
from ocpp_trio.testing import open_memory_pair, open_raw_peer

TS = "2024-05-01T12:00:00Z"
NOW = {"currentTime": TS}


def _meter_values(count: int, value: Any = 1) -> dict[str, Any]:
    """A 2.0.1 MeterValues of ``count`` sampled values (each ``{"value": value}``)."""
    return {
        "evseId": 1,
        "meterValue": [{"timestamp": TS, "sampledValue": [{"value": value}] * count}],
    }


class Seen:
    """The events of one connection, by name."""

    def __init__(self, conn: OCPPConnection, *names: str) -> None:
        self.events: dict[str, list[Any]] = {name: [] for name in names}
        for name in names:
            conn.on(name, self.events[name].append)

    def __getitem__(self, name: str) -> list[Any]:
        return self.events[name]


# --- max_message_size: a default that fits OCPP ----------------------------------------


def test_the_default_max_message_size_is_256_kib() -> None:
    assert DEFAULT_MAX_MESSAGE_SIZE == 256 * 1024
    assert ConnectionOptions().max_message_size == 256 * 1024


def _set_charging_profile(schedules: int, periods: int) -> dict[str, Any]:
    """A 2.0.1 SetChargingProfile as large as its schema allows (3 schedules of 1024 periods)."""
    schedule = [
        {
            "id": n,
            "chargingRateUnit": "W",
            "startSchedule": TS,
            "duration": 86400,
            "chargingSchedulePeriod": [
                {"startPeriod": i * 60, "limit": 11000.0 + i % 7, "numberPhases": 3}
                for i in range(periods)
            ],
        }
        for n in range(1, schedules + 1)
    ]
    return {
        "evseId": 1,
        "chargingProfile": {
            "id": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": schedule,
        },
    }


async def test_ocpps_large_messages_fit_under_the_default(autojump_clock: Any) -> None:
    """The largest SetChargingProfile the 2.0.1 schema allows goes through, validated."""
    profile = _set_charging_profile(3, 1024)
    assert 128 * 1024 < len(json.dumps(profile, separators=(",", ":"))) < DEFAULT_MAX_MESSAGE_SIZE
    async with open_memory_pair("ocpp2.0.1", strict_mode=True) as (station, csms):
        station.handle("SetChargingProfile", lambda ctx: {"status": "Accepted"})
        assert await csms.call("SetChargingProfile", profile) == {"status": "Accepted"}


async def test_a_message_over_the_default_closes_1009(autojump_clock: Any) -> None:
    async with open_memory_pair("ocpp2.0.1") as (station, csms):
        csms.handle("DataTransfer", lambda ctx: {"status": "Accepted"})
        limits: list[LimitEvent] = []
        csms.on("limit", limits.append)
        fits = {"vendorId": "V", "data": "x" * (DEFAULT_MAX_MESSAGE_SIZE - 100)}
        assert await station.call("DataTransfer", fits) == {"status": "Accepted"}
        with pytest.raises(ConnectionClosed) as info:
            await station.call("DataTransfer", {"vendorId": "V", "data": "x" * 300_000})
        assert info.value.code == 1009
        await csms.wait_closed()
    assert [(e.limit, e.value) for e in limits] == [("max_message_size", DEFAULT_MAX_MESSAGE_SIZE)]


# --- max_inbound_call_rate: before the JSON is decoded --------------------------------


async def test_a_call_over_the_rate_is_refused_unread(autojump_clock: Any) -> None:
    """Over the rate, a frame whose payload is not even JSON gets "rate limit": it was not read."""
    seen: dict[str, list[Any]] = {}

    def install(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)
        seen.update(Seen(conn, "limit", "bad_message", "call").events)

    async with open_raw_peer(
        "ocpp2.0.1", handler=install, max_inbound_call_rate=1, inbound_call_burst=1
    ) as (peer, conn):
        assert (await peer.call("Heartbeat", {}))[0] == 3
        await peer.send('[2, "over-1", "Heartbeat", {"broken": ')  # not JSON past the head
        reply = await peer.receive_json()
        assert reply == [4, "over-1", "GenericError", "rate limit: at most 1 calls per second", {}]
        assert conn.bad_message_count == 0
        await trio.sleep(1)  # a token back: the same frame is now read, and is bad
        await peer.send('[2, "late-1", "Heartbeat", {"broken": ')
        assert (await peer.receive_json())[:3] == [4, "-1", "RpcFrameworkError"]
    assert [(e.limit, e.method, e.message_id) for e in seen["limit"]] == [
        ("max_inbound_call_rate", "Heartbeat", "over-1")
    ]
    assert len(seen["bad_message"]) == 1  # the second one only
    assert [e.message_id for e in seen["call"]] == ["raw-1"]  # refused unread: no params to show


async def test_a_flood_over_the_rate_is_neither_decoded_nor_validated(autojump_clock: Any) -> None:
    """A flood of big invalid MeterValues costs one validation, not one per message."""
    seen: dict[str, list[Any]] = {}

    def install(conn: OCPPConnection) -> None:
        conn.handle("MeterValues", lambda ctx: {})
        seen.update(Seen(conn, "limit", "strict_validation_failure").events)

    invalid = json.dumps([2, "{id}", "MeterValues", _meter_values(5_000, value="not a number")])
    async with open_raw_peer(
        "ocpp2.0.1",
        handler=install,
        strict_mode=True,
        max_inbound_call_rate=1,
        inbound_call_burst=1,
    ) as (peer, _conn):
        for n in range(20):
            await peer.send(invalid.replace("{id}", f"m{n}", 1))
        replies = [await peer.receive_json() for _ in range(20)]
    assert replies[0][:3] == [4, "m0", "TypeConstraintViolation"]
    assert {tuple(r[:3]) for r in replies[1:]} == {
        (4, f"m{n}", "GenericError") for n in range(1, 20)
    }
    assert len(seen["strict_validation_failure"]) == 1
    assert len(seen["limit"]) == 19


async def test_a_send_over_the_rate_is_dropped_unread(autojump_clock: Any) -> None:
    bad: list[BadMessageEvent] = []
    limits: list[LimitEvent] = []

    def install(conn: OCPPConnection) -> None:
        conn.on("bad_message", bad.append)
        conn.on("limit", limits.append)
        conn.handle("NotifyPeriodicEventStream", lambda ctx: None)

    async with open_raw_peer(
        "ocpp2.1", handler=install, max_inbound_call_rate=1, inbound_call_burst=1
    ) as (peer, _conn):
        payload = {"id": 1, "pending": 0, "basetime": TS, "data": []}
        await peer.send(json.dumps([6, "s1", "NotifyPeriodicEventStream", payload]))
        await peer.send('[6, "s2", "NotifyPeriodicEventStream", {"id": 1, "pending": 0,')
        await peer.expect_silence(0.5)
    assert bad == []  # s2 is not JSON, but it was dropped unread
    assert [(e.limit, e.message_id) for e in limits] == [("max_inbound_call_rate", "s2")]


@pytest.mark.parametrize(
    "frame",
    [
        '[2, "a\\u0062", "Heartbeat", {}]',  # an id with an escape: the head is not read
        '[2.0, "ab", "Heartbeat", {}]',  # 2.0 is 2 to JSON, not to the head's reader
    ],
)
async def test_a_call_the_head_reader_cannot_read_is_still_limited(
    frame: str, autojump_clock: Any
) -> None:
    async with open_raw_peer(
        "ocpp2.0.1",
        handler=lambda c: c.handle("Heartbeat", lambda ctx: NOW),
        max_inbound_call_rate=1,
        inbound_call_burst=1,
    ) as (peer, _conn):
        assert (await peer.call("Heartbeat", {}))[0] == 3
        await peer.send(frame)
        assert (await peer.receive_json())[:3] == [4, "ab", "GenericError"]


async def test_a_call_under_the_rate_takes_one_token_only(autojump_clock: Any) -> None:
    """Charged at the head, a CALL is not charged again once decoded."""
    async with open_raw_peer(
        "ocpp1.6",
        handler=lambda c: c.handle("Heartbeat", lambda ctx: NOW),
        max_inbound_call_rate=1,
        inbound_call_burst=3,
    ) as (peer, _conn):
        assert [(await peer.call("Heartbeat", {}))[0] for _ in range(4)] == [3, 3, 3, 4]


# --- validation only for handled actions ----------------------------------------------------


@pytest.mark.parametrize(
    ("action", "code"), [("MeterValues", "NotSupported"), ("MadeUp", "NotImplemented")]
)
async def test_an_unhandled_action_is_not_validated(
    action: str, code: str, autojump_clock: Any
) -> None:
    failures: list[StrictValidationFailureEvent] = []

    def install(conn: OCPPConnection) -> None:
        conn.on("strict_validation_failure", failures.append)
        conn.handle("Heartbeat", lambda ctx: NOW)

    async with open_raw_peer("ocpp2.0.1", handler=install, strict_mode=True) as (peer, _conn):
        reply = await peer.call(action, _meter_values(5_000, value="not a number"))
    assert reply[:3] == [4, "raw-1", code]
    assert failures == []


async def test_a_custom_validator_sees_only_handled_actions(autojump_clock: Any) -> None:
    """A vendor validator is not asked about an action nobody handles."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    validator = create_validator(
        "vendor.x",
        {action: {"request": schema, "response": schema} for action in ("Ping", "Pong")},
        require_schema=True,
    )
    failures: list[StrictValidationFailureEvent] = []

    def install(conn: OCPPConnection) -> None:
        conn.on("strict_validation_failure", failures.append)
        conn.handle("Ping", lambda ctx: {"n": 1})

    async with open_raw_peer(
        "vendor.x", handler=install, strict_mode=True, strict_mode_validators=[validator]
    ) as (peer, conn):
        assert (await peer.call("Pong", {"n": "x"}))[:3] == [4, "raw-1", "NotSupported"]
        assert (await peer.call("Other", {"n": "x"}))[:3] == [4, "raw-2", "NotImplemented"]
        assert failures == []
        assert (await peer.call("Ping", {"n": "x"}))[:3] == [4, "raw-3", "TypeConstraintViolation"]
        conn.handle(lambda ctx: {"n": 2})  # a wildcard handles everything: all is validated
        assert (await peer.call("Pong", {"n": "x"}))[:3] == [4, "raw-4", "TypeConstraintViolation"]
    assert [e.method for e in failures] == ["Ping", "Pong"]
