"""The Trio connection runtime over in-memory pairs, in virtual time."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import trio
import trio.testing

from ocpp_trio import (
    NOREPLY,
    CallErrorReceived,
    CallTimeout,
    ConnectionClosed,
    ConnectionState,
    HandlerContext,
    MalformedResponseError,
    ProtocolMismatchError,
    ProtocolStateError,
    RPCFormationViolationError,
    RPCGenericError,
    RPCPropertyConstraintViolationError,
    ValidationError,
)
from ocpp_trio.events import (
    BadMessageEvent,
    CallErrorEvent,
    CallResultErrorEvent,
    CloseEvent,
    ErrorEvent,
    LateResponseEvent,
    MessageEvent,
    PingEvent,
    StrictValidationFailureEvent,
)
from ocpp_trio.testing import open_memory_pair

from .helpers import Recorder, freezable_stream_pair

BOOT_16 = {"chargePointVendor": "V", "chargePointModel": "M"}
BOOT_16_RESULT = {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 30}
NOW = {"currentTime": "2024-01-01T00:00:00Z"}


async def test_call_returns_the_result_and_the_handler_sees_its_context() -> None:
    seen: list[HandlerContext] = []
    async with open_memory_pair("ocpp1.6", identity="CP-7") as (station, csms):

        @csms.handle("BootNotification")
        def boot(ctx: HandlerContext) -> dict[str, Any]:
            seen.append(ctx)
            return BOOT_16_RESULT

        assert await station.call("BootNotification", BOOT_16) == BOOT_16_RESULT
        assert await station.call("ocpp1.6", "BootNotification", BOOT_16) == BOOT_16_RESULT
    ctx = seen[0]
    assert (ctx.params, ctx.protocol, ctx.method, ctx.identity) == (
        BOOT_16,
        "ocpp1.6",
        "BootNotification",
        "CP-7",
    )
    assert ctx.connection is csms
    assert isinstance(ctx.message_id, str)
    assert len(ctx.message_id) == 36


async def test_async_handlers_both_directions() -> None:
    async with open_memory_pair("ocpp2.0.1") as (station, csms):

        @station.handle("Reset")
        async def reset(ctx: HandlerContext) -> dict[str, Any]:
            await trio.sleep(1)
            return {"status": "Accepted"}

        assert await csms.call("Reset", {"type": "Immediate"}) == {"status": "Accepted"}


async def test_call_with_another_protocol_is_refused() -> None:
    async with open_memory_pair("ocpp1.6") as (station, _csms):
        with pytest.raises(ProtocolMismatchError, match=r"ocpp2\.0\.1.*ocpp1\.6"):
            await station.call("ocpp2.0.1", "Heartbeat", {})
        assert station.pending_calls == 0


@pytest.mark.parametrize("args", [(), ("A", {}, {}, {}), (1, {}), ("A", [])])
async def test_call_argument_errors(args: tuple[Any, ...]) -> None:
    async with open_memory_pair() as (station, _csms):
        with pytest.raises(TypeError):
            await station.call(*args)


async def test_call_timeout_is_exact_and_the_late_answer_is_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_pair("ocpp1.6", call_timeout=5) as (station, csms):
        late = Recorder(station, "late_response")

        @csms.handle("Heartbeat")
        async def slow(ctx: HandlerContext) -> dict[str, Any]:
            await trio.sleep(8)
            return NOW

        start = trio.current_time()
        with pytest.raises(CallTimeout, match="Heartbeat"):
            await station.call("Heartbeat", {})
        assert trio.current_time() - start == 5
        assert station.pending_calls == 0
        await trio.sleep(4)
        (event,) = late["late_response"]
        assert isinstance(event, LateResponseEvent)
        assert event.method == "Heartbeat"
        # A per-call timeout overrides call_timeout.
        start = trio.current_time()
        with pytest.raises(CallTimeout):
            await station.call("Heartbeat", {}, timeout=2)
        assert trio.current_time() - start == 2
        assert station.bad_message_count == 0


async def test_call_concurrency_one_is_fifo(autojump_clock: trio.testing.MockClock) -> None:
    order: list[int] = []
    in_flight = 0
    max_in_flight = 0
    async with open_memory_pair("ocpp1.6") as (station, csms):

        @csms.handle("DataTransfer")
        async def dt(ctx: HandlerContext) -> dict[str, Any]:
            nonlocal in_flight, max_in_flight
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)
            order.append(int(ctx.params["vendorId"]))
            await trio.sleep(1)
            in_flight -= 1
            return {"status": "Accepted"}

        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(station.call, "DataTransfer", {"vendorId": str(i)})
                await trio.testing.wait_all_tasks_blocked()
        assert order == [0, 1, 2, 3, 4]
        assert max_in_flight == 1
        assert trio.current_time() == pytest.approx(5)

        station.reconfigure(call_concurrency=3)
        order.clear()
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(station.call, "DataTransfer", {"vendorId": str(i)})
                await trio.testing.wait_all_tasks_blocked()
        assert max_in_flight == 3
        assert trio.current_time() - start == pytest.approx(2)


async def test_call_error_carries_code_description_details() -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):

        @csms.handle("Authorize")
        def authorize(ctx: HandlerContext) -> dict[str, Any]:
            raise RPCPropertyConstraintViolationError("idTag unknown", {"idTag": "X"})

        with pytest.raises(CallErrorReceived) as info:
            await station.call("Authorize", {"idTag": "X"})
    err = info.value
    assert (err.code, err.description, err.details, err.action) == (
        "PropertyConstraintViolation",
        "idTag unknown",
        {"idTag": "X"},
        "Authorize",
    )
    assert isinstance(err.error, RPCPropertyConstraintViolationError)


@pytest.mark.parametrize("detailed", [False, True])
async def test_handler_crash_is_an_internal_error(detailed: bool) -> None:
    async with open_memory_pair("ocpp2.0.1", respond_with_detailed_errors=detailed) as (
        station,
        csms,
    ):
        errors = Recorder(csms, "error")

        @csms.handle("Heartbeat")
        async def broken(ctx: HandlerContext) -> dict[str, Any]:
            raise KeyError("secret-internal-detail")

        with pytest.raises(CallErrorReceived) as info:
            await station.call("Heartbeat", {})
        assert info.value.code == "InternalError"
        assert "secret-internal-detail" not in info.value.description
        if detailed:
            assert info.value.details["type"] == "KeyError"
        else:
            assert info.value.details == {}
        assert len(errors["error"]) == 1
        # The connection carries on.
        csms.handle("Heartbeat", lambda ctx: NOW)
        assert await station.call("Heartbeat", {}) == NOW


async def test_handler_returning_garbage_or_none() -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):
        csms.handle("Heartbeat", lambda ctx: ["not", "a", "dict"])
        csms.handle("StatusNotification", lambda ctx: None)
        csms.handle("DataTransfer", lambda ctx: {"x": math.nan})
        with pytest.raises(CallErrorReceived, match="InternalError"):
            await station.call("Heartbeat", {})
        assert await station.call("StatusNotification", {}) == {}
        with pytest.raises(CallErrorReceived, match="InternalError"):
            await station.call("DataTransfer", {"vendorId": "v"})


LONE = "\ud800"  # a lone surrogate: a Python str, but no Unicode text; UTF-8 cannot carry it


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"])
async def test_a_result_with_a_lone_surrogate_is_an_internal_error(protocol: str) -> None:
    async with open_memory_pair(protocol) as (station, csms):
        errors = Recorder(csms, "error")
        csms.handle("DataTransfer", lambda ctx: {"status": "Accepted", "data": f"a{LONE}"})
        with pytest.raises(CallErrorReceived) as info:
            await station.call("DataTransfer", {"vendorId": "v"})
        reason = (
            "payload.data holds an unpaired UTF-16 surrogate, which cannot be sent as UTF-8 text"
        )
        assert (info.value.code, info.value.details) == ("InternalError", {"reason": reason})
        [event] = errors["error"]
        assert isinstance(event, ErrorEvent)
        assert isinstance(event.error, ValueError)
        assert str(event.error) == reason
        assert event.context == "result of the handler for DataTransfer"
        # The connection carries on.
        assert (station.state, csms.state) == (ConnectionState.OPEN, ConnectionState.OPEN)
        csms.handle("DataTransfer", lambda ctx: {"status": "Accepted"})
        assert await station.call("DataTransfer", {"vendorId": "v"}) == {"status": "Accepted"}


@pytest.mark.parametrize(
    ("error", "detailed", "where"),
    [
        (RPCPropertyConstraintViolationError(f"bad {LONE}"), False, "errorDescription"),
        (RPCPropertyConstraintViolationError("bad", {"value": LONE}), False, "errorDetails.value"),
        (ValueError(LONE), True, "errorDetails.message"),
    ],
)
async def test_an_error_answer_with_a_lone_surrogate_is_an_internal_error(
    error: Exception, detailed: bool, where: str
) -> None:
    async with open_memory_pair("ocpp1.6", respond_with_detailed_errors=detailed) as (
        station,
        csms,
    ):
        errors = Recorder(csms, "error")
        sent = Recorder(csms, "call_error")

        @csms.handle("DataTransfer")
        async def failing(ctx: HandlerContext) -> dict[str, Any]:
            raise error

        with pytest.raises(CallErrorReceived) as info:
            await station.call("DataTransfer", {"vendorId": "v"})
        assert info.value.code == "InternalError"
        assert info.value.description == "the error answer to DataTransfer cannot be sent"
        assert info.value.details["reason"].startswith(f"{where} holds an unpaired")
        unsendable = [e for e in errors["error"] if isinstance(e, ErrorEvent)]
        assert unsendable[-1].context == "error answer to DataTransfer"
        assert [e.code for e in sent["call_error"]] == ["InternalError"]  # type: ignore[attr-defined]
        csms.handle("DataTransfer", lambda ctx: {"status": "Accepted"})
        assert await station.call("DataTransfer", {"vendorId": "v"}) == {"status": "Accepted"}


async def test_call_params_with_a_lone_surrogate_raise_to_the_caller() -> None:
    async with open_memory_pair("ocpp2.1") as (station, csms):
        csms.handle("DataTransfer", lambda ctx: {"status": "Accepted"})
        messages = Recorder(station, "message")
        with pytest.raises(ValueError, match=r"^payload\.vendorId holds an unpaired UTF-16"):
            await station.call("DataTransfer", {"vendorId": LONE})
        with pytest.raises(ValueError, match=r"^payload\.data\[0\] holds an unpaired UTF-16"):
            await station.send("NotifyPeriodicEventStream", {"data": [LONE]})
        with pytest.raises(ValueError, match=r"^payload\.vendorId holds an unpaired UTF-16"):
            await csms.call("DataTransfer", {"vendorId": LONE})
        assert messages["message"] == []  # nothing was written
        assert (station.pending_calls, station.state) == (0, ConnectionState.OPEN)
        assert await station.call("DataTransfer", {"vendorId": "v"}) == {"status": "Accepted"}


async def test_noreply_sends_nothing(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_pair("ocpp1.6", call_timeout=3) as (station, csms):
        csms.handle("Heartbeat", lambda ctx: NOREPLY)
        with pytest.raises(CallTimeout):
            await station.call("Heartbeat", {})


async def test_dispatch_order_and_missing_handlers() -> None:
    async with open_memory_pair("ocpp2.0.1") as (station, csms):
        csms.handle(lambda ctx: {"who": "wildcard"})
        csms.handle("Heartbeat", lambda ctx: {"who": "generic"})
        csms.handle("ocpp2.0.1", "Heartbeat", lambda ctx: {"who": "specific"})
        csms.handle("ocpp1.6", "Authorize", lambda ctx: {"who": "other-version"})
        assert await station.call("Heartbeat", {}) == {"who": "specific"}
        assert csms.remove_handler("ocpp2.0.1", "Heartbeat")
        assert await station.call("Heartbeat", {}) == {"who": "generic"}
        assert csms.remove_handler("Heartbeat")
        assert await station.call("Heartbeat", {}) == {"who": "wildcard"}
        assert await station.call("Authorize", {}) == {"who": "wildcard"}
        assert csms.remove_handler()
        assert not csms.remove_handler()
        with pytest.raises(CallErrorReceived) as info:
            await station.call("Authorize", {"idToken": {"idToken": "1", "type": "Central"}})
        assert info.value.code == "NotSupported"
        with pytest.raises(CallErrorReceived) as info:
            await station.call("MadeUpAction", {})
        assert info.value.code == "NotImplemented"
        csms.handle("Heartbeat", lambda ctx: NOW)
        csms.remove_all_handlers()
        with pytest.raises(CallErrorReceived, match="NotSupported"):
            await station.call("Heartbeat", {})


async def test_decorator_forms_register() -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):

        @csms.handle("ocpp1.6", "Heartbeat")
        def hb(ctx: HandlerContext) -> dict[str, Any]:
            return NOW

        @csms.handle()
        def anything(ctx: HandlerContext) -> dict[str, Any]:
            return {"method": ctx.method}

        assert await station.call("Heartbeat", {}) == NOW
        assert await station.call("Foo", {}) == {"method": "Foo"}
        with pytest.raises(TypeError):
            csms.handle("ocpp1.6", "Heartbeat", "not callable")  # type: ignore[call-overload]


async def test_strict_mode_outbound_request_is_refused_before_sending() -> None:
    async with open_memory_pair("ocpp1.6", strict_mode=True) as (station, csms):
        calls = Recorder(csms, "call")
        failures = Recorder(station, "strict_validation_failure")
        with pytest.raises(ValidationError) as info:
            await station.call("BootNotification", {"chargePointVendor": "V"})
        assert info.value.error.code == "OccurrenceConstraintViolation"
        assert calls["call"] == []
        (event,) = failures["strict_validation_failure"]
        assert isinstance(event, StrictValidationFailureEvent)
        assert (event.method, event.direction, event.outbound) == (
            "BootNotification",
            "request",
            True,
        )


@pytest.mark.parametrize(
    ("protocol", "payload", "code"),
    [
        ("ocpp1.6", {"chargePointVendor": "V"}, "OccurenceConstraintViolation"),
        ("ocpp1.6", {**BOOT_16, "extra": 1}, "FormationViolation"),
        ("ocpp1.6", {**BOOT_16, "chargePointModel": 5}, "TypeConstraintViolation"),
        ("ocpp1.6", {**BOOT_16, "chargePointModel": "M" * 21}, "PropertyConstraintViolation"),
    ],
)
async def test_strict_mode_inbound_request_gets_the_versions_code(
    protocol: str, payload: dict[str, Any], code: str
) -> None:
    async with open_memory_pair(protocol, csms_options={"strict_mode": True}) as (station, csms):
        csms.handle("BootNotification", lambda ctx: BOOT_16_RESULT)
        failures = Recorder(csms, "strict_validation_failure")
        with pytest.raises(CallErrorReceived) as info:
            await station.call("BootNotification", payload)
        assert info.value.code == code
        assert len(failures["strict_validation_failure"]) == 1


async def test_strict_mode_invalid_handler_result_is_an_internal_error() -> None:
    async with open_memory_pair("ocpp1.6", csms_options={"strict_mode": ["ocpp1.6"]}) as (
        station,
        csms,
    ):
        csms.handle("BootNotification", lambda ctx: {"status": "Maybe"})
        with pytest.raises(CallErrorReceived) as info:
            await station.call("BootNotification", BOOT_16)
        assert info.value.code == "InternalError"


async def test_strict_mode_invalid_inbound_result_raises_and_21_sends_callresulterror() -> None:
    async with open_memory_pair("ocpp2.1", station_options={"strict_mode": True}) as (
        station,
        csms,
    ):
        got = Recorder(csms, "call_result_error")
        csms.handle("Heartbeat", lambda ctx: {"currentTime": 12})
        with pytest.raises(ValidationError) as info:
            await station.call("Heartbeat", {})
        assert info.value.direction == "response"
        await trio.testing.wait_all_tasks_blocked()
        (event,) = got["call_result_error"]
        assert isinstance(event, CallResultErrorEvent)
        assert event.code == "TypeConstraintViolation"
        assert not event.outbound


async def test_strict_mode_list_skips_other_protocols() -> None:
    async with open_memory_pair("ocpp2.0.1", strict_mode=["ocpp1.6"]) as (station, csms):
        csms.handle("Heartbeat", lambda ctx: {"anything": True})
        assert await station.call("Heartbeat", {"bogus": 1}) == {"anything": True}


async def test_send_frames_on_21_only() -> None:
    got: list[HandlerContext] = []
    async with open_memory_pair("ocpp2.1") as (station, csms):
        csms.handle("NotifyPeriodicEventStream", lambda ctx: got.append(ctx) or {"ignored": 1})
        params = {"id": 1, "pending": 0, "basetime": "2024-01-01T00:00:00Z", "data": []}
        await station.send("NotifyPeriodicEventStream", params)
        await trio.testing.wait_all_tasks_blocked()
        assert got
        assert got[0].is_send
        assert got[0].params == params
    async with open_memory_pair("ocpp1.6") as (station, _csms):
        with pytest.raises(ProtocolStateError, match="SEND"):
            await station.send("Heartbeat", {})


async def test_send_while_call_outstanding_is_allowed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_pair("ocpp2.1") as (station, csms):
        sends: list[str] = []

        @csms.handle("Heartbeat")
        async def slow(ctx: HandlerContext) -> dict[str, Any]:
            await trio.sleep(5)
            return NOW

        csms.handle("NotifyPeriodicEventStream", lambda ctx: sends.append(ctx.message_id))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(station.call, "Heartbeat", {})
            await trio.testing.wait_all_tasks_blocked()
            await station.send("NotifyPeriodicEventStream", {})
            await trio.testing.wait_all_tasks_blocked()
            assert len(sends) == 1
            assert trio.current_time() == 0


@pytest.mark.parametrize(
    ("protocol", "text", "reply"),
    [
        ("ocpp1.6", "not json", [4, "-1", "FormationViolation"]),
        ("ocpp2.0.1", "not json", [4, "-1", "RpcFrameworkError"]),
        ("ocpp2.0.1", '[9, "abc"]', [4, "abc", "MessageTypeNotSupported"]),
        ("ocpp1.6", '[9, "abc"]', None),
        ("ocpp2.1", '[2, "abc", "Heartbeat", []]', [4, "abc", "FormatViolation"]),
        ("ocpp2.1", '[3, "nobody", {}]', None),
    ],
)
async def test_bad_messages_are_answered_and_counted(
    protocol: str, text: str, reply: list[Any] | None
) -> None:
    async with open_memory_pair(protocol) as (station, csms):
        bad = Recorder(csms, "bad_message")
        answers = Recorder(station, "message")
        await station.send_raw(text)
        await trio.testing.wait_all_tasks_blocked()
        (event,) = bad["bad_message"]
        assert isinstance(event, BadMessageEvent)
        assert event.count == 1
        assert event.replied == (reply is not None)
        inbound = [json.loads(m.text) for m in answers["message"] if not m.outbound]  # type: ignore[attr-defined]
        if reply is None:
            assert inbound == []
        else:
            assert inbound[0][:3] == reply
        assert csms.state is ConnectionState.OPEN


async def test_too_many_bad_messages_close_with_1002() -> None:
    async with open_memory_pair("ocpp2.0.1", csms_options={"max_bad_messages": 2}) as (
        station,
        csms,
    ):
        csms.handle("Heartbeat", lambda ctx: NOW)
        closes = Recorder(station, "close")
        await station.send_raw("x")
        await station.send_raw("y")
        # A good frame resets the count.
        assert await station.call("Heartbeat", {}) == NOW
        assert csms.bad_message_count == 0
        for junk in ("1", "2", "3"):
            await station.send_raw(junk)
        with trio.fail_after(5):
            await station.wait_closed()
        assert station.close_code == 1002
        (event,) = closes["close"]
        assert isinstance(event, CloseEvent)
        assert event.by_peer


async def test_malformed_answer_fails_the_call_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_pair("ocpp1.6", call_timeout=30) as (station, csms):
        ids: list[str] = []

        @csms.handle("Heartbeat")
        async def garbage(ctx: HandlerContext) -> Any:
            ids.append(ctx.message_id)
            await csms.send_raw(json.dumps([3, ctx.message_id, "not an object"]))
            return NOREPLY

        with pytest.raises(MalformedResponseError):
            await station.call("Heartbeat", {})
        assert trio.current_time() == 0


@pytest.mark.parametrize("details", [[{"path": ".connectorId"}], None, "x", 3])
async def test_callerror_with_malformed_details_raises_the_peers_error(
    autojump_clock: trio.testing.MockClock, details: object
) -> None:
    async with open_memory_pair("ocpp1.6", call_timeout=30) as (station, csms):
        bad = Recorder(station, "bad_message", "call_error")
        written = Recorder(station, "message")

        @csms.handle("Heartbeat")
        async def refuse(ctx: HandlerContext) -> Any:
            frame = [4, ctx.message_id, "FormationViolation", "connectorId: wrong type", details]
            await csms.send_raw(json.dumps(frame))
            return NOREPLY

        with pytest.raises(CallErrorReceived) as info:
            await station.call("Heartbeat", {})
        assert trio.current_time() == 0  # at once, not at the timeout
        err = info.value
        assert (err.code, err.description) == ("FormationViolation", "connectorId: wrong type")
        assert err.details == {}
        assert err.raw_details == details
        assert err.malformed is True
        assert isinstance(err.error, RPCFormationViolationError)
        (event,) = bad["bad_message"]
        assert isinstance(event, BadMessageEvent)
        assert not event.replied
        assert station.bad_message_count == 1
        (error_event,) = bad["call_error"]
        assert isinstance(error_event, CallErrorEvent)
        assert error_event.code == "FormationViolation"
        await trio.testing.wait_all_tasks_blocked()
        # The frame was not answered: the station wrote only its CALL.
        outbound = [e for e in written["message"] if isinstance(e, MessageEvent) and e.outbound]
        assert [json.loads(e.text)[0] for e in outbound] == [2]


async def test_well_formed_callerror_keeps_details_as_raw_details() -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):

        @csms.handle("Heartbeat")
        def refuse(ctx: HandlerContext) -> Any:
            raise RPCGenericError("no", {"k": 1})

        with pytest.raises(CallErrorReceived) as info:
            await station.call("Heartbeat", {})
        assert info.value.details == info.value.raw_details == {"k": 1}
        assert info.value.malformed is False


async def test_pings_are_sent_on_schedule(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_pair("ocpp1.6", station_options={"ping_interval": 10}) as (station, _):
        rec = Recorder(station, "ping", "pong")
        times: list[float] = []
        station.on("ping", lambda e: times.append(trio.current_time()))
        await trio.sleep(35)
        assert times == [10, 20, 30]
        assert len(rec["pong"]) == 3


async def test_the_peers_pings_are_reported(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_pair("ocpp1.6", csms_options={"ping_interval": 10}) as (station, csms):
        seen: list[tuple[float, bytes, bool]] = []
        station.on("ping", lambda e: seen.append((trio.current_time(), e.payload, e.outbound)))
        sent = Recorder(csms, "ping", "pong")
        await trio.sleep(25)
    ours = [e for e in sent["ping"] if isinstance(e, PingEvent)]
    assert [e.outbound for e in ours] == [True, True]
    assert seen == [(10, ours[0].payload, False), (20, ours[1].payload, False)]
    assert len(sent["pong"]) == 2  # answered before it was reported


async def test_deferred_pings_skip_while_messages_flow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_pair(
        "ocpp1.6", station_options={"ping_interval": 10, "defer_pings_on_activity": True}
    ) as (station, csms):
        csms.handle("Heartbeat", lambda ctx: NOW)
        times: list[float] = []
        station.on("ping", lambda e: times.append(trio.current_time()))
        for _ in range(5):  # a call every 6 s keeps the connection busy until t=30
            await trio.sleep(6)
            await station.call("Heartbeat", {})
        await trio.sleep(25)
        assert times == [40, 50]


def _tasks_named(suffix: str) -> list[trio.lowlevel.Task]:
    """The running tasks whose name ends with ``suffix`` (the whole task tree)."""
    found: list[trio.lowlevel.Task] = []
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        if task.name.endswith(suffix):
            found.append(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return found


async def test_each_connection_pings_from_a_task_of_its_own_nursery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A ping task per pinged connection, in its nursery; none while pings are off."""
    async with (
        open_memory_pair("ocpp1.6", ping_interval=0) as (station, csms),
        open_memory_pair("ocpp1.6", ping_interval=0, identity="CP2") as (station2, csms2),
    ):
        times: list[float] = []  # the station's own pings
        station.on("ping", lambda e: e.outbound and times.append(trio.current_time()))
        await trio.sleep(100)
        assert _tasks_named("Pinger.run") == []
        for conn in (station, csms, station2, csms2):
            conn.reconfigure(ping_interval=10)  # enabled: counting from now
        await trio.sleep(5)
        tasks = _tasks_named("Pinger.run")
        assert len(tasks) == 4
        assert not any(t.parent_nursery is None for t in tasks)
        assert all(
            t.parent_nursery.parent_task is not trio.lowlevel.current_root_task() for t in tasks
        )  # type: ignore[union-attr]
        await trio.sleep(20)
        assert times == [110, 120]
        for conn in (station, csms, station2, csms2):
            conn.reconfigure(ping_interval=math.inf)  # disabled again
        await trio.testing.wait_all_tasks_blocked()
        assert _tasks_named("Pinger.run") == []
        await trio.sleep(50)
        assert times == [110, 120]
        station.reconfigure(ping_interval=5)
        await trio.sleep(12)
        assert times == [110, 120, 180, 185]
        await station2.close()
        station.reconfigure(ping_interval=0)
        await trio.testing.wait_all_tasks_blocked()
        assert _tasks_named("Pinger.run") == []


async def test_a_new_interval_applies_to_the_next_ping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_pair("ocpp1.6", station_options={"ping_interval": 10}) as (station, _):
        times: list[float] = []
        station.on("ping", lambda e: times.append(trio.current_time()))
        await trio.sleep(4)
        station.reconfigure(ping_interval=30)  # the ping due at 10 is now due at 30
        await trio.sleep(40)
        station.reconfigure(ping_interval=0)
        station.reconfigure(ping_interval=30)  # off, then on: counting from now (44)
        await trio.sleep(40)
        assert times == [30, 74]


async def test_missing_pong_declares_the_peer_dead(autojump_clock: trio.testing.MockClock) -> None:
    (pair, to_csms, _to_station) = freezable_stream_pair()
    async with open_memory_pair(
        "ocpp1.6",
        stream_pair_factory=lambda: pair,
        station_options={"ping_interval": 10, "pong_timeout": 5},
    ) as (station, _csms):
        closes = Recorder(station, "close")
        to_csms.frozen = True  # the CSMS stops hearing us: no pong comes back
        with trio.fail_after(100):
            await station.wait_closed()
        assert trio.current_time() == 15
        assert station.close_code == 1006
        assert closes["close"][0].by_peer  # type: ignore[attr-defined]


async def test_pending_calls_fail_when_the_peer_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):

        @csms.handle("Heartbeat")
        async def slow(ctx: HandlerContext) -> dict[str, Any]:
            await trio.sleep(100)
            return NOW

        async def close_soon() -> None:
            await trio.sleep(1)
            await csms.close(4001, "bye")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_soon)
            with pytest.raises(ConnectionClosed) as info:
                await station.call("Heartbeat", {})
        assert info.value.code == 4001
        assert trio.current_time() == 1
        assert station.state is ConnectionState.CLOSED
        with pytest.raises(ConnectionClosed):
            await station.call("Heartbeat", {})
        with pytest.raises(trio.ClosedResourceError):
            await csms.call("Heartbeat", {})


async def test_close_is_idempotent_and_refuses_new_calls() -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):
        closes = Recorder(csms, "close")
        await station.close(1000, "done")
        await station.close()
        await station.close(force=True)
        with pytest.raises(trio.ClosedResourceError):
            await station.call("Heartbeat", {})
        with trio.fail_after(1):
            await csms.wait_closed()
        assert csms.close_code == 1000
        assert csms.close_reason == "done"
        assert len(closes["close"]) == 1


async def test_close_await_pending_finishes_in_flight_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):

        @csms.handle("Heartbeat")
        async def slow(ctx: HandlerContext) -> dict[str, Any]:
            await trio.sleep(3)
            return NOW

        results: list[Any] = []

        async def caller() -> None:
            results.append(await station.call("Heartbeat", {}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller)
            await trio.sleep(1)
            await csms.close(await_pending=True)
        assert results == [NOW]
        assert trio.current_time() == 3


async def test_close_without_await_pending_cancels_handlers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled = trio.Event()
    async with open_memory_pair("ocpp1.6") as (station, csms):

        @csms.handle("Heartbeat")
        async def slow(ctx: HandlerContext) -> dict[str, Any]:
            try:
                await trio.sleep(100)
            except trio.Cancelled:
                cancelled.set()
                raise
            return NOW

        async with trio.open_nursery() as nursery:

            async def caller() -> None:
                with pytest.raises(ConnectionClosed):
                    await station.call("Heartbeat", {})

            nursery.start_soon(caller)
            await trio.sleep(1)
            await csms.close()
        assert cancelled.is_set()


async def test_close_is_bounded_when_the_peer_never_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    (pair, _to_csms, to_station) = freezable_stream_pair()
    async with open_memory_pair(
        "ocpp1.6", stream_pair_factory=lambda: pair, station_options={"close_timeout": 4}
    ) as (station, _csms):
        to_station.frozen = True
        await station.close()
        assert trio.current_time() == 4
        assert station.state is ConnectionState.CLOSED


async def test_cancelling_a_call_leaves_the_state_consistent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):
        release = trio.Event()

        @csms.handle("Heartbeat")
        async def slow(ctx: HandlerContext) -> dict[str, Any]:
            await release.wait()
            return NOW

        late = Recorder(station, "late_response")
        # Cancelled while waiting for the answer, and a second one while queued.
        with trio.move_on_after(1):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(station.call, "Heartbeat", {})
                nursery.start_soon(station.call, "Heartbeat", {})
        assert station.pending_calls == 0
        release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert len(late["late_response"]) == 1
        assert await station.call("Heartbeat", {}) == NOW
        assert station.bad_message_count == 0


async def test_cancelling_close_still_closes(autojump_clock: trio.testing.MockClock) -> None:
    (pair, _to_csms, to_station) = freezable_stream_pair()
    async with open_memory_pair("ocpp1.6", stream_pair_factory=lambda: pair) as (station, _csms):
        to_station.frozen = True
        with trio.move_on_after(1):
            await station.close()
        assert station.state is ConnectionState.CLOSED
        with pytest.raises(trio.ClosedResourceError):
            await station.call("Heartbeat", {})


async def test_inbound_handler_limit_answers_busy(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_pair(
        "ocpp1.6",
        station_options={"call_concurrency": 3},
        csms_options={"inbound_call_concurrency": 2},
    ) as (station, csms):

        @csms.handle("DataTransfer")
        async def slow(ctx: HandlerContext) -> dict[str, Any]:
            await trio.sleep(2)
            return {"status": "Accepted"}

        outcomes: list[str] = []

        async def caller() -> None:
            try:
                await station.call("DataTransfer", {"vendorId": "v"})
                outcomes.append("ok")
            except CallErrorReceived as exc:
                outcomes.append(exc.code)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(caller)
        assert sorted(outcomes) == ["GenericError", "ok", "ok"]


async def test_events_fire_with_payloads() -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):
        s = Recorder(station, "call", "call_result", "call_error", "message")
        c = Recorder(csms, "call", "call_result", "call_error")
        csms.handle("Heartbeat", lambda ctx: NOW)
        await station.call("Heartbeat", {})
        with pytest.raises(CallErrorReceived):
            await station.call("Nope", {})
        await trio.testing.wait_all_tasks_blocked()
    assert [e.outbound for e in s["call"]] == [True, True]  # type: ignore[attr-defined]
    assert [e.method for e in c["call"]] == ["Heartbeat", "Nope"]  # type: ignore[attr-defined]
    assert s["call_result"][0].result == NOW  # type: ignore[attr-defined]
    assert c["call_result"][0].outbound  # type: ignore[attr-defined]
    assert s["call_error"][0].code == "NotImplemented"  # type: ignore[attr-defined]
    assert c["call_error"][0].outbound  # type: ignore[attr-defined]
    assert len(s["message"]) == 4


async def test_a_raising_callback_does_not_kill_the_connection() -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):

        def boom(_: object) -> None:
            raise RuntimeError("callback bug")

        station.on("call", boom)
        csms.on("call", boom)
        csms.handle("Heartbeat", lambda ctx: NOW)
        assert await station.call("Heartbeat", {}) == NOW
    with pytest.raises(ValueError, match="unknown event"):
        station.on("nonsense", boom)


async def test_reconfigure_validates_and_applies(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):
        with pytest.raises(TypeError, match="unknown option"):
            station.reconfigure(colour="blue")
        with pytest.raises(ValueError):
            station.reconfigure(call_timeout=0)
        station.reconfigure(call_timeout=2)
        csms.handle("Heartbeat", lambda ctx: NOREPLY)
        with pytest.raises(CallTimeout):
            await station.call("Heartbeat", {})
        assert trio.current_time() == 2
        station.reconfigure(strict_mode=True)
        with pytest.raises(ValidationError):
            await station.call("BootNotification", {})


async def test_handler_exception_from_a_sync_handler_returning_an_awaitable() -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):

        async def later(ctx: HandlerContext) -> dict[str, Any]:
            return NOW

        csms.handle("Heartbeat", lambda ctx: later(ctx))
        assert await station.call("Heartbeat", {}) == NOW
