# test_csms.py: run with pytest-trio (trio_mode = true)
from typing import Any

import pytest
import trio
from hypothesis import given, settings

from ocpp_trio import HandlerContext, OCPPConnection
from ocpp_trio.testing import MemoryPair, MemoryServer, open_memory_pair
from ocpp_trio.testing.strategies import payloads

NOW = "2024-01-01T00:00:00Z"


async def on_station(conn: OCPPConnection) -> None:
    """The CSMS under test: what you pass to serve_ocpp."""
    conn.handle(
        "BootNotification", lambda ctx: {"status": "Accepted", "currentTime": NOW, "interval": 300}
    )
    conn.handle("MeterValues", lambda ctx: {})
    await trio.sleep(60)
    await conn.call("GetConfiguration", {"key": ["HeartbeatInterval"]})


@pytest.fixture
def ocpp_handler() -> Any:
    return on_station


async def test_boot_then_configuration(ocpp_pair: MemoryPair, autojump_clock: Any) -> None:
    station, _csms = ocpp_pair
    asked = trio.Event()

    @station.handle("GetConfiguration")
    def get_configuration(ctx: HandlerContext) -> dict[str, Any]:
        asked.set()
        return {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        }

    boot = await station.call(
        "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
    )
    assert boot["interval"] == 300
    await asked.wait()
    assert trio.current_time() == 60  # exact, in virtual time


async def test_two_stations_on_a_real_server(ocpp_server: MemoryServer) -> None:
    async with ocpp_server.connect("CP1") as cp1, ocpp_server.connect("CP2") as cp2:
        assert sorted(ocpp_server.clients) == ["CP1", "CP2"]
        for station in (cp1, cp2):
            boot = await station.call(
                "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
            )
            assert boot["status"] == "Accepted"


@settings(max_examples=50, deadline=None)
@given(payload=payloads("ocpp1.6", "MeterValues"))
async def test_any_valid_meter_values_is_accepted(payload: dict[str, Any]) -> None:
    async with open_memory_pair("ocpp1.6", csms_handler=on_station, strict_mode=True) as (
        station,
        _csms,
    ):
        assert await station.call("MeterValues", payload) == {}
