"""How inbound CALLs are dispatched: answered in the reader (sync handler) or in a task (async).

Runs an in-memory station/CSMS pair (real trio-websocket framing over memory
streams, no sockets) and measures, for the CSMS's handler:

- sync handler: answered inline by the reader task (what ocpp_trio does);
- async handler: one task per inbound call (what ocpp_trio does for async);

calls/s over sequential station calls, and the memory one idle connection
pair costs (tracemalloc, both ends).  Prints a table; asserts nothing.

    python benchmarks/inbound_dispatch.py [--calls 5000] [--pairs 200]
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
import tracemalloc
from contextlib import AsyncExitStack
from typing import Any

import trio

from ocpp_trio import HandlerContext
from ocpp_trio.testing import open_memory_pair

NOW = {"currentTime": "2024-01-01T00:00:00Z"}


def sync_handler(ctx: HandlerContext) -> dict[str, Any]:
    return NOW


async def async_handler(ctx: HandlerContext) -> dict[str, Any]:
    return NOW


async def throughput(handler: Any, calls: int) -> float:
    async with open_memory_pair("ocpp1.6") as (station, csms):
        csms.handle("Heartbeat", handler)
        for _ in range(200):
            await station.call("Heartbeat", {})
        start = time.perf_counter()
        for _ in range(calls):
            await station.call("Heartbeat", {})
        return calls / (time.perf_counter() - start)


async def idle_memory(pairs: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    async with AsyncExitStack() as stack:
        for _ in range(pairs):
            _station, csms = await stack.enter_async_context(open_memory_pair("ocpp1.6"))
            csms.handle("Heartbeat", sync_handler)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / pairs / 1024


async def main(calls: int, pairs: int, runs: int) -> None:
    print(
        f"# inbound dispatch, {platform.python_version()} on {platform.machine()}, {time.strftime('%Y-%m-%d')}"
    )
    for name, handler in (
        ("sync (inline in reader)", sync_handler),
        ("async (task per call)", async_handler),
    ):
        rates = [await throughput(handler, calls) for _ in range(runs)]
        print(f"{name:26} {statistics.median(rates):8.0f} calls/s (median of {runs})")
    print(f"idle pair (both ends)      {await idle_memory(pairs):8.1f} KiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    trio.run(main, args.calls, args.pairs, args.runs)
