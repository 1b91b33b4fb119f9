"""``ocpp-trio demo``: a CSMS and a simulated station in one process, talking over loopback."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

import trio

from ..client import open_ocpp_client
from ..connection import OCPPConnection
from ..events import MessageEvent
from ..routing import HandlerContext
from ..server import OCPPServer, serve_ocpp


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _printer(side: str, identity: str) -> Any:
    def show(event: MessageEvent) -> None:
        arrow = "->" if event.outbound else "<-"
        print(f"{side:7} {identity:11} {arrow} {event.text}", flush=True)

    return show


class DemoCSMS:
    """The CSMS half: answers the station and asks it for its configuration."""

    def __init__(self) -> None:
        self.transactions = itertools.count(1)
        self.asked = trio.Event()

    async def on_station(self, conn: OCPPConnection) -> None:
        conn.on("message", _printer("CSMS", conn.identity))
        if conn.protocol == "ocpp1.6":
            conn.handle(
                "BootNotification",
                lambda ctx: {"status": "Accepted", "currentTime": _now(), "interval": 300},
            )
            conn.handle("StartTransaction", self.start_transaction)
            conn.handle("StopTransaction", lambda ctx: {"idTagInfo": {"status": "Accepted"}})
            conn.handle("Authorize", lambda ctx: {"idTagInfo": {"status": "Accepted"}})
        else:
            conn.handle(
                "BootNotification",
                lambda ctx: {"status": "Accepted", "currentTime": _now(), "interval": 300},
            )
            conn.handle("TransactionEvent", lambda ctx: {})
        conn.handle("Heartbeat", lambda ctx: {"currentTime": _now()})
        conn.handle("StatusNotification", lambda ctx: {})
        conn.handle("MeterValues", lambda ctx: {})
        await self.asked.wait()
        if conn.protocol == "ocpp1.6":
            await conn.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
        else:
            await conn.call(
                "GetVariables",
                {
                    "getVariableData": [
                        {
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                        }
                    ]
                },
            )

    def start_transaction(self, ctx: HandlerContext) -> dict[str, Any]:
        return {"transactionId": next(self.transactions), "idTagInfo": {"status": "Accepted"}}


async def _station_16(url: str, meter_values: int, csms: DemoCSMS) -> None:
    async with open_ocpp_client(
        url, identity="DEMO-CP-1", protocols=["ocpp1.6"], strict_mode=True
    ) as cp:
        cp.on("message", _printer("station", "DEMO-CP-1"))
        answered = trio.Event()

        @cp.handle("GetConfiguration")
        def get_configuration(ctx: HandlerContext) -> dict[str, Any]:
            answered.set()
            return {
                "configurationKey": [
                    {"key": key, "readonly": False, "value": "300"}
                    for key in ctx.params.get("key", [])
                ]
            }

        await cp.call(
            "BootNotification", {"chargePointVendor": "ocpp_trio", "chargePointModel": "Demo"}
        )
        await cp.call("Heartbeat", {})
        await cp.call(
            "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}
        )
        await cp.call("Authorize", {"idTag": "DEMO-TAG"})
        started = await cp.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "DEMO-TAG", "meterStart": 0, "timestamp": _now()},
        )
        tx = started["transactionId"]
        for i in range(1, meter_values + 1):
            await cp.call(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tx,
                    "meterValue": [
                        {
                            "timestamp": _now(),
                            "sampledValue": [{"value": str(i * 1000), "unit": "Wh"}],
                        }
                    ],
                },
            )
        await cp.call(
            "StopTransaction",
            {"transactionId": tx, "meterStop": meter_values * 1000, "timestamp": _now()},
        )
        csms.asked.set()
        with trio.fail_after(10):
            await answered.wait()


async def _station_201(url: str, meter_values: int, csms: DemoCSMS) -> None:
    async with open_ocpp_client(
        url, identity="DEMO-CP-1", protocols=["ocpp2.0.1"], strict_mode=True
    ) as cp:
        cp.on("message", _printer("station", "DEMO-CP-1"))
        answered = trio.Event()

        @cp.handle("GetVariables")
        def get_variables(ctx: HandlerContext) -> dict[str, Any]:
            answered.set()
            return {
                "getVariableResult": [
                    {
                        "attributeStatus": "Accepted",
                        "attributeValue": "300",
                        "component": item["component"],
                        "variable": item["variable"],
                    }
                    for item in ctx.params["getVariableData"]
                ]
            }

        await cp.call(
            "BootNotification",
            {"chargingStation": {"vendorName": "ocpp_trio", "model": "Demo"}, "reason": "PowerUp"},
        )
        await cp.call("Heartbeat", {})
        await cp.call(
            "StatusNotification",
            {"timestamp": _now(), "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1},
        )
        for seq, event_type in enumerate(["Started", *["Updated"] * meter_values, "Ended"]):
            await cp.call(
                "TransactionEvent",
                {
                    "eventType": event_type,
                    "timestamp": _now(),
                    "triggerReason": "MeterValuePeriodic"
                    if event_type == "Updated"
                    else "Authorized",
                    "seqNo": seq,
                    "transactionInfo": {"transactionId": "DEMO-TX-1"},
                    "meterValue": [
                        {"timestamp": _now(), "sampledValue": [{"value": float(seq * 1000)}]}
                    ],
                },
            )
        csms.asked.set()
        with trio.fail_after(10):
            await answered.wait()


async def run_demo(protocol: str = "ocpp1.6", meter_values: int = 3) -> int:
    """Run the demo; return 0 when the whole session completed."""
    csms = DemoCSMS()
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        server: OCPPServer = await nursery.start(
            partial(
                serve_ocpp,
                csms.on_station,
                0,
                host="127.0.0.1",
                protocols=["ocpp2.0.1", "ocpp1.6"],
                strict_mode=True,
            )
        )
        url = f"ws://127.0.0.1:{server.port}/ocpp"
        print(f"demo CSMS listening on {url}", flush=True)
        station = _station_16 if protocol == "ocpp1.6" else _station_201
        with trio.fail_after(30):
            await station(url, meter_values, csms)
        await server.close()
        nursery.cancel_scope.cancel()
    print(
        f"demo finished in {time.perf_counter() - started:.2f} s: the station booted, charged and answered the CSMS"
    )
    return 0
