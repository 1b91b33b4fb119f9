"""Shared bits of the benchmark peers: argument parsing and the result line."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from typing import Any

HEARTBEAT_RESULT = {"currentTime": "2024-01-01T00:00:00Z"}
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
BOOT_RESULT = {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300}


def client_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--stations", type=int, default=1)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per station")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument(
        "--idle", type=float, default=0.0, help="hold the connections idle this long"
    )
    parser.add_argument(
        "--connect",
        type=int,
        default=0,
        help="(d): connect this many stations, one BootNotification each, and report the rate",
    )
    parser.add_argument(
        "--concurrency", type=int, default=50, help="(d): connection attempts in flight at most"
    )
    parser.add_argument("--prefix", default="D", help="(d): identities are PREFIX0, PREFIX1...")
    parser.add_argument("--ca", help="(d): PEM file of the CA to trust, for a wss:// URL")
    parser.add_argument(
        "--compression",
        action="store_true",
        help="offer permessage-deflate (ocpp_trio's client; the others keep their defaults)",
    )
    return parser.parse_args(argv)


def server_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strict", action="store_true")
    parser.add_argument(
        "--tls-cert", help="PEM file (key and certificate chain): also serve TLS on a second port"
    )
    return parser.parse_args(argv)


def announce_port(port: int, tls_port: int | None = None) -> None:
    info: dict[str, int] = {"port": port, "pid": os.getpid()}
    if tls_port is not None:
        info["tls_port"] = tls_port
    print(json.dumps(info), flush=True)


def report(latencies: list[float], seconds: float, cpu_s: float, **extra: object) -> None:
    """Print one JSON line: calls, seconds, calls/s, p50/p99 latency in ms, client CPU.

    ``cpu_s`` is the station process's CPU time (user + system) spent while
    the calls ran (``time.process_time()`` around them: start-up and
    connecting are left out).
    """
    latencies.sort()
    n = len(latencies)
    out = {
        "calls": n,
        "seconds": seconds,
        "calls_per_s": n / seconds if seconds else 0.0,
        "p50_ms": 1000 * latencies[n // 2] if n else None,
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None,
        "mean_ms": 1000 * statistics.fmean(latencies) if n else None,
        "client_cpu_s": cpu_s,
        **extra,
    }
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


def report_connect(latencies: list[float], seconds: float, cpu_s: float, **extra: object) -> None:
    """Print one JSON line for (d): stations, seconds, stations/s, p50/p99 connect ms, CPU."""
    latencies.sort()
    n = len(latencies)
    out = {
        "stations": n,
        "seconds": seconds,
        "stations_per_s": n / seconds if seconds else 0.0,
        "p50_ms": 1000 * latencies[n // 2] if n else None,
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None,
        "client_cpu_s": cpu_s,
        **extra,
    }
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


def report_idle(**extra: object) -> None:
    """Print the line that says (c)'s stations are all connected."""
    sys.stdout.write(json.dumps({"connected": True, **extra}) + "\n")
    sys.stdout.flush()


def header(headers: Iterable[tuple[Any, Any]], name: str) -> str:
    """The value of ``name`` (lower case) in response headers, str or bytes pairs; "" if absent."""
    for key, value in headers:
        key = key.decode("latin-1") if isinstance(key, bytes) else key
        if key.lower() == name:
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return ""


async def trio_connect_storm(
    args: argparse.Namespace,
    connect: Callable[[AsyncExitStack, int], Awaitable[Any]],
    extra: dict[str, object] | None = None,
) -> None:
    """(d) for the Trio peers: ``args.connect`` stations, ``args.concurrency`` at a time.

    ``connect(stack, i)`` connects station ``i`` into ``stack`` and has its
    BootNotification answered; every station stays connected until all are in.
    ``extra`` (which ``connect`` may fill in) goes into the result line.
    """
    import time

    import trio

    limiter = trio.CapacityLimiter(args.concurrency)
    latencies: list[float] = []
    all_in = trio.Event()

    async def station(i: int) -> None:
        async with AsyncExitStack() as stack:
            async with limiter:
                t0 = time.perf_counter()
                await connect(stack, i)
                latencies.append(time.perf_counter() - t0)
            if len(latencies) == args.connect:
                all_in.set()
            await all_in.wait()

    cpu0 = time.process_time()
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(args.connect):
            nursery.start_soon(station, i)
        await all_in.wait()
        seconds = time.perf_counter() - start
        cpu_s = time.process_time() - cpu0
    report_connect(latencies, seconds, cpu_s, **(extra or {}))
