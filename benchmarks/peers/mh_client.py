"""mobilityhouse ocpp 2.1.0 stations (asyncio + websockets, library defaults) calling Heartbeat."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import websockets
from ocpp.v16 import ChargePoint, call

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import client_args, report

logging.getLogger("ocpp").setLevel(logging.WARNING)


async def main() -> None:
    args = client_args()
    latencies: list[float] = []
    conns = []
    tasks = []
    for i in range(args.stations):
        ws = await websockets.connect(
            f"{args.url}/CP{i}", subprotocols=["ocpp1.6"], ping_interval=None, compression=None
        )
        cp = ChargePoint(f"CP{i}", ws)
        tasks.append(asyncio.create_task(cp.start()))
        conns.append((ws, cp))
    if args.idle:
        print('{"connected": true}', flush=True)
        await asyncio.sleep(args.idle)
    else:

        async def run(cp: ChargePoint) -> None:
            clock = time.perf_counter
            for _ in range(args.calls):
                t0 = clock()
                await cp.call(call.Heartbeat())
                latencies.append(clock() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(run(cp) for _, cp in conns))
        seconds = time.perf_counter() - start
        report(latencies, seconds)
    for task in tasks:
        task.cancel()
    for ws, _ in conns:
        await ws.close()


if __name__ == "__main__":
    asyncio.run(main())
