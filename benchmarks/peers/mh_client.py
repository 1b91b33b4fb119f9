"""mobilityhouse ocpp 2.1.0 stations (asyncio + websockets, library defaults).

Sequential Heartbeat calls ((a), (b)), idle connections ((c)), or with
``--connect N``, (d): N stations connect (at most ``--concurrency`` at a time),
each sending one BootNotification, and the connection rate is reported.
Compression is off (no permessage-deflate offered); each result line carries
the ``Sec-WebSocket-Extensions`` the server answered (``extensions``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
import time

import websockets
from ocpp.v16 import ChargePoint, call

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import client_args, report, report_connect, report_idle

logging.getLogger("ocpp").setLevel(logging.WARNING)


def extensions(ws: websockets.ClientConnection) -> str:
    """The server's answer to a permessage-deflate offer ("" when none was taken)."""
    response = ws.response
    return response.headers.get("Sec-WebSocket-Extensions", "") if response else ""


async def connect_many(args: argparse.Namespace) -> None:
    context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    limit = asyncio.Semaphore(args.concurrency)
    latencies: list[float] = []
    conns: list[tuple[websockets.ClientConnection, asyncio.Task[None]]] = []
    extra: dict[str, object] = {}

    async def station(i: int) -> None:
        async with limit:
            t0 = time.perf_counter()
            ws = await websockets.connect(
                f"{args.url}/{args.prefix}{i}",
                subprotocols=["ocpp1.6"],
                ping_interval=None,
                compression=None,
                ssl=context,
            )
            cp = ChargePoint(f"{args.prefix}{i}", ws)
            conns.append((ws, asyncio.create_task(cp.start())))
            extra.setdefault("extensions", extensions(ws))
            await cp.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
            latencies.append(time.perf_counter() - t0)

    cpu0 = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(station(i) for i in range(args.connect)))
    seconds = time.perf_counter() - start
    cpu_s = time.process_time() - cpu0
    report_connect(latencies, seconds, cpu_s, **extra)
    for ws, task in conns:
        task.cancel()
        await ws.close()


async def main() -> None:
    args = client_args()
    if args.connect:
        await connect_many(args)
        return
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
    negotiated = extensions(conns[0][0]) if conns else None
    if args.idle:
        report_idle(extensions=negotiated)
        await asyncio.sleep(args.idle)
    else:

        async def run(cp: ChargePoint) -> None:
            clock = time.perf_counter
            for _ in range(args.calls):
                t0 = clock()
                await cp.call(call.Heartbeat())
                latencies.append(clock() - t0)

        cpu0 = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(run(cp) for _, cp in conns))
        seconds = time.perf_counter() - start
        cpu_s = time.process_time() - cpu0
        report(latencies, seconds, cpu_s, extensions=negotiated)
    for task in tasks:
        task.cancel()
    for ws, _ in conns:
        await ws.close()


if __name__ == "__main__":
    asyncio.run(main())
