"""The transport floor's client: raw trio-websocket sending OCPP CALLs, no OCPP library.

Sequential Heartbeat calls ((a), (b)), idle connections ((c)), or with
``--connect N``, (d): N stations connect (at most ``--concurrency`` at a time),
each sending one BootNotification, and the connection rate is reported.
trio-websocket offers no extension; each result line still carries the
``Sec-WebSocket-Extensions`` the server answered (``extensions``).
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
import uuid
from contextlib import AsyncExitStack

import trio
from trio_websocket import open_websocket_url

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import BOOT, client_args, header, report, report_idle, trio_connect_storm


async def connect_many(args: argparse.Namespace) -> None:
    ssl_context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    extra: dict[str, object] = {}

    async def connect(stack: AsyncExitStack, i: int) -> None:
        ws = await stack.enter_async_context(
            open_websocket_url(
                f"{args.url}/{args.prefix}{i}",
                subprotocols=["ocpp1.6"],
                ssl_context=ssl_context,
            )
        )
        extra.setdefault("extensions", header(ws.handshake_headers, "sec-websocket-extensions"))
        await ws.send_message(json.dumps([2, str(uuid.uuid4()), "BootNotification", BOOT]))
        json.loads(await ws.get_message())

    await trio_connect_storm(args, connect, extra)


async def main() -> None:
    args = client_args()
    if args.connect:
        await connect_many(args)
        return
    latencies: list[float] = []
    async with AsyncExitStack() as stack:
        conns = [
            await stack.enter_async_context(
                open_websocket_url(f"{args.url}/CP{i}", subprotocols=["ocpp1.6"])
            )
            for i in range(args.stations)
        ]
        negotiated = (
            header(conns[0].handshake_headers, "sec-websocket-extensions") if conns else None
        )
        if args.idle:
            report_idle(extensions=negotiated)
            await trio.sleep(args.idle)
            return

        async def run(ws: object) -> None:
            clock = time.perf_counter
            for _ in range(args.calls):
                t0 = clock()
                await ws.send_message(json.dumps([2, str(uuid.uuid4()), "Heartbeat", {}]))  # type: ignore[attr-defined]
                json.loads(await ws.get_message())  # type: ignore[attr-defined]
                latencies.append(clock() - t0)

        cpu0 = time.process_time()
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for ws in conns:
                nursery.start_soon(run, ws)
        seconds = time.perf_counter() - start
        cpu_s = time.process_time() - cpu0
    report(latencies, seconds, cpu_s, extensions=negotiated)


if __name__ == "__main__":
    trio.run(main)
