"""Interop: a mobilityhouse ``ocpp`` station (asyncio + websockets, a subprocess) against the
Starlette + Hypercorn example, its GetConfiguration driven through the REST route."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
import trio

from ..interop.test_mobilityhouse_client import PEER
from .helpers import http_request, load_example, serve_with

pytestmark = pytest.mark.interop


async def test_mobilityhouse_station_through_the_rest_route() -> None:
    module = load_example("starlette_hypercorn")
    server = module.server
    stop = trio.Event()
    answers: list[Any] = []
    with trio.fail_after(30):  # run_process kills the peer when this fires
        async with trio.open_nursery() as nursery:
            port = await serve_with(module.run, nursery, stop)

            async def ask_when_connected() -> None:
                while "CP002" not in server.clients:  # noqa: ASYNC110 - no event to wait on
                    await trio.sleep(0.02)
                answer = await http_request(
                    port, "/stations/CP002/config?key=HeartbeatInterval&key=Nope"
                )
                answers.append((answer.status, answer.json()))

            nursery.start_soon(ask_when_connected)
            result = await trio.run_process(
                [sys.executable, str(PEER), str(port), "1.6", "CP002"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            stop.set()
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    steps = {line["step"]: line for line in map(json.loads, result.stdout.decode().splitlines())}
    assert steps["connected"]["subprotocol"] == "ocpp1.6"
    assert steps["boot"]["status"] == "Accepted"
    assert steps["server_call"]["key"] == ["HeartbeatInterval", "Nope"]
    assert steps["closed"]["code"] == 1000
    assert answers == [
        (
            200,
            {
                "configurationKey": [
                    {"key": "HeartbeatInterval", "readonly": False, "value": "60"}
                ],
                "unknownKey": ["Nope"],
            },
        )
    ]
    assert server.clients == {}


async def test_mobilityhouse_station_refused_by_auth() -> None:
    module = load_example("starlette_hypercorn")
    stop = trio.Event()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await serve_with(module.run, nursery, stop)
            result = await trio.run_process(
                [sys.executable, str(PEER), str(port), "1.6", "UNKNOWN"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            stop.set()
    assert result.returncode != 0
    assert "HTTP 404" in result.stderr.decode(errors="replace")
