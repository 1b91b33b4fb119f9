"""Our server against a station built with ``ocpp-rpc`` 2.2.1 (Node), run with node.

``make test`` installs the Node peer (``tests/interop/node``, ``npm ci``).
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from ocpp_trio import HandlerContext, OCPPConnection, RPCSecurityError, serve_ocpp

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]


def _require_peer() -> None:
    if not (NODE_DIR / "node_modules" / "ocpp-rpc").is_dir():
        pytest.fail("ocpp-rpc is not installed: run `make node-deps` (make test does)")


NOW = "2024-01-01T00:00:00Z"


#: What the CSMS asks a 1.6 station once it has booted (by default).
ASK_16: dict[str, Any] = {"key": ["HeartbeatInterval"]}


def csms_handler(
    protocol: str,
    seen: list[tuple[str, dict[str, Any]]],
    answers: list[Any],
    ask_16: dict[str, Any] = ASK_16,
) -> Any:
    async def on_station(conn: OCPPConnection) -> None:
        assert conn.protocol == protocol
        booted = trio.Event()

        def record(name: str, result: dict[str, Any]) -> Any:
            def handler(ctx: HandlerContext) -> dict[str, Any]:
                seen.append((ctx.method, ctx.params))
                if name == "BootNotification":
                    booted.set()
                return result

            return handler

        if protocol == "ocpp1.6":
            conn.handle(
                "BootNotification",
                record(
                    "BootNotification", {"status": "Accepted", "currentTime": NOW, "interval": 60}
                ),
            )
            conn.handle("StatusNotification", record("StatusNotification", {}))

            @conn.handle("Authorize")
            def authorize(ctx: HandlerContext) -> dict[str, Any]:
                seen.append((ctx.method, ctx.params))
                raise RPCSecurityError("unknown tag", {"idTag": ctx.params["idTag"]})

        else:
            conn.handle(
                "BootNotification",
                record(
                    "BootNotification", {"status": "Accepted", "currentTime": NOW, "interval": 60}
                ),
            )
            conn.handle("StatusNotification", record("StatusNotification", {}))
        conn.handle("Heartbeat", record("Heartbeat", {"currentTime": NOW}))
        await booted.wait()
        if protocol == "ocpp1.6":
            answers.append(await conn.call("GetConfiguration", ask_16))
        else:
            answers.append(
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
            )

    return on_station


async def run_peer(
    protocol: str, ask_16: dict[str, Any] = ASK_16
) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]], list[Any]]:
    _require_peer()
    seen: list[tuple[str, dict[str, Any]]] = []
    answers: list[Any] = []
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_ocpp,
                csms_handler(protocol, seen, answers, ask_16),
                0,
                host="127.0.0.1",
                protocols=[protocol],
                strict_mode=True,
            )
        )
        assert NODE is not None
        with trio.fail_after(30):
            result = await trio.run_process(
                [NODE, "station.js", f"ws://127.0.0.1:{server.port}/ocpp", "RPC-STATION", protocol],
                cwd=NODE_DIR,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        lines = [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]
        assert result.returncode == 0, (lines, result.stderr.decode()[-2000:])
        await server.close()
        nursery.cancel_scope.cancel()
    return lines, seen, answers


async def test_ocpp16_session_from_an_ocpp_rpc_station() -> None:
    lines, seen, answers = await run_peer("ocpp1.6")
    assert lines[0] == {"connected": "ocpp1.6"}
    by_answer = {line["answer"]: line for line in lines if "answer" in line}
    assert by_answer["BootNotification"]["result"] == {
        "status": "Accepted",
        "currentTime": NOW,
        "interval": 60,
    }
    assert by_answer["Heartbeat"]["result"] == {"currentTime": NOW}
    assert by_answer["StatusNotification"]["result"] == {}
    assert by_answer["Authorize"]["error"] == "SecurityError"
    assert [name for name, _ in seen] == [
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "Authorize",
    ]
    assert answers == [
        {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]}
    ]
    assert lines[-1] == {"closed": True}


@pytest.mark.parametrize("ask", [{}, {"key": []}])
async def test_get_configuration_without_keys_answers_every_key(ask: dict[str, Any]) -> None:
    # OCPP 1.6 GetConfiguration.req: key is optional; without it, every key is answered.
    lines, _seen, answers = await run_peer("ocpp1.6", ask)
    assert {"got": "GetConfiguration", "params": ask} in lines
    (answer,) = answers
    assert "unknownKey" not in answer
    keys = {item["key"]: (item["readonly"], item["value"]) for item in answer["configurationKey"]}
    assert keys["HeartbeatInterval"] == (False, "300")
    assert keys["NumberOfConnectors"] == (True, "1")
    assert len(keys) == 5
    assert lines[-1] == {"closed": True}


async def test_unknown_configuration_keys_are_reported() -> None:
    _lines, _seen, answers = await run_peer("ocpp1.6", {"key": ["HeartbeatInterval", "NoSuchKey"]})
    assert answers == [
        {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
            "unknownKey": ["NoSuchKey"],
        }
    ]


async def test_ocpp201_session_from_an_ocpp_rpc_station() -> None:
    lines, seen, answers = await run_peer("ocpp2.0.1")
    assert lines[0] == {"connected": "ocpp2.0.1"}
    assert [name for name, _ in seen] == ["BootNotification", "Heartbeat", "StatusNotification"]
    (answer,) = answers
    assert answer["getVariableResult"][0]["attributeValue"] == "300"
    assert lines[-1] == {"closed": True}
