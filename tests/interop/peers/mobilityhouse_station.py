"""A charging station built on mobilityhouse ``ocpp`` (asyncio + websockets), for interop tests.

Usage: ``python mobilityhouse_station.py PORT VERSION IDENTITY`` with VERSION
``1.6`` or ``2.0.1``.  It connects to ``ws://127.0.0.1:PORT/ocpp/IDENTITY``,
runs a scripted session (BootNotification, Heartbeat, StatusNotification),
answers the CSMS's GetConfiguration (1.6) or GetVariables (2.0.1), then
closes.  Every step is printed to stdout as one JSON object per line; the
exit status is 0 when the script ran to its end.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

STEP_TIMEOUT = 10.0


def emit(**fields: Any) -> None:
    print(json.dumps(fields, default=str), flush=True)


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def station_class(version: str) -> type:
    if version == "1.6":
        from ocpp.v16 import ChargePoint, call_result
        from ocpp.v16.enums import Action

        class Station16(ChargePoint):  # type: ignore[misc]
            server_call = asyncio.Event()

            @on(Action.get_configuration)
            async def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
                emit(step="server_call", action="GetConfiguration", key=key)
                self.server_call.set()
                return call_result.GetConfiguration(
                    configuration_key=[
                        {"key": "HeartbeatInterval", "readonly": False, "value": "60"}
                    ],
                    unknown_key=[k for k in key or [] if k != "HeartbeatInterval"],
                )

        return Station16

    from ocpp.v201 import ChargePoint, call_result
    from ocpp.v201.enums import Action

    class Station201(ChargePoint):  # type: ignore[misc]
        server_call = asyncio.Event()

        @on(Action.get_variables)
        async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
            emit(step="server_call", action="GetVariables", data=get_variable_data)
            self.server_call.set()
            return call_result.GetVariables(
                get_variable_result=[
                    {
                        "attribute_status": "Accepted",
                        "attribute_value": "60",
                        "component": item["component"],
                        "variable": item["variable"],
                    }
                    for item in get_variable_data
                ]
            )

    return Station201


async def session(cp: Any, version: str) -> None:
    if version == "1.6":
        from ocpp.v16 import call

        boot = await cp.call(
            call.BootNotification(charge_point_model="M1", charge_point_vendor="V1")
        )
        emit(step="boot", status=boot.status, interval=boot.interval)
        beat = await cp.call(call.Heartbeat())
        emit(step="heartbeat", current_time=beat.current_time)
        await cp.call(
            call.StatusNotification(
                connector_id=1, error_code="NoError", status="Available", timestamp=now()
            )
        )
        emit(step="status")
    else:
        from ocpp.v201 import call

        boot = await cp.call(
            call.BootNotification(
                charging_station={"model": "M2", "vendor_name": "V2"}, reason="PowerUp"
            )
        )
        emit(step="boot", status=boot.status, interval=boot.interval)
        beat = await cp.call(call.Heartbeat())
        emit(step="heartbeat", current_time=beat.current_time)
        await cp.call(
            call.StatusNotification(
                timestamp=now(), connector_status="Available", evse_id=1, connector_id=1
            )
        )
        emit(step="status")


async def main(port: int, version: str, identity: str) -> None:
    protocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    url = f"ws://127.0.0.1:{port}/ocpp/{identity}"
    async with connect(url, subprotocols=[Subprotocol(protocol)], open_timeout=STEP_TIMEOUT) as ws:
        emit(step="connected", subprotocol=ws.subprotocol)
        cp = station_class(version)(identity, ws)
        runner = asyncio.create_task(cp.start())
        try:
            await asyncio.wait_for(session(cp, version), STEP_TIMEOUT)
            await asyncio.wait_for(cp.server_call.wait(), STEP_TIMEOUT)
            await asyncio.sleep(0.2)  # let the answer go out
        finally:
            runner.cancel()
    emit(step="closed", code=ws.close_code)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
    emit(step="done")
