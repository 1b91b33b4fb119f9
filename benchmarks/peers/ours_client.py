"""ocpp_trio stations making sequential Heartbeat calls, for the benchmarks."""

from __future__ import annotations

import os
import sys
import time
from contextlib import AsyncExitStack

import trio

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import client_args, report

from ocpp_trio import open_ocpp_client


async def main() -> None:
    args = client_args()
    latencies: list[float] = []
    async with AsyncExitStack() as stack:
        clients = []
        for i in range(args.stations):
            clients.append(
                await stack.enter_async_context(
                    open_ocpp_client(
                        args.url,
                        identity=f"CP{i}",
                        protocols=["ocpp1.6"],
                        strict_mode=args.strict,
                        ping_interval=0,
                        reconnect=False,
                        websocket_backend=os.environ.get("WSB", "websockets"),
                    )
                )
            )
        if args.idle:
            print('{"connected": true}', flush=True)
            await trio.sleep(args.idle)
            return

        async def run(client: object) -> None:
            call = client.call  # type: ignore[attr-defined]
            clock = time.perf_counter
            for _ in range(args.calls):
                t0 = clock()
                await call("Heartbeat", {})
                latencies.append(clock() - t0)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(run, client)
        seconds = time.perf_counter() - start
    report(latencies, seconds)


if __name__ == "__main__":
    trio.run(main)
