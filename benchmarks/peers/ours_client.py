"""ocpp_trio stations for the benchmarks.

Sequential Heartbeat calls ((a), (b)), idle connections ((c)), or with
``--connect N``, (d): N stations connect (at most ``--concurrency`` at a time),
each sending one BootNotification, and the connection rate is reported.

The client's default is not to offer permessage-deflate; ``--compression``
offers it.  Each result line carries the ``Sec-WebSocket-Extensions`` the
server answered on the first connection (``extensions``, "" for none).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import trio

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import BOOT, client_args, header, report, report_idle, trio_connect_storm

from ocpp_trio import OCPPClient, open_ocpp_client
from ocpp_trio.security import client_ssl_context


def options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "protocols": ["ocpp1.6"],
        "strict_mode": args.strict,
        "ping_interval": 0,
        "reconnect": False,
        "websocket_backend": os.environ.get("WSB", "websockets"),
        **({"compression": True} if args.compression else {}),
    }


def extensions(client: OCPPClient) -> str | None:
    """The server's answer to a permessage-deflate offer ("" when it took none).

    None where the connection does not keep the response headers (an older
    ``--baseline`` revision).
    """
    handshake = getattr(client.connection, "handshake", None)
    headers = getattr(handshake, "response_headers", None)
    return None if headers is None else header(headers, "sec-websocket-extensions")


async def connect_many(args: argparse.Namespace) -> None:
    ssl_context = client_ssl_context(cafile=args.ca) if args.ca else None
    extra: dict[str, object] = {}

    async def connect(stack: AsyncExitStack, i: int) -> None:
        client = await stack.enter_async_context(
            open_ocpp_client(
                args.url, identity=f"{args.prefix}{i}", ssl_context=ssl_context, **options(args)
            )
        )
        extra.setdefault("extensions", extensions(client))
        await client.call("BootNotification", BOOT)

    await trio_connect_storm(args, connect, extra)


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
                    open_ocpp_client(args.url, identity=f"CP{i}", **options(args))
                )
            )
        negotiated = extensions(clients[0]) if clients else None
        if args.idle:
            report_idle(extensions=negotiated)
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
    report(latencies, seconds, cpu_s, extensions=negotiated)


if __name__ == "__main__":
    trio.run(main)
