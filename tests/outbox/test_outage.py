"""An hour without the CSMS, in virtual time: the whole transaction arrives afterwards, once, in order.

Run with both stores: the in-memory reference store and the default SQLite
file (whose commits run in worker threads: under the autojump clock a
commit may let virtual time jump, so these tests assert order and content,
and times only as bounds).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from ocpp_trio import open_ocpp_client
from ocpp_trio.outbox import MemoryStore, Outbox, OutboxStore, SQLiteStore
from ocpp_trio.testing._server import MEMORY_ENDPOINT
from ocpp_trio.types import v16, v201

from ..helpers import Recorder
from .csms import open_csms, station_options

StoreFactory = Callable[[Path], OutboxStore]

STORES: list[Any] = [
    pytest.param(lambda tmp: MemoryStore(), id="memory"),
    pytest.param(lambda tmp: SQLiteStore(tmp / "outbox.db", synchronous="NORMAL"), id="sqlite"),
]

BOOT16: v16.BootNotificationRequest = {"chargePointVendor": "V", "chargePointModel": "M"}
BOOT201: v201.BootNotificationRequest = {
    "reason": "PowerUp",
    "chargingStation": {"vendorName": "V", "model": "M"},
}
HOUR = 3600.0


def meter(ts: str, wh: int) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": ts,
            "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register"}],
        }
    ]


@pytest.mark.parametrize("make_store", STORES)
async def test_v16_transaction_during_an_hour_offline(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, make_store: StoreFactory
) -> None:
    store = make_store(tmp_path)
    async with open_csms() as csms:
        outbox = Outbox(store, drain_delay=2)
        async with open_ocpp_client(
            MEMORY_ENDPOINT,
            identity="CP1",
            protocols=["ocpp1.6"],
            outbox=outbox,
            **station_options(csms),
        ) as client:
            events = Recorder(client, "outbox_delivered", "outbox_dropped", "outbox_retry")
            await client.call(v16.BootNotification(BOOT16))
            assert outbox.accepted
            await csms.go_down()
            went_down = trio.current_time()
            # the whole transaction while offline: Start, 6 meter values, Stop
            start = await client.enqueue(
                v16.StartTransaction(
                    {
                        "connectorId": 1,
                        "idTag": "TAG1",
                        "meterStart": 0,
                        "timestamp": "2024-01-01T00:00:00Z",
                    }
                )
            )
            for i in range(6):
                await trio.sleep(600)
                await client.enqueue(
                    v16.MeterValues(
                        {
                            "connectorId": 1,
                            "transactionId": 0,
                            "meterValue": meter(f"2024-01-01T00:{i}0:00Z", 1000 * i),
                        }
                    ),
                    transaction_of=start,
                )
            stop = await client.enqueue(
                v16.StopTransaction(
                    {"transactionId": 0, "meterStop": 6000, "timestamp": "2024-01-01T01:00:00Z"}
                ),
                transaction_of=start,
            )
            assert [p.action for p in outbox.pending()] == ["StartTransaction"] + [
                "MeterValues"
            ] * 6 + ["StopTransaction"]
            assert all(p.transaction_of == start.seq for p in outbox.pending()[1:])
            assert csms.actions() == ["BootNotification"]
            assert trio.current_time() - went_down >= HOUR
            csms.come_back()
            stop_result = await stop.result()
            assert stop_result == {"idTagInfo": {"status": "Accepted"}}
            assert start.delivered
            assert start.transaction_id == 101
            assert outbox.pending() == []

    assert csms.actions() == ["BootNotification", "StartTransaction"] + ["MeterValues"] * 6 + [
        "StopTransaction"
    ]
    tx = csms.received[1:]
    assert all(r.payload["transactionId"] == 101 for r in tx[1:])
    assert [r.payload["meterValue"][0]["sampledValue"][0]["value"] for r in tx[1:7]] == [
        str(1000 * i) for i in range(6)
    ]
    assert len({r.message_id for r in csms.received}) == len(csms.received)  # unique ids
    assert tx[0].at >= went_down + HOUR  # nothing went before the CSMS was back
    assert [e.seq for e in events["outbox_delivered"]] == sorted(
        e.seq for e in events["outbox_delivered"]
    )  # type: ignore[attr-defined]
    assert len(events["outbox_delivered"]) == 8
    assert events["outbox_dropped"] == events["outbox_retry"] == []


@pytest.mark.parametrize("make_store", STORES)
async def test_v201_offline_events_carry_the_offline_flag(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, make_store: StoreFactory
) -> None:
    store = make_store(tmp_path)

    def event(kind: str, seq: int, trigger: str) -> v201.TransactionEvent:
        return v201.TransactionEvent(
            {
                "eventType": kind,  # type: ignore[typeddict-item]
                "timestamp": f"2024-01-01T00:{seq:02d}:00Z",
                "triggerReason": trigger,  # type: ignore[typeddict-item]
                "seqNo": seq,
                "transactionInfo": {"transactionId": "TX-1"},
            }
        )

    async with (
        open_csms() as csms,
        open_ocpp_client(
            MEMORY_ENDPOINT,
            identity="CP2",
            protocols=["ocpp2.0.1"],
            outbox=Outbox(store),
            **station_options(csms),
        ) as client,
    ):
        await client.call(v201.BootNotification(BOOT201))
        started = await client.call(event("Started", 0, "Authorized"))  # online: through the outbox
        assert started == {}
        await csms.go_down()
        handles = [
            await client.enqueue(event("Updated", n, "MeterValuePeriodic")) for n in range(1, 4)
        ]
        await trio.sleep(HOUR)
        handles.append(await client.enqueue(event("Ended", 4, "EVDeparted")))
        csms.come_back()
        for handle in handles:
            await handle.result()
    got = csms.of("TransactionEvent")
    assert [r.payload["seqNo"] for r in got] == [0, 1, 2, 3, 4]
    assert [r.payload.get("offline") for r in got] == [None, True, True, True, True]
    assert [r.payload["eventType"] for r in got] == [
        "Started",
        "Updated",
        "Updated",
        "Updated",
        "Ended",
    ]
