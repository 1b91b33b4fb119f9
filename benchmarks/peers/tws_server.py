"""The transport floor: raw trio-websocket answering Heartbeat CALLs, no OCPP library at all."""

from __future__ import annotations

import json
import sys
from functools import partial

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import HEARTBEAT_RESULT, announce_port


async def handler(request: WebSocketRequest) -> None:
    ws = await request.accept(subprotocol="ocpp1.6")
    try:
        while True:
            message = await ws.get_message()
            frame = json.loads(message)
            await ws.send_message(json.dumps([3, frame[1], HEARTBEAT_RESULT]))
    except ConnectionClosed:
        pass


async def main() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(serve_websocket, handler, "127.0.0.1", 0, ssl_context=None)
        )
        announce_port(server.port)


if __name__ == "__main__":
    trio.run(main)
