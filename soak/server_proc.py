"""The soak's CSMS process: a plain and a TLS server, the limits on, a ledger of every call.

Started by ``soak.py`` (``python soak/server_proc.py --out DIR ...``); prints
``ports PLAIN TLS`` once listening; on SIGTERM it closes gracefully (calls in
flight finish, stations get 1001), writes ``server-<incarnation>.json`` and
exits 0.

The ledger, by station identity and message id:
- ``inbound``: every station CALL this process answered, with what it
  answered (``"result"`` or the error code), as sent on the wire;
- ``outbound``: every CALL this process made to a station, with its outcome.
Plus the limits reached, bad messages, handshake refusals and the event-loop
latency samples (a task that sleeps 50 ms and measures how late it wakes).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import trio

from ocpp_trio import (
    CallErrorReceived,
    CallTimeout,
    ConnectionClosed,
    OCPPConnection,
    OCPPServer,
    ProtocolStateError,
    server_ssl_context,
)
from ocpp_trio.events import BadMessageEvent, CallErrorEvent, CallEvent, CallResultEvent, LimitEvent
from ocpp_trio.server import HandshakeRejectedEvent

NOW = "2026-01-01T00:00:00Z"
TICK = 0.05


class Ledger:
    def __init__(self) -> None:
        self.inbound: dict[str, dict[str, str]] = {}
        self.outbound: list[tuple[str, str | None, str]] = []
        self.limits: Counter[str] = Counter()
        self.bad_messages = 0
        self.rejected: Counter[str] = Counter()
        self.connections = 0
        self.lags: list[float] = []
        # (generation, wall seconds, CPU seconds) of the collections of 10 ms or more
        self.gc_pauses: list[tuple[int, float, float]] = []
        self._gc_started = (0.0, 0.0)
        self.gc_collected = [0, 0, 0]  # objects the collector freed (cycles), by generation

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = (time.perf_counter(), time.process_time())
        else:
            self.gc_collected[info["generation"]] += info["collected"]
            took = time.perf_counter() - self._gc_started[0]
            if took >= 0.01:
                cpu = time.process_time() - self._gc_started[1]
                self.gc_pauses.append((info["generation"], round(took, 4), round(cpu, 4)))

    def dump(self) -> dict[str, Any]:
        return {
            "inbound": self.inbound,
            "outbound": self.outbound,
            "limits": dict(self.limits),
            "bad_messages": self.bad_messages,
            "rejected": dict(self.rejected),
            "connections": self.connections,
            "lags": self.lags,
            "gc_pauses": self.gc_pauses,
            "gc_collected": self.gc_collected,
        }


def _reason_kind(event: HandshakeRejectedEvent) -> str:
    if event.reason == "handshake timeout":
        return "timeout"
    return str(event.status) if event.status is not None else event.reason.split(":")[0]


async def on_station(
    ledger: Ledger, rng: random.Random, csms_pace: float, conn: OCPPConnection
) -> None:
    ident = conn.identity
    answered = ledger.inbound.setdefault(ident, {})
    last_out: list[str | None] = [None]
    ledger.connections += 1

    def on_call(ev: CallEvent) -> None:
        if ev.outbound and not ev.is_send:
            last_out[0] = ev.message_id

    def on_result(ev: CallResultEvent) -> None:
        if ev.outbound:
            answered[ev.message_id] = "result"

    def on_error(ev: CallErrorEvent) -> None:
        if ev.outbound:
            answered[ev.message_id] = ev.code

    def on_limit(ev: LimitEvent) -> None:
        ledger.limits[ev.limit] += 1

    def on_bad(ev: BadMessageEvent) -> None:
        ledger.bad_messages += 1

    conn.on("call", on_call)
    conn.on("call_result", on_result)
    conn.on("call_error", on_error)
    conn.on("limit", on_limit)
    conn.on("bad_message", on_bad)

    conn.handle(
        "BootNotification", lambda ctx: {"currentTime": NOW, "interval": 60, "status": "Accepted"}
    )
    conn.handle("Heartbeat", lambda ctx: {"currentTime": NOW})
    conn.handle("StatusNotification", lambda ctx: {})
    conn.handle("MeterValues", lambda ctx: {})
    conn.handle("Authorize", lambda ctx: {"idTagInfo": {"status": "Accepted"}})
    conn.handle(
        "StartTransaction",
        lambda ctx: {"transactionId": rng.randrange(1, 10**6), "idTagInfo": {"status": "Accepted"}},
    )
    conn.handle("StopTransaction", lambda ctx: {})
    conn.handle("TransactionEvent", lambda ctx: {})

    @conn.handle("DataTransfer")
    async def data_transfer(ctx: Any) -> dict[str, Any]:
        if ctx.params.get("vendorId") == "slow":
            await trio.sleep(rng.uniform(0.2, 2.0))  # a slow handler
        return {"status": "Accepted"}

    # The CSMS calls the station too, now and then, one call at a time.
    while True:
        await trio.sleep(rng.uniform(0.4, 1.6) * csms_pace)
        last_out[0] = None
        try:
            with trio.fail_after(conn.options.call_timeout + 5):
                await conn.call("DataTransfer", {"vendorId": "csms", "data": "ping"})
            outcome = "answered"
        except CallErrorReceived as exc:
            outcome = f"error:{exc.code}"
        except CallTimeout:
            outcome = "timeout"
        except (ConnectionClosed, trio.ClosedResourceError):
            outcome = "closed"
        except ProtocolStateError:
            outcome = "refused"
        except trio.TooSlowError:
            outcome = "lost"
        except trio.Cancelled:
            # the connection ended and took its tasks (this one) with it
            ledger.outbound.append((ident, last_out[0], "cancelled"))
            raise
        except Exception as exc:
            outcome = f"unexpected:{type(exc).__name__}"
        ledger.outbound.append((ident, last_out[0], outcome))
        if outcome in ("closed", "lost") or outcome.startswith("unexpected"):
            return


async def lag_monitor(ledger: Ledger) -> None:
    while True:
        started = trio.current_time()
        await trio.sleep(TICK)
        ledger.lags.append(max(0.0, trio.current_time() - started - TICK))


async def main(args: argparse.Namespace) -> None:
    ledger = Ledger()
    gc.callbacks.append(ledger.on_gc)
    rng = random.Random(args.seed)
    options: dict[str, Any] = {
        "ping_interval": args.ping_interval,
        "pong_timeout": args.ping_interval,
        "call_timeout": 5.0,
        "close_timeout": 2.0,
        "max_message_size": args.max_message_size,
        "max_inbound_call_rate": args.max_rate,
        "inbound_call_concurrency": 8,
        "max_bad_messages": 50,
    }
    handler = partial(on_station, ledger, rng, args.csms_pace)
    plain = OCPPServer(handler, handshake_timeout=args.handshake_timeout, **options)
    tls = OCPPServer(
        handler,
        handshake_timeout=args.handshake_timeout,
        ssl_context=server_ssl_context(args.cert, args.key),
        **options,
    )
    for server in (plain, tls):
        server.on("handshake_rejected", lambda ev: ledger.rejected.update([_reason_kind(ev)]))
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lag_monitor, ledger)
            await nursery.start(partial(plain.listen, args.plain_port, "127.0.0.1"))
            await nursery.start(partial(tls.listen, args.tls_port, "127.0.0.1"))
            print(f"ports {plain.port} {tls.port}", flush=True)
            async for _ in signals:
                break
            with trio.move_on_after(15):
                async with trio.open_nursery() as closing:
                    closing.start_soon(partial(plain.close, await_pending=True))
                    closing.start_soon(partial(tls.close, await_pending=True))
            nursery.cancel_scope.cancel()
    out = Path(args.out) / f"server-{args.incarnation}.json"
    out.write_text(json.dumps(ledger.dump()))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="the soak's CSMS process")
    parser.add_argument("--out", required=True)
    parser.add_argument("--incarnation", type=int, default=0)
    parser.add_argument("--plain-port", type=int, default=0)
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ping-interval", type=float, default=3.0)
    parser.add_argument("--handshake-timeout", type=float, default=2.0)
    parser.add_argument("--max-message-size", type=int, default=65536)
    parser.add_argument("--max-rate", type=float, default=20.0)
    parser.add_argument("--csms-pace", type=float, default=2.5)
    return parser.parse_args(argv)


if __name__ == "__main__":
    trio.run(main, parse())
