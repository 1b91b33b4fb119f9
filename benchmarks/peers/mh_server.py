"""mobilityhouse ocpp 2.1.0 CSMS (asyncio + websockets, library defaults) answering Heartbeat."""

from __future__ import annotations

import asyncio
import logging
import sys

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import announce_port

logging.getLogger("ocpp").setLevel(logging.WARNING)


class CSMS(ChargePoint):
    @on(Action.heartbeat)
    async def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time="2024-01-01T00:00:00Z")


async def handler(ws) -> None:  # type: ignore[no-untyped-def]
    cp = CSMS(ws.request.path.rsplit("/", 1)[-1], ws)
    try:
        await cp.start()
    except websockets.exceptions.ConnectionClosed:
        pass


async def main() -> None:
    async with websockets.serve(
        handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"], ping_interval=None, compression=None
    ) as server:
        announce_port(next(iter(server.sockets)).getsockname()[1])
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
