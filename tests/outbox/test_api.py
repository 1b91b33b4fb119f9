"""The outbox's surface: which calls it routes, listing and removing, drain_delay, cancellation."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from ocpp_trio import CallTimeout, open_ocpp_client
from ocpp_trio.outbox import MemoryStore, MessageDropped, Outbox
from ocpp_trio.testing._server import MEMORY_ENDPOINT

from .csms import FlakyCSMS, open_csms, station_options

BOOT16: dict[str, Any] = {"chargePointVendor": "V", "chargePointModel": "M"}
METER: dict[str, Any] = {
    "connectorId": 1,
    "transactionId": 5,
    "meterValue": [{"timestamp": "2024-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}],
}


def client16(csms: FlakyCSMS, outbox: Outbox, **extra: Any) -> Any:
    return open_ocpp_client(
        MEMORY_ENDPOINT,
        identity="CP1",
        protocols=["ocpp1.6"],
        outbox=outbox,
        **station_options(csms, **extra),
    )


async def test_which_calls_go_through_the_outbox(autojump_clock: trio.testing.MockClock) -> None:
    async with open_csms() as csms:
        outbox = Outbox(MemoryStore(), queued_actions=["DataTransfer"])
        assert outbox.routes("MeterValues", METER)
        assert not outbox.routes("MeterValues", {"connectorId": 1, "meterValue": []})
        assert outbox.routes("DataTransfer", {})
        assert not outbox.routes("Heartbeat", {})
        assert not outbox.routes("BootNotification", BOOT16)
        assert Outbox(MemoryStore(), queue_all_messages=True).routes("Heartbeat", {})
        assert not Outbox(MemoryStore(), queue_all_messages=True).routes("BootNotification", {})
        async with client16(csms, outbox) as client:
            await client.call("BootNotification", BOOT16)
            await csms.go_down()
            with pytest.raises(CallTimeout, match="stays queued"):
                await client.call("DataTransfer", {"vendorId": "v"}, timeout=5)
            with pytest.raises(CallTimeout, match="no answer"):
                await client.call("Heartbeat", {}, timeout=5)  # not queued: waits, then fails
            assert [p.action for p in outbox.pending()] == ["DataTransfer"]
            csms.come_back()
            assert await client.call("MeterValues", METER, timeout=120) == {}
        assert csms.actions() == ["BootNotification", "DataTransfer", "MeterValues"]


async def test_pending_handle_and_remove(autojump_clock: trio.testing.MockClock) -> None:
    async with open_csms() as csms:
        outbox = Outbox(MemoryStore())
        async with client16(csms, outbox) as client:
            await csms.go_down()
            first = await client.enqueue("MeterValues", METER)
            second = await client.enqueue("MeterValues", {**METER, "transactionId": 6})
            (p1, p2) = outbox.pending()
            assert (p1.seq, p1.action, p1.attempts, p1.in_flight) == (
                first.seq,
                "MeterValues",
                0,
                False,
            )
            assert p2.payload["transactionId"] == 6
            p2.payload["transactionId"] = 99  # a snapshot: the queue is not changed
            assert outbox.pending()[1].payload["transactionId"] == 6
            assert outbox.handle(second.seq) is second
            await outbox.remove(first.seq)
            with pytest.raises(MessageDropped, match="removed"):
                await first.result()
            with pytest.raises(KeyError):
                outbox.handle(first.seq)
            with pytest.raises(KeyError):
                await outbox.remove(first.seq)
            csms.come_back()
            await client.call("BootNotification", BOOT16)
            assert await second.result() == {}
        assert csms.actions() == ["BootNotification", "MeterValues"]
        with pytest.raises(trio.ClosedResourceError):
            await outbox.enqueue(None, "MeterValues", METER)  # its client is gone
        no_outbox = open_ocpp_client(MEMORY_ENDPOINT, identity="X", **station_options(csms))
        async with no_outbox as plain:
            with pytest.raises(RuntimeError, match="no outbox"):
                await plain.enqueue("MeterValues", METER)


async def test_drain_delay_after_each_connect(autojump_clock: trio.testing.MockClock) -> None:
    async with open_csms() as csms:
        outbox = Outbox(MemoryStore(), drain_delay=15, hold_until_accepted=False)
        async with client16(csms, outbox, backoff_min=1, backoff_max=1) as client:
            handle = await client.enqueue("MeterValues", METER)
            connected = trio.current_time()
            await handle.result()
            assert csms.received[0].at - connected == pytest.approx(15)
            await csms.go_down()
            await client.enqueue("MeterValues", METER)
            await trio.sleep(100)
            csms.come_back()
            back = trio.current_time()
            await outbox.handle(outbox.pending()[0].seq).result()
            # the next connect attempt (within 1 s), then the delay
            assert 15 <= csms.received[1].at - back <= 16


async def test_cancelled_enqueues_leave_store_and_queue_in_agreement(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryStore()
    async with open_csms() as csms:
        outbox = Outbox(store)
        async with client16(csms, outbox) as client:
            await csms.go_down()
            acknowledged: list[int] = []

            async def producer(n: int) -> None:
                handle = await client.enqueue("DataTransfer", {"vendorId": "v", "data": str(n)})
                acknowledged.append(handle.seq)

            for round_ in range(20):
                with trio.CancelScope() as scope:
                    async with trio.open_nursery() as nursery:
                        for n in range(5):
                            nursery.start_soon(producer, round_ * 5 + n)
                        for _ in range(round_ % 4):
                            await trio.lowlevel.checkpoint()
                        scope.cancel()
                queued = [p.seq for p in outbox.pending()]
                assert queued == [m.seq for m in await store.load("CP1")]
                assert set(acknowledged) <= set(queued)  # every acknowledged one is queued
                assert queued == sorted(queued)
