"""ocpp_trio CSMS answering Heartbeat (sync handler), for the benchmarks."""

from __future__ import annotations

import os
import sys
from functools import partial

import trio

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import HEARTBEAT_RESULT, announce_port, server_args

from ocpp_trio import OCPPConnection, serve_ocpp


async def on_station(conn: OCPPConnection) -> None:
    conn.handle("Heartbeat", lambda ctx: HEARTBEAT_RESULT)


async def main() -> None:
    args = server_args()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_ocpp,
                on_station,
                0,
                host="127.0.0.1",
                protocols=["ocpp1.6"],
                strict_mode=args.strict,
                ping_interval=0,
                max_connections=100_000,
                websocket_backend=os.environ.get("WSB", "websockets"),
                compression=os.environ.get("COMP", "1") == "1",
            )
        )
        announce_port(server.port)


if __name__ == "__main__":
    trio.run(main)
