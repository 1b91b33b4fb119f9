"""A CSMS built with mobilityhouse ``ocpp`` (asyncio + websockets), for interop tests.

Usage: python mh_csms.py PROTOCOL  (ocpp1.6 or ocpp2.0.1)

Listens on 127.0.0.1 on a free port, prints ``{"port": N}``, serves one
station, and after the station's BootNotification calls it once
(GetConfiguration on 1.6, GetVariables on 2.0.1).  Prints one JSON line per
event and exits 0 after the station disconnects.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import RegistrationStatus as Reg16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

PROTOCOL = sys.argv[1]


def say(**event: object) -> None:
    print(json.dumps(event), flush=True)


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class CSMS16(ChargePoint16):
    @on(Action16.boot_notification)
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str, **kw: object):
        say(got="BootNotification", vendor=charge_point_vendor, model=charge_point_model)
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self.ask()))
        return result16.BootNotification(current_time=now(), interval=300, status=Reg16.accepted)

    @on(Action16.heartbeat)
    async def on_heartbeat(self):
        say(got="Heartbeat")
        return result16.Heartbeat(current_time=now())

    @on(Action16.status_notification)
    async def on_status(self, connector_id: int, error_code: str, status: str, **kw: object):
        say(got="StatusNotification", connector_id=connector_id, status=status)
        return result16.StatusNotification()

    async def ask(self) -> None:
        res = await self.call(call16.GetConfiguration(key=["HeartbeatInterval"]), suppress=False)
        say(answer="GetConfiguration", configuration_key=res.configuration_key)


class CSMS201(ChargePoint201):
    @on(Action201.boot_notification)
    async def on_boot(self, charging_station: dict, reason: str, **kw: object):
        say(got="BootNotification", vendor=charging_station["vendor_name"], reason=reason)
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self.ask()))
        return result201.BootNotification(current_time=now(), interval=300, status="Accepted")

    @on(Action201.heartbeat)
    async def on_heartbeat(self):
        say(got="Heartbeat")
        return result201.Heartbeat(current_time=now())

    @on(Action201.status_notification)
    async def on_status(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **kw: object
    ):
        say(got="StatusNotification", connector_status=connector_status, evse_id=evse_id)
        return result201.StatusNotification()

    async def ask(self) -> None:
        res = await self.call(
            call201.GetVariables(
                get_variable_data=[
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            ),
            suppress=False,
        )
        say(answer="GetVariables", get_variable_result=res.get_variable_result)


async def main() -> None:
    done = asyncio.Event()

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        path = ws.request.path
        say(connected=path.rsplit("/", 1)[-1], subprotocol=ws.subprotocol)
        cls = CSMS16 if PROTOCOL == "ocpp1.6" else CSMS201
        cp = cls(path.rsplit("/", 1)[-1], ws)
        try:
            await cp.start()
        except websockets.exceptions.ConnectionClosed as exc:
            say(closed=exc.rcvd.code if exc.rcvd else None)
        finally:
            done.set()

    async with websockets.serve(handler, "127.0.0.1", 0, subprotocols=[PROTOCOL]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        say(port=port)
        await asyncio.wait_for(done.wait(), timeout=60)


if __name__ == "__main__":
    asyncio.run(main())
