"""The outbox's throughput: online against plain ``call()``, and draining after an outage.

    python benchmarks/outbox.py [--messages 2000] [--backlog 10000] [--rounds 3]

A CSMS runs in a subprocess (``serve_ocpp`` on a loopback port, answering
1.6 MeterValues ``{}``); the station runs here, ``call_concurrency=1``.
Workloads, each a median of ``--rounds``:

- ``call()``: plain calls, no outbox (the reference);
- outbox, one at a time: ``call()`` of a transaction MeterValues through the
  outbox (stored, sent, answered, deleted; the caller waits for each);
- outbox, streaming: one task enqueues every message (each ``enqueue``
  returns once stored) while the drain loop sends them; the time until the
  last is answered;
- drain after an outage: ``--backlog`` messages queued while the CSMS was
  unreachable, then the time from starting the client to an empty queue.

The outbox runs on the default SQLite store with ``synchronous=FULL``
(every commit synced: survives a power cut) and ``NORMAL`` (survives a
crash of the process), and on the in-memory store (the outbox's own cost).
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from ocpp_trio import HandlerContext, OCPPConnection, open_ocpp_client, serve_ocpp
from ocpp_trio.outbox import MemoryStore, Outbox, OutboxStore, SQLiteStore

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
METER: dict[str, Any] = {
    "connectorId": 1,
    "transactionId": 1,
    "meterValue": [
        {"timestamp": "2024-01-01T00:00:00Z", "sampledValue": [{"value": "1000", "unit": "Wh"}]}
    ],
}


# --- the CSMS (subprocess) ------------------------------------------------------


async def _serve(port: int) -> None:
    async def on_station(conn: OCPPConnection) -> None:
        def answer(ctx: HandlerContext) -> dict[str, Any]:
            if ctx.method == "BootNotification":
                return {
                    "status": "Accepted",
                    "currentTime": "2024-01-01T00:00:00Z",
                    "interval": 300,
                }
            return {}

        conn.handle(answer)

    await serve_ocpp(on_station, port, host="127.0.0.1", ping_interval=0)


# --- the station --------------------------------------------------------------------


def _options(port: int) -> dict[str, Any]:
    return {"ping_interval": 0, "call_concurrency": 1, "call_timeout": 60}


def _url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/ocpp"


async def plain_calls(port: int, n: int) -> float:
    async with open_ocpp_client(_url(port), identity="PLAIN", **_options(port)) as client:
        await client.call("BootNotification", BOOT)
        started = time.perf_counter()
        for _ in range(n):
            await client.call("MeterValues", METER)
        return n / (time.perf_counter() - started)


async def outbox_one_at_a_time(port: int, n: int, store: OutboxStore) -> float:
    outbox = Outbox(store)
    async with open_ocpp_client(
        _url(port), identity="ONE", outbox=outbox, **_options(port)
    ) as client:
        await client.call("BootNotification", BOOT)
        started = time.perf_counter()
        for _ in range(n):
            await client.call("MeterValues", METER)  # routed through the outbox
        return n / (time.perf_counter() - started)


async def outbox_streaming(port: int, n: int, store: OutboxStore) -> float:
    outbox = Outbox(store)
    async with open_ocpp_client(
        _url(port), identity="STREAM", outbox=outbox, **_options(port)
    ) as client:
        await client.call("BootNotification", BOOT)
        started = time.perf_counter()
        last = None
        for _ in range(n):
            last = await client.enqueue("MeterValues", METER)
        assert last is not None
        await last.result()
        return n / (time.perf_counter() - started)


async def drain_backlog(
    port: int, n: int, make_store: Callable[[], OutboxStore]
) -> tuple[float, float]:
    """(enqueue rate offline, drain rate) for ``n`` messages."""
    store = make_store()
    dead = _free_port()  # nothing listens there: the station is offline
    outbox = Outbox(store, station="BACKLOG")
    async with open_ocpp_client(
        _url(dead),
        identity="BACKLOG",
        outbox=outbox,
        wait_connected=False,
        backoff_min=60,
        backoff_max=60,
        **_options(dead),
    ) as client:
        started = time.perf_counter()
        for _ in range(n):
            await client.enqueue("MeterValues", METER)
        enqueue_rate = n / (time.perf_counter() - started)
    if isinstance(store, SQLiteStore):
        store = SQLiteStore(store.path, synchronous=store.synchronous)  # a "restart"
    outbox = Outbox(store, station="BACKLOG")
    started = time.perf_counter()
    async with open_ocpp_client(
        _url(port), identity="BACKLOG", outbox=outbox, **_options(port)
    ) as client:
        await client.call("BootNotification", BOOT)
        last = outbox.pending()[-1].seq
        await outbox.handle(last).result()
        drain_rate = n / (time.perf_counter() - started)
        assert len(outbox) == 0
    await store.aclose()
    return enqueue_rate, drain_rate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _timed(fn: Callable[[], Awaitable[float]], rounds: int) -> float:
    return statistics.median([await fn() for _ in range(rounds)])


async def main(args: argparse.Namespace) -> None:
    port = _free_port()
    server = await trio.lowlevel.open_process([sys.executable, __file__, "--serve", str(port)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                await trio.sleep(0.05)
        with tempfile.TemporaryDirectory() as tmp:
            counter = iter(range(10**6))

            def sqlite(sync: str) -> Callable[[], OutboxStore]:
                return lambda: SQLiteStore(Path(tmp) / f"o{next(counter)}.db", synchronous=sync)  # type: ignore[arg-type]

            stores: dict[str, Callable[[], OutboxStore]] = {
                "SQLite, synchronous=FULL": sqlite("FULL"),
                "SQLite, synchronous=NORMAL": sqlite("NORMAL"),
                "memory store": MemoryStore,
            }
            n, rounds = args.messages, args.rounds
            plain = await _timed(lambda: plain_calls(port, n), rounds)
            rows = [("plain `call()`, no outbox", plain, None, None, None)]
            for name, make in stores.items():
                one = await _timed(lambda: outbox_one_at_a_time(port, n, make()), rounds)  # noqa: B023
                stream = await _timed(lambda: outbox_streaming(port, n, make()), rounds)  # noqa: B023
                offline, drain = await drain_backlog(port, args.backlog, make)
                rows.append((name, one, stream, offline, drain))
    finally:
        server.terminate()
        await server.wait()

    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"
    )
    print(f"{args.messages} messages online (median of {args.rounds}); backlog {args.backlog}\n")
    print(
        "| station | online, one at a time (msg/s) | vs plain call() | online, streaming (msg/s) "
        "| enqueue offline (msg/s) | drain after outage (msg/s) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, one, stream, offline, drain in rows:

        def fmt(v: float | None) -> str:
            return "—" if v is None else f"{v:,.0f}"

        print(
            f"| {name} | {fmt(one)} | {plain / one:.2f}x slower | {fmt(stream)} | {fmt(offline)} | {fmt(drain)} |"
            if name != rows[0][0]
            else f"| {name} | {fmt(one)} | 1x | — | — | — |"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        trio.run(_serve, int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    trio.run(main, parser.parse_args())
