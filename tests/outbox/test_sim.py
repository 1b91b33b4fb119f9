"""The simulator with an outbox (``ocpp-trio station --outbox``) rides out an outage mid-session."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ocpp_trio.cli._output import MessageLog
from ocpp_trio.cli._sim import StationOptions
from ocpp_trio.cli.station import make_station
from ocpp_trio.outbox import MemoryStore, Outbox
from ocpp_trio.testing._server import MEMORY_ENDPOINT

from .csms import open_csms, station_options


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_simulated_session_survives_an_outage(
    autojump_clock: trio.testing.MockClock, protocol: str
) -> None:
    async with open_csms() as csms:
        outbox = Outbox(MemoryStore())
        options = StationOptions(
            protocol=protocol,
            scenario="charge",
            meter_values=4,
            meter_interval=10,
            client_options=station_options(csms, outbox=outbox, call_timeout=30, backoff_max=2),
        )
        station = make_station(MEMORY_ENDPOINT, "SIM", options, log=MessageLog(), printer=None)

        async def outage() -> None:
            # down once the transaction has started, back 20 s later
            while not (
                "StartTransaction" in csms.actions()
                or any(r.payload.get("eventType") == "Started" for r in csms.of("TransactionEvent"))
            ):
                await csms.arrived.wait()
            await trio.sleep(1)
            await csms.go_down()
            await trio.sleep(20)
            csms.come_back()

        with trio.fail_after(900):  # virtual time: a deadlock fails instead of spinning
            async with trio.open_nursery() as nursery:
                nursery.start_soon(outage)
                await station.run(trio.current_time() + 600)
    assert station.completed, station.failure
    assert station.failure is None
    if protocol == "ocpp1.6":
        tx = [r for r in csms.received if r.action in ("MeterValues", "StopTransaction")]
        assert [r.action for r in tx][-1] == "StopTransaction"
        assert all(r.payload["transactionId"] == 101 for r in tx)
        assert len([r for r in tx if r.action == "MeterValues"]) == 4
    else:
        events = csms.of("TransactionEvent")
        assert [e.payload["seqNo"] for e in events] == list(range(len(events)))
        assert events[-1].payload["eventType"] == "Ended"
        assert any(e.payload.get("offline") for e in events)
    assert len(outbox) == 0
