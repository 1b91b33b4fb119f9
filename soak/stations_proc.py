"""The soak's station process: many simulated stations in one Trio loop, each call accounted.

Started by ``soak.py``; runs until SIGTERM, then lets every station finish
its call, closes them and writes ``stations-<index>.json``:

- ``calls``: ``[identity, message id or null, action, outcome]`` for every
  ``call()`` a station made; the id is the one that went on the wire (null
  when the call failed before it got one, e.g. while reconnecting);
  ``outcome`` is ``answered``, ``error:<code>``, ``timeout``, ``closed``,
  ``refused`` (a client bound), ``lost`` (no outcome within the call's own
  bound plus 5 s: must never happen) or ``unexpected:<type>``;
- ``answered``: the ids of the CSMS's calls the stations answered;
- reconnects, reconnect times, what the misbehaving stations did.

Station kinds, by number: one in ten goes through the fault proxy, one in
ten over TLS; in each process the first four are a flooder (many calls at
once: rate limit and "busy"), an oversize sender (1009), a garbage sender
(bad frames) and a slow caller (slow handlers, short timeouts).
"""

from __future__ import annotations

import argparse
import contextvars
import json
import random
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from ocpp_trio import (
    CallErrorReceived,
    CallTimeout,
    ConnectionClosed,
    OCPPClient,
    ProtocolStateError,
    client_ssl_context,
    open_ocpp_client,
)
from ocpp_trio.events import CallResultEvent, CloseEvent, OpenEvent, ReconnectEvent

NOW = "2026-01-01T00:00:00Z"
CALL_TIMEOUT = 5.0
PROTOCOLS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
GARBAGE = (
    "hello",
    "[]",
    '[2,"x"]',
    '{"a":1}',
    '[2,"g1","Heartbeat",[]]',
    '[7,"g2","X",{}]',
    '[3,"nobody",{}]',
    '[2,"' + "a" * 40 + '","Heartbeat",{}]',
    '[2,"\\ud800","Heartbeat",{}]',
)

_ids: contextvars.ContextVar[list[str]] = contextvars.ContextVar("soak_ids")


def new_id() -> str:
    """uuid4 ids; each is noted in the calling task's box, so a call knows its id."""
    mid = str(uuid.uuid4())
    box = _ids.get(None)
    if box is not None:
        box.append(mid)
    return mid


def payloads(protocol: str, rng: random.Random) -> dict[str, dict[str, Any]]:
    if protocol == "ocpp1.6":
        return {
            "BootNotification": {"chargePointVendor": "Soak", "chargePointModel": "S1"},
            "StatusNotification": {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
            "MeterValues": {
                "connectorId": 1,
                "meterValue": [
                    {"timestamp": NOW, "sampledValue": [{"value": str(rng.randrange(10**6))}]}
                ],
            },
            "StartTransaction": {
                "connectorId": 1,
                "idTag": "TAG1",
                "meterStart": 0,
                "timestamp": NOW,
            },
            "StopTransaction": {"transactionId": 1, "meterStop": 10, "timestamp": NOW},
        }
    return {
        "BootNotification": {
            "chargingStation": {"model": "S1", "vendorName": "Soak"},
            "reason": "PowerUp",
        },
        "StatusNotification": {
            "timestamp": NOW,
            "connectorStatus": "Available",
            "evseId": 1,
            "connectorId": 1,
        },
        "MeterValues": {
            "evseId": 1,
            "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": rng.randrange(10**6)}]}],
        },
        "StartTransaction": {
            "eventType": "Started",
            "timestamp": NOW,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": uuid.uuid4().hex[:20]},
        },
        "StopTransaction": {
            "eventType": "Ended",
            "timestamp": NOW,
            "triggerReason": "StopAuthorized",
            "seqNo": 1,
            "transactionInfo": {"transactionId": uuid.uuid4().hex[:20]},
        },
    }


class Totals:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str, str]] = []
        self.answered: list[tuple[str, str]] = []
        self.reconnects = 0
        self.reconnect_times: list[float] = []
        self.special: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.protocols: Counter[str] = Counter()
        self.crashes: list[str] = []

    def dump(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "answered": self.answered,
            "reconnects": self.reconnects,
            "reconnect_times": self.reconnect_times,
            "special": dict(self.special),
            "kinds": dict(self.kinds),
            "protocols": dict(self.protocols),
            "crashes": self.crashes,
        }


class Station:
    def __init__(
        self, number: int, local: int, args: argparse.Namespace, totals: Totals, stop: trio.Event
    ) -> None:
        self.identity = f"SOAK{number:05d}"
        self.protocol = PROTOCOLS[number % 3]
        self.rng = random.Random(args.seed * 100_003 + number)
        self.totals = totals
        self.stop = stop
        self.args = args
        self.kind = {0: "flood", 1: "oversize", 2: "garbage", 3: "slow"}.get(local, "normal")
        self.url = args.plain_url
        self.tls = False
        if self.kind == "normal" and number % 10 == 5:
            self.kind, self.url = "proxied", args.proxy_url
        elif self.kind == "normal" and number % 10 == 7:
            self.kind, self.url, self.tls = "tls", args.tls_url, True
        totals.kinds[self.kind] += 1
        totals.protocols[self.protocol] += 1
        self.closed_at: float | None = None

    async def call(
        self, client: OCPPClient, action: str, payload: dict[str, Any], timeout: float | None = None
    ) -> str:
        box: list[str] = []
        _ids.set(box)
        bound = (timeout or CALL_TIMEOUT) + 5
        try:
            with trio.fail_after(bound):
                await client.call(action, payload, timeout=timeout)
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
        except Exception as exc:
            outcome = f"unexpected:{type(exc).__name__}"
        self.totals.calls.append((self.identity, box[-1] if box else None, action, outcome))
        return outcome

    def _watch(self, client: OCPPClient) -> None:
        def on_close(ev: CloseEvent) -> None:
            self.closed_at = trio.current_time()

        def on_open(ev: OpenEvent) -> None:
            if ev.reconnected and self.closed_at is not None:
                self.totals.reconnect_times.append(trio.current_time() - self.closed_at)

        def on_reconnect(ev: ReconnectEvent) -> None:
            self.totals.reconnects += 1

        def on_result(ev: CallResultEvent) -> None:
            if ev.outbound:
                self.totals.answered.append((self.identity, ev.message_id))

        client.on("close", on_close)
        client.on("open", on_open)
        client.on("reconnect", on_reconnect)
        client.on("call_result", on_result)

    async def run(self, start_delay: float) -> None:
        """Run the station; a crash is counted (an invariant of the soak), not fatal to the others."""
        try:
            await self._run(start_delay)
        except Exception as exc:
            self.totals.special["station_crashed"] += 1
            self.totals.crashes.append(f"{self.identity}: {exc!r}"[:300])

    async def _run(self, start_delay: float) -> None:
        await trio.sleep(start_delay)
        ssl_context = client_ssl_context(cafile=self.args.ca) if self.tls else None
        concurrency = {"flood": 12, "slow": 12}.get(self.kind, 1)
        async with open_ocpp_client(
            self.url,
            identity=self.identity,
            protocols=[self.protocol],
            ssl_context=ssl_context,
            reconnect=True,
            retry_initial_connect=True,
            backoff_min=0.2,
            backoff_max=2.0,
            connect_timeout=5.0,
            call_timeout=CALL_TIMEOUT,
            call_concurrency=concurrency,
            ping_interval=self.args.ping_interval,
            pong_timeout=self.args.ping_interval,
            id_factory=new_id,
        ) as client:
            self._watch(client)

            @client.handle("DataTransfer")
            async def data_transfer(ctx: Any) -> dict[str, Any]:
                if self.rng.random() < 0.1:
                    await trio.sleep(self.rng.uniform(0.1, 1.0))
                return {"status": "Accepted"}

            data = payloads(self.protocol, self.rng)
            await self.call(client, "BootNotification", data["BootNotification"])
            async with trio.open_nursery() as nursery:
                if self.kind == "flood":
                    for _ in range(concurrency):
                        nursery.start_soon(self._flood, client)
                elif self.kind == "slow":
                    for _ in range(concurrency):
                        nursery.start_soon(self._slow, client)
                nursery.start_soon(self._normal, client)
                await self.stop.wait()
                nursery.cancel_scope.cancel()
            with trio.move_on_after(10):
                await client.close(await_pending=True)

    async def _normal(self, client: OCPPClient) -> None:
        pace = self.args.pace
        while True:
            await trio.sleep(self.rng.uniform(0.5, 1.5) * pace)
            with trio.CancelScope(shield=True):  # a call once started is finished and accounted
                await self._one_normal(client)

    async def _one_normal(self, client: OCPPClient) -> None:
        data = payloads(self.protocol, self.rng)
        roll = self.rng.random()
        if self.kind == "oversize" and roll < 0.15:
            self.totals.special["oversize_sent"] += 1
            big = {"vendorId": "soak", "data": "x" * (self.args.max_message_size + 100)}
            outcome = await self.call(client, "DataTransfer", big)
            if outcome == "closed":
                self.totals.special["oversize_closed"] += 1
            return
        if self.kind == "garbage" and roll < 0.5:
            try:
                await client.send_raw(self.rng.choice(GARBAGE))
                self.totals.special["garbage_sent"] += 1
            except (ConnectionClosed, trio.ClosedResourceError, ProtocolStateError):
                pass
            return
        if roll < 0.3:
            await self.call(client, "Heartbeat", {})
        elif roll < 0.5:
            await self.call(client, "StatusNotification", data["StatusNotification"])
        elif roll < 0.8:
            await self.call(client, "MeterValues", data["MeterValues"])
        else:
            if self.protocol == "ocpp1.6":
                await self.call(client, "StartTransaction", data["StartTransaction"])
                await self.call(client, "StopTransaction", data["StopTransaction"])
            else:
                await self.call(client, "TransactionEvent", data["StartTransaction"])
                await self.call(client, "TransactionEvent", data["StopTransaction"])

    async def _flood(self, client: OCPPClient) -> None:
        while True:
            # bursts of calls as fast as they go, then a pause
            with trio.move_on_after(1.0):
                while True:
                    with trio.CancelScope(shield=True):
                        outcome = await self.call(client, "Heartbeat", {})
                    if outcome.startswith("error:"):
                        self.totals.special["flood_refused"] += 1
                    await trio.sleep(0.05)
            await trio.sleep(3.0)

    async def _slow(self, client: OCPPClient) -> None:
        while True:
            await trio.sleep(self.rng.uniform(0.2, 1.0))
            timeout = self.rng.choice([0.5, 5.0])
            with trio.CancelScope(shield=True):
                outcome = await self.call(
                    client, "DataTransfer", {"vendorId": "slow"}, timeout=timeout
                )
            self.totals.special[f"slow_{outcome.split(':')[0]}"] += 1


async def main(args: argparse.Namespace) -> None:
    totals = Totals()
    stop = trio.Event()
    first = args.index * args.count
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def wait_signal() -> None:
                async for _ in signals:
                    stop.set()
                    return

            nursery.start_soon(wait_signal)
            async with trio.open_nursery() as stations:
                for local in range(args.count):
                    station = Station(first + local, local, args, totals, stop)
                    delay = args.ramp * local / max(1, args.count)
                    stations.start_soon(station.run, delay)
                print("started", flush=True)
            nursery.cancel_scope.cancel()
    (Path(args.out) / f"stations-{args.index}.json").write_text(json.dumps(totals.dump()))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="the soak's station process")
    parser.add_argument("--out", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--plain-url", required=True)
    parser.add_argument("--tls-url", required=True)
    parser.add_argument("--proxy-url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pace", type=float, default=1.0)
    parser.add_argument("--ramp", type=float, default=3.0)
    parser.add_argument("--ping-interval", type=float, default=3.0)
    parser.add_argument("--max-message-size", type=int, default=65536)
    return parser.parse_args(argv)


if __name__ == "__main__":
    trio.run(main, parse())
