"""The transport floor's client: raw trio-websocket sending Heartbeat CALLs."""

from __future__ import annotations

import json
import sys
import time
import uuid
from contextlib import AsyncExitStack

import trio
from trio_websocket import open_websocket_url

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import client_args, report


async def main() -> None:
    args = client_args()
    latencies: list[float] = []
    async with AsyncExitStack() as stack:
        conns = [
            await stack.enter_async_context(
                open_websocket_url(f"{args.url}/CP{i}", subprotocols=["ocpp1.6"])
            )
            for i in range(args.stations)
        ]
        if args.idle:
            print('{"connected": true}', flush=True)
            await trio.sleep(args.idle)
            return

        async def run(ws: object) -> None:
            clock = time.perf_counter
            for _ in range(args.calls):
                t0 = clock()
                await ws.send_message(json.dumps([2, str(uuid.uuid4()), "Heartbeat", {}]))  # type: ignore[attr-defined]
                json.loads(await ws.get_message())  # type: ignore[attr-defined]
                latencies.append(clock() - t0)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for ws in conns:
                nursery.start_soon(run, ws)
        seconds = time.perf_counter() - start
    report(latencies, seconds)


if __name__ == "__main__":
    trio.run(main)
