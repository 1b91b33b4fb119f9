"""ocpp_trio stations for the benchmarks.

Sequential Heartbeat calls ((a), (b)), idle connections ((c)), or with
``--connect N``, (d): N stations connect (at most ``--concurrency`` at a time),
each sending one BootNotification, and the connection rate is reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import AsyncExitStack

import trio

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import BOOT, client_args, report, trio_connect_storm

from ocpp_trio import open_ocpp_client
from ocpp_trio.security import client_ssl_context


async def connect_many(args: argparse.Namespace) -> None:
    ssl_context = client_ssl_context(cafile=args.ca) if args.ca else None

    async def connect(stack: AsyncExitStack, i: int) -> None:
        client = await stack.enter_async_context(
            open_ocpp_client(
                args.url,
                identity=f"{args.prefix}{i}",
                protocols=["ocpp1.6"],
                strict_mode=args.strict,
                ssl_context=ssl_context,
                ping_interval=0,
                reconnect=False,
                websocket_backend=os.environ.get("WSB", "websockets"),
            )
        )
        await client.call("BootNotification", BOOT)

    await trio_connect_storm(args, connect)


async def main() -> None:
    args = client_args()
    if args.connect:
        await connect_many(args)
        return
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

        cpu0 = time.process_time()
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(run, client)
        seconds = time.perf_counter() - start
        cpu_s = time.process_time() - cpu0
    report(latencies, seconds, cpu_s)


if __name__ == "__main__":
    trio.run(main)
