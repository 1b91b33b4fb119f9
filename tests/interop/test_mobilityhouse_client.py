"""Interop: a mobilityhouse ``ocpp`` charging station (asyncio + websockets) against our server.

The station runs in a subprocess (``peers/mobilityhouse_station.py``) and
prints what it saw as JSON lines; our server runs here with strict mode on,
so both sides validate every payload against their own copy of the schemas.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from ocpp_trio import HandlerContext, OCPPConnection
from ocpp_trio.server import OCPPServer, serve_ocpp

pytestmark = pytest.mark.interop

PEER = Path(__file__).parent / "peers" / "mobilityhouse_station.py"
NOW = "2024-05-01T12:00:00Z"


class CSMS:
    """Our side of the session: answers the station, then calls it once."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.answers: list[dict[str, Any]] = []
        self.protocols: list[str] = []

    def record(self, result: dict[str, Any]) -> Any:
        def handler(ctx: HandlerContext) -> dict[str, Any]:
            self.received.append((ctx.method, dict(ctx.params)))
            return result

        return handler

    async def __call__(self, conn: OCPPConnection) -> None:
        self.protocols.append(conn.protocol)
        status_seen = trio.Event()
        conn.handle(
            "BootNotification",
            self.record({"status": "Accepted", "currentTime": NOW, "interval": 300}),
        )
        conn.handle("Heartbeat", self.record({"currentTime": NOW}))

        def on_status(ctx: HandlerContext) -> dict[str, Any]:
            self.received.append((ctx.method, dict(ctx.params)))
            status_seen.set()
            return {}

        conn.handle("StatusNotification", on_status)
        await status_seen.wait()
        if conn.protocol == "ocpp1.6":
            answer = await conn.call("GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})
        else:
            answer = await conn.call(
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
        self.answers.append(answer)


async def run_peer(port: int, version: str, identity: str) -> list[dict[str, Any]]:
    """Run the mobilityhouse station to its end; return its JSON lines."""
    result = await trio.run_process(
        [sys.executable, str(PEER), str(port), version, identity],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, stderr[-3000:]
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]


@pytest.mark.parametrize(("version", "protocol"), [("1.6", "ocpp1.6"), ("2.0.1", "ocpp2.0.1")])
async def test_mobilityhouse_station_session(version: str, protocol: str) -> None:
    csms = CSMS()
    with trio.fail_after(30):  # run_process kills the peer when this fires
        async with trio.open_nursery() as nursery:
            server: OCPPServer = await nursery.start(
                partial(serve_ocpp, csms, 0, host="127.0.0.1", strict_mode=True, ping_interval=0)
            )
            lines = await run_peer(server.port, version, "MH-" + version)
            await server.close()
    steps = {line["step"]: line for line in lines}
    order = [line["step"] for line in lines]
    # The server calls once the StatusNotification arrived: its call may reach
    # the station before the StatusNotification's answer does.
    assert order[:3] == ["connected", "boot", "heartbeat"]
    assert sorted(order[3:5]) == ["server_call", "status"]
    assert order[5:] == ["closed", "done"]
    # The station's view.
    assert steps["connected"]["subprotocol"] == protocol
    assert steps["boot"]["status"] == "Accepted"
    assert steps["boot"]["interval"] == 300
    assert steps["heartbeat"]["current_time"] == NOW
    assert steps["closed"]["code"] == 1000
    # Our view.
    assert csms.protocols == [protocol]
    assert [method for method, _ in csms.received] == [
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
    ]
    (answer,) = csms.answers
    if version == "1.6":
        assert steps["server_call"]["key"] == ["HeartbeatInterval", "Nope"]
        assert csms.received[0][1]["chargePointVendor"] == "V1"
        assert answer == {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}],
            "unknownKey": ["Nope"],
        }
    else:
        assert steps["server_call"]["data"][0]["variable"]["name"] == "HeartbeatInterval"
        assert csms.received[0][1]["chargingStation"] == {"model": "M2", "vendorName": "V2"}
        (result,) = answer["getVariableResult"]
        assert result["attributeStatus"] == "Accepted"
        assert result["attributeValue"] == "60"


async def test_a_stuck_peer_is_killed_when_the_bound_fires() -> None:
    # A listener that accepts and never answers: the peer waits for its handshake,
    # our bound fires first, and run_process kills the subprocess before returning.
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, silent, listeners)
        start = trio.current_time()
        with trio.move_on_after(1) as scope:
            await run_peer(port, "1.6", "STUCK")
        assert scope.cancelled_caught
        assert trio.current_time() - start < 5
        nursery.cancel_scope.cancel()


async def silent(stream: trio.SocketStream) -> None:
    async with stream:
        await trio.sleep_forever()
