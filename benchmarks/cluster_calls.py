"""Cross-instance calls through Redis vs local calls: latency and throughput.

Starts a private ``redis-server`` (free loopback port, persistence off) and
two ``OCPPServer`` instances in this process, each with its own
``RedisAdapter`` (so the routed path is the real one: Redis list, BLMPOP,
answer back), and stations connected to instance B over loopback WebSockets.

- local: ``B.call_station(id, ...)`` (the station's own instance: a direct call);
- cross: ``A.call_station(id, ...)`` (routed through Redis to B and back).

Latency: sequential calls to one station (p50/p99).  Throughput: N stations,
one caller per station (OCPP allows one outstanding call per station), for a
fixed number of calls.  Everything (both servers, stations, redis-server)
shares this machine's cores.  Prints a table; asserts nothing.

    python benchmarks/cluster_calls.py [--calls 2000] [--stations 20]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import socket
import statistics
import subprocess
import time
from contextlib import AsyncExitStack
from typing import Any

import trio

from ocpp_trio import OCPPClient, open_ocpp_client
from ocpp_trio.cluster import RedisAdapter
from ocpp_trio.server import OCPPServer

RESET = {"type": "Soft"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process, port
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise SystemExit("redis-server did not start")


async def latency(server: OCPPServer, identity: str, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        await server.call_station(identity, "Reset", RESET)
        samples.append(time.perf_counter() - start)
    return samples


async def throughput(server: OCPPServer, identities: list[str], calls: int) -> float:
    per_station = max(1, calls // len(identities))

    async def caller(identity: str) -> None:
        for _ in range(per_station):
            await server.call_station(identity, "Reset", RESET)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for identity in identities:
            nursery.start_soon(caller, identity)
    return per_station * len(identities) / (time.perf_counter() - start)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e3


async def main(calls: int, stations: int) -> None:
    redis, port = start_redis()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
            servers = []
            for name in ("A", "B"):
                server = OCPPServer(None, ping_interval=0)
                server.set_adapter(RedisAdapter(url, instance_id=name, key_prefix="bench:"))
                await nursery.start(server.listen, 0, "127.0.0.1")
                servers.append(server)
            a, b = servers
            identities = [f"CP{i}" for i in range(stations)]
            for identity in identities:
                client: OCPPClient = await stack.enter_async_context(
                    open_ocpp_client(
                        f"ws://127.0.0.1:{b.port}/ocpp",
                        identity=identity,
                        protocols=["ocpp1.6"],
                        ping_interval=0,
                    )
                )
                client.handle("Reset", lambda ctx: {"status": "Accepted"})
            await latency(a, identities[0], 200)  # warm up both paths
            await latency(b, identities[0], 200)
            rows = []
            for label, server in (("local (B -> its station)", b), ("cross (A -> B's station)", a)):
                samples = await latency(server, identities[0], calls)
                rate = await throughput(server, identities, calls)
                rows.append((label, pct(samples, 0.5), pct(samples, 0.99), rate))
                rows[-1] += (statistics.fmean(samples) * 1e3,)
            print(f"python {platform.python_version()}, {calls} calls, {stations} stations")
            print(f"{'path':<26}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'calls/s':>10}")
            for label, p50, p99, rate, mean in rows:
                print(f"{label:<26}{p50:>9.3f}{p99:>9.3f}{mean:>9.3f}{rate:>10.0f}")
            await a.close()
            await b.close()
            await stack.aclose()
            nursery.cancel_scope.cancel()
    finally:
        redis.kill()
        redis.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--stations", type=int, default=20)
    args: Any = parser.parse_args()
    trio.run(main, args.calls, args.stations)
