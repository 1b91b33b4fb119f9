"""Our client against a CSMS built with mobilityhouse ``ocpp`` 2.1.0 (asyncio), in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from ocpp_trio import HandlerContext, open_ocpp_client

PEER = Path(__file__).parent / "peers" / "mh_csms.py"

pytestmark = pytest.mark.interop


class Peer:
    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self._buffer = b""

    async def next_line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.proc.stdout.receive_some()
            if not chunk:
                raise EOFError("peer exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        event: dict[str, Any] = json.loads(line)
        self.lines.append(event)
        return event

    async def wait_for(self, key: str) -> dict[str, Any]:
        while True:
            event = await self.next_line()
            if key in event:
                return event


async def run_session(protocol: str, script: Any) -> Peer:
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, str(PEER), protocol],
                stdout=subprocess.PIPE,
                check=False,
            )
        )
        peer = Peer(proc)
        try:
            with trio.fail_after(30):
                port = (await peer.wait_for("port"))["port"]
                async with open_ocpp_client(
                    f"ws://127.0.0.1:{port}/ocpp",
                    identity="CP-INTEROP",
                    protocols=[protocol],
                    strict_mode=True,
                    reconnect=False,
                ) as client:
                    await script(client, peer)
                while True:
                    try:
                        await peer.next_line()
                    except EOFError:
                        break
                await proc.wait()
            assert proc.returncode == 0
        finally:
            proc.kill()
    return peer


async def test_ocpp16_session_against_mobilityhouse_csms() -> None:
    async def script(client: Any, peer: Peer) -> None:
        answered = trio.Event()

        @client.handle("GetConfiguration")
        def get_configuration(ctx: HandlerContext) -> dict[str, Any]:
            answered.set()
            return {
                "configurationKey": [
                    {"key": k, "readonly": False, "value": "300"} for k in ctx.params["key"]
                ]
            }

        boot = await client.call(
            "BootNotification", {"chargePointVendor": "Trio", "chargePointModel": "Sim"}
        )
        assert boot["status"] == "Accepted"
        assert boot["interval"] == 300
        assert "currentTime" in await client.call("Heartbeat", {})
        assert (
            await client.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
            )
            == {}
        )
        await answered.wait()
        event = await peer.wait_for("answer")
        assert event["configuration_key"] == [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
        ]

    peer = await run_session("ocpp1.6", script)
    got = [e.get("got") for e in peer.lines if "got" in e]
    assert got == ["BootNotification", "Heartbeat", "StatusNotification"]
    assert peer.lines[1] == {"connected": "CP-INTEROP", "subprotocol": "ocpp1.6"}


async def test_ocpp201_session_against_mobilityhouse_csms() -> None:
    async def script(client: Any, peer: Peer) -> None:
        @client.handle("GetVariables")
        def get_variables(ctx: HandlerContext) -> dict[str, Any]:
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

        boot = await client.call(
            "BootNotification",
            {"chargingStation": {"model": "Sim", "vendorName": "Trio"}, "reason": "PowerUp"},
        )
        assert boot["status"] == "Accepted"
        assert "currentTime" in await client.call("Heartbeat", {})
        status = {
            "timestamp": "2024-01-01T00:00:00Z",
            "connectorStatus": "Available",
            "evseId": 1,
            "connectorId": 1,
        }
        assert await client.call("StatusNotification", status) == {}
        event = await peer.wait_for("answer")
        (result,) = event["get_variable_result"]
        assert result["attribute_status"] == "Accepted"
        assert result["attribute_value"] == "300"

    peer = await run_session("ocpp2.0.1", script)
    got = [e.get("got") for e in peer.lines if "got" in e]
    assert got == ["BootNotification", "Heartbeat", "StatusNotification"]
