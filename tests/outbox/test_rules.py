"""The outbox's rules in virtual time: attempts and intervals, drops, the queue bound,
registration (station side and CSMS side).  The in-memory store keeps the times exact."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio

from ocpp_trio import (
    CallErrorReceived,
    CallTimeout,
    RegistrationGate,
    open_ocpp_client,
)
from ocpp_trio.events import OutboxDroppedEvent, OutboxRetryEvent
from ocpp_trio.outbox import MemoryStore, MessageDropped, Outbox, retry_backoff
from ocpp_trio.testing._server import MEMORY_ENDPOINT
from ocpp_trio.types import v16, v201

from ..helpers import Recorder
from .csms import FlakyCSMS, open_csms, station_options

BOOT16: dict[str, Any] = {"chargePointVendor": "V", "chargePointModel": "M"}
START: dict[str, Any] = {
    "connectorId": 1,
    "idTag": "TAG1",
    "meterStart": 0,
    "timestamp": "2024-01-01T00:00:00Z",
}
STOP: dict[str, Any] = {"transactionId": 0, "meterStop": 10, "timestamp": "2024-01-01T01:00:00Z"}


def client16(csms: FlakyCSMS, outbox: Outbox, **extra: Any) -> Any:
    return open_ocpp_client(
        MEMORY_ENDPOINT,
        identity="CP1",
        protocols=["ocpp1.6"],
        outbox=outbox,
        **station_options(csms, **extra),
    )


def tx_event(kind: str, seq: int) -> v201.TransactionEvent:
    return v201.TransactionEvent(
        {
            "eventType": kind,  # type: ignore[typeddict-item]
            "timestamp": "2024-01-01T00:00:00Z",
            "triggerReason": "MeterValuePeriodic",
            "seqNo": seq,
            "transactionInfo": {"transactionId": f"TX-{seq // 100}"},
        }
    )


async def test_callerror_is_retried_after_interval_times_attempts_then_delivered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_csms() as csms:
        failures = iter([True, True])
        csms.faults["StartTransaction"] = lambda p: "error" if next(failures, False) else None
        outbox = Outbox(MemoryStore(), message_attempts=3, message_attempt_interval=10)
        async with client16(csms, outbox) as client:
            events = Recorder(client, "outbox_retry", "outbox_dropped", "outbox_delivered")
            await client.call("BootNotification", BOOT16)
            t0 = trio.current_time()
            start = await client.enqueue(v16.StartTransaction(START))
            stop = await client.enqueue(v16.StopTransaction(STOP), transaction_of=start)
            assert (await start.result())["transactionId"] == 101
            assert (await stop.result()) == {"idTagInfo": {"status": "Accepted"}}
        starts = csms.of("StartTransaction")
        assert [round(r.at - t0, 6) for r in starts] == [0, 10, 30]  # 10 x 1, then 10 x 2
        assert len({r.message_id for r in starts}) == 3  # a new id per attempt
        assert csms.of("StopTransaction")[0].payload["transactionId"] == 101
        assert csms.of("StopTransaction")[0].at >= starts[-1].at  # the queue waited behind it
        retries = events["outbox_retry"]
        assert all(isinstance(e, OutboxRetryEvent) for e in retries)
        assert [(e.attempt, e.delay) for e in retries] == [(1, 10.0), (2, 20.0)]  # type: ignore[attr-defined]
        assert all(isinstance(e.error, CallErrorReceived) for e in retries)  # type: ignore[attr-defined]
        assert events["outbox_dropped"] == []
        assert [e.attempts for e in events["outbox_delivered"]] == [3, 1]  # type: ignore[attr-defined]


async def test_callerror_every_time_drops_after_the_attempts_and_the_queue_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_csms() as csms:
        csms.faults["StartTransaction"] = lambda p: "error" if p["idTag"] == "BAD" else None
        outbox = Outbox(MemoryStore(), message_attempts=2, message_attempt_interval=5)
        async with client16(csms, outbox) as client:
            events = Recorder(client, "outbox_dropped")
            await client.call("BootNotification", BOOT16)
            bad = await client.enqueue(v16.StartTransaction({**START, "idTag": "BAD"}))
            orphan = await client.enqueue(v16.StopTransaction(STOP), transaction_of=bad)
            good = await client.enqueue(v16.StartTransaction(START))
            with pytest.raises(MessageDropped) as dropped:
                await bad.result()
            assert dropped.value.reason == "attempts"
            assert dropped.value.attempts == 2
            assert isinstance(dropped.value.error, CallErrorReceived)
            with pytest.raises(MessageDropped) as orphaned:
                await orphan.result()
            assert orphaned.value.reason == "start_dropped"
            assert (await good.result())["transactionId"] == 101
            # a Stop for a Start that was dropped is refused at once
            late = await client.enqueue(v16.StopTransaction(STOP), transaction_of=bad)
            assert late.done
            assert not late.delivered
        assert csms.actions() == [
            "BootNotification",
            "StartTransaction",
            "StartTransaction",
            "StartTransaction",
        ]
        got = [(e.seq, e.reason) for e in events["outbox_dropped"]]  # type: ignore[attr-defined]
        assert got == [(bad.seq, "attempts"), (orphan.seq, "start_dropped"), (0, "start_dropped")]
        assert all(isinstance(e, OutboxDroppedEvent) for e in events["outbox_dropped"])


async def test_no_answer_counts_as_an_attempt(autojump_clock: trio.testing.MockClock) -> None:
    async with open_csms() as csms:
        csms.faults["StartTransaction"] = lambda p: "silent"
        outbox = Outbox(
            MemoryStore(), message_attempts=3, message_attempt_interval=1, call_timeout=5
        )
        async with client16(csms, outbox) as client:
            events = Recorder(client, "outbox_retry")
            await client.call("BootNotification", BOOT16)
            t0 = trio.current_time()
            handle = await client.enqueue(v16.StartTransaction(START))
            with pytest.raises(MessageDropped) as dropped:
                await handle.result()
            assert isinstance(dropped.value.error, CallTimeout)
            # attempt 1 at 0 (timeout at 5), wait 1; attempt 2 at 6 (timeout 11), wait 2; attempt 3 at 13
            assert [round(r.at - t0, 6) for r in csms.of("StartTransaction")] == [0, 6, 13]
            assert trio.current_time() - t0 == pytest.approx(18)
            assert [e.attempt for e in events["outbox_retry"]] == [1, 2]  # type: ignore[attr-defined]


async def test_a_connection_lost_mid_attempt_is_not_an_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_csms() as csms:
        cut = iter([True])

        def lose(payload: dict[str, Any]) -> str | None:
            return "silent" if next(cut, False) else None

        csms.faults["StartTransaction"] = lose
        outbox = Outbox(MemoryStore(), message_attempts=1, call_timeout=30)
        async with client16(csms, outbox) as client:
            events = Recorder(client, "outbox_retry", "outbox_dropped")
            await client.call("BootNotification", BOOT16)
            handle = await client.enqueue(v16.StartTransaction(START))
            await trio.sleep(2)  # in flight, unanswered
            await csms.go_down()
            await trio.sleep(60)
            csms.come_back()
            assert (await handle.result())["transactionId"] == 101
        assert events["outbox_retry"] == events["outbox_dropped"] == []
        assert len(csms.of("StartTransaction")) == 2


async def test_queue_bound_drops_updates_never_started_or_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_csms() as csms:
        outbox = Outbox(MemoryStore(), max_queue_size=4)
        async with open_ocpp_client(
            MEMORY_ENDPOINT,
            identity="CP2",
            protocols=["ocpp2.0.1"],
            outbox=outbox,
            **station_options(csms),
        ) as client:
            events = Recorder(client, "outbox_dropped")
            await client.call(
                "BootNotification",
                {"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M"}},
            )
            await csms.go_down()
            handles = [await client.enqueue(tx_event("Started", 100))]
            handles += [await client.enqueue(tx_event("Updated", 100 + n)) for n in range(1, 6)]
            handles.append(await client.enqueue(tx_event("Ended", 106)))
            # a second transaction while the queue is full of starts and ends
            handles.append(await client.enqueue(tx_event("Started", 200)))
            handles.append(await client.enqueue(tx_event("Updated", 201)))
            handles.append(await client.enqueue(tx_event("Ended", 202)))
            assert [p.payload["seqNo"] for p in outbox.pending()] == [100, 106, 200, 202]
            refused = await client.enqueue(tx_event("Updated", 203))  # nothing droppable left
            assert refused.done
            assert refused.seq == 0
            handles.append(await client.enqueue(tx_event("Started", 300)))  # beyond the bound
            kept = [p.payload["seqNo"] for p in outbox.pending()]
            assert kept == [100, 106, 200, 202, 300]  # no start or end is lost
            csms.come_back()
            with trio.fail_after(600):
                for h in handles:
                    if h.done:
                        with pytest.raises(MessageDropped, match="queue_full"):
                            await h.result()
                    else:
                        await h.result()
        got = [r.payload["seqNo"] for r in csms.of("TransactionEvent")]
        assert got == [100, 106, 200, 202, 300]
        dropped = [(e.seq, e.reason) for e in events["outbox_dropped"]]  # type: ignore[attr-defined]
        assert dropped == [(s, "queue_full") for s in (2, 3, 4, 5, 6, 9, 0)]
        assert [h.seq for h in handles if not h.delivered] == [2, 3, 4, 5, 6, 9]


async def test_pending_then_accepted_holds_everything_but_boot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_csms() as csms:
        csms.boot_answers = [
            {"status": "Pending", "currentTime": "2024-01-01T00:00:00Z", "interval": 30}
        ]
        outbox = Outbox(MemoryStore())
        async with client16(csms, outbox) as client:
            t0 = trio.current_time()
            first = await client.call("BootNotification", BOOT16)
            assert first["status"] == "Pending"
            assert outbox.registration_status == "Pending"
            queued = await client.enqueue(v16.StartTransaction(START))
            heartbeat: list[dict[str, Any]] = []

            async def beat() -> None:
                heartbeat.append(await client.call("Heartbeat", {}, timeout=120))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(beat)
                await trio.sleep(10)
                assert csms.actions() == ["BootNotification"]  # held
                # the next BootNotification waits for the Pending answer's interval
                second = await client.call("BootNotification", BOOT16)
                assert second["status"] == "Accepted"
                assert trio.current_time() - t0 == pytest.approx(30)
            await queued.result()
        assert csms.actions()[:2] == ["BootNotification", "BootNotification"]
        assert sorted(csms.actions()[2:]) == ["Heartbeat", "StartTransaction"]
        assert heartbeat == [{"currentTime": "2024-01-01T00:00:00Z"}]


async def test_rejected_sends_nothing_else_and_calls_time_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_csms() as csms:
        csms.boot_answers = [
            {"status": "Rejected", "currentTime": "2024-01-01T00:00:00Z", "interval": 600}
        ]
        outbox = Outbox(MemoryStore())
        async with client16(csms, outbox) as client:
            assert (await client.call("BootNotification", BOOT16))["status"] == "Rejected"
            handle = await client.enqueue(v16.StartTransaction(START))
            with pytest.raises(CallTimeout, match="not accepted"):
                await client.call("Heartbeat", {}, timeout=60)
            with pytest.raises(CallTimeout, match="stays queued"):
                await client.call(v16.StopTransaction(STOP), timeout=60)
            # a triggered message may go past the gate
            assert await client.call_direct(None, "Heartbeat", {}) == {
                "currentTime": "2024-01-01T00:00:00Z"
            }
            assert not handle.done
            assert [p.action for p in outbox.pending()] == ["StartTransaction", "StopTransaction"]
        assert csms.actions() == ["BootNotification", "Heartbeat"]


async def test_hold_until_accepted_off_sends_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_csms() as csms:
        outbox = Outbox(MemoryStore(), hold_until_accepted=False)
        async with client16(csms, outbox) as client:
            handle = await client.enqueue(v16.StartTransaction(START))
            assert (await handle.result())["transactionId"] == 101
        assert csms.actions() == ["StartTransaction"]


async def test_csms_gate_refuses_calls_before_an_accepted_boot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = RegistrationGate()
    async with open_csms(registration_gate=gate) as csms:
        csms.boot_answers = [
            {"status": "Pending", "currentTime": "2024-01-01T00:00:00Z", "interval": 1}
        ]
        async with open_ocpp_client(
            MEMORY_ENDPOINT, identity="CP9", protocols=["ocpp1.6"], **station_options(csms)
        ) as client:
            with pytest.raises(CallErrorReceived) as refused:
                await client.call("Heartbeat", {})
            assert refused.value.code == "SecurityError"
            assert (await client.call("BootNotification", BOOT16))["status"] == "Pending"
            with pytest.raises(CallErrorReceived, match="not accepted"):
                await client.call(
                    "StatusNotification",
                    {"connectorId": 0, "errorCode": "NoError", "status": "Available"},
                )
            assert (await client.call("BootNotification", BOOT16))["status"] == "Accepted"
            assert gate.is_accepted("CP9")
            assert await client.call("Heartbeat", {}) == {"currentTime": "2024-01-01T00:00:00Z"}
            # a reconnect does not need a new BootNotification
            await csms.go_down()
            csms.come_back()
            await trio.sleep(5)
            assert await client.call("Heartbeat", {}) == {"currentTime": "2024-01-01T00:00:00Z"}
        # the refused CALLs never reached a handler
        assert csms.actions() == ["BootNotification", "BootNotification", "Heartbeat", "Heartbeat"]


async def test_csms_gate_knows_stations_registered_earlier(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = RegistrationGate(is_known=lambda identity: identity == "OLD")
    assert gate.is_accepted("OLD")
    assert not gate.is_accepted("NEW")
    gate.observe("OLD", {"status": "Rejected"})
    assert not RegistrationGate().is_accepted("OLD")
    with pytest.raises(ValueError, match="CSMS option"):
        async with open_ocpp_client(MEMORY_ENDPOINT, identity="X", registration_gate=True):
            pass


async def test_retry_backoff_follows_the_2x_variables(
    autojump_clock: trio.testing.MockClock,
) -> None:
    delay = retry_backoff(10, 0, 3)
    assert [delay(n) for n in range(6)] == [10, 20, 40, 80, 80, 80]
    jittered = retry_backoff(10, 5, 2, rng=random.Random(1))
    assert all(10 * 2 ** min(n, 2) <= jittered(n) <= 10 * 2 ** min(n, 2) + 5 for n in range(5))
    # the client waits exactly that between its attempts
    async with open_csms() as csms:
        csms.up = False
        times: list[float] = []
        t0 = trio.current_time()
        async with open_ocpp_client(
            MEMORY_ENDPOINT,
            identity="CP1",
            setup=lambda c: c.on("connecting", lambda e: times.append(trio.current_time() - t0)),
            **station_options(csms, backoff=retry_backoff(10, 0, 2), wait_connected=False),
        ):
            await trio.sleep(10 + 20 + 40 + 40 + 1)
        assert times == [0, 10, 30, 70, 110]


async def test_start_answered_without_a_transaction_id_drops_what_waits_for_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_csms(strict_mode=False) as csms:
        csms.faults["StartTransaction"] = lambda p: "no-transaction-id"
        async with client16(csms, Outbox(MemoryStore())) as client:
            await client.call("BootNotification", BOOT16)
            await csms.go_down()
            start = await client.enqueue(v16.StartTransaction(START))
            stop = await client.enqueue(v16.StopTransaction(STOP), transaction_of=start)
            csms.come_back()
            assert await start.result() == {"idTagInfo": {"status": "Accepted"}}
            assert start.transaction_id is None
            with pytest.raises(MessageDropped, match="start_dropped"):
                await stop.result()
        assert csms.actions() == ["BootNotification", "StartTransaction"]
