"""Hostile-load harness: does one hostile station degrade the rest?

    python soak/hostile.py                           # every case, before (faab589) and after
    python soak/hostile.py --cases 1a,5 --duration 20 --baseline faab589
    python soak/hostile.py --no-baseline             # the current tree only

Per case and per server (``--baseline REV`` from a git worktree first on
``PYTHONPATH``, then the current tree), on loopback:

- one CSMS process (``hostile.py server``): our ``OCPPServer``, strict mode
  on, the default options except pings (5 s, pong timeout 10 s) and what a
  case needs; a task in it sleeps 10 ms in a loop and records how late it
  wakes (the event-loop stall); it prints its figures as JSON on SIGTERM;
- in this process: M well-behaved stations (``open_ocpp_client``, OCPP 1.6,
  a Heartbeat a second), a probe opening a new station connection every 2 s
  (connect + one Heartbeat within 5 s), the server's RSS and open file
  descriptors sampled from ``/proc`` every 0.25 s;
- one attacker process (``hostile.py attack CASE``): raw sockets and
  websockets' Sans-I/O ``ClientProtocol``, where our client would refuse to
  misbehave.

Cases:

1a  call flood: ``--flooders`` stations each writing a burst of 3,000
    Heartbeat CALLs in one write, reading the answers, again and again;
1b  the same, never reading (the server's writes back up);
2a  expensive messages: one 2.0.1 station with permessage-deflate sending a
    MeterValues of 62,000 sampled values (~3.6 MB of JSON) once a second,
    an action the CSMS handles;
2b  the same, the CSMS not handling MeterValues;
3   fragments: one station sending a message in 1-byte fragments (millions),
    reconnecting whenever it is closed;
4   security profile 3 (TLS, client certificates from one test CA; every
    station, good or probe, has a certificate naming it): an intruder with
    a valid certificate of its own ("INTRUDER") connects as GOOD000 once a
    second; evictions are the live station's closes with 4000;
5   invalid upgrade requests carrying a live station's identity (GOOD000):
    plain GETs without Upgrade and lower-case ``get`` requests, 30 in all;
    evictions are the live station's closes with 4000;
6   2,000 idle TCP connections that never send a byte (each reopened 1 s
    after the server closes it), ``max_connections=100``, the server's
    RLIMIT_NOFILE 1024.

Nothing here asserts: the figures go to ``--report`` (JSON) and ``--md``
(the tables of ``soak/RESULTS-hostile.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from soak import Lines  # noqa: E402 - the soak's reader of a child's stdout lines

ROOT = HERE.parent
NOW = "2026-01-01T00:00:00Z"
LAG_TICK = 0.01
CASES = ("1a", "1b", "2a", "2b", "3", "4", "5", "6")
VICTIM = "GOOD000"

# --- the CSMS process --------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def server_main(args: argparse.Namespace) -> None:
    if args.nofile:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, hard))
    import ocpp_trio
    from ocpp_trio import OCPPServer

    lags: list[float] = []
    closes: Counter[str] = Counter()
    connections: Counter[str] = Counter()

    def group(ident: str) -> str:
        return ident.rstrip("0123456789") or "?"

    async def on_station(conn: Any) -> None:
        kind = group(conn.identity)
        connections[kind] += 1
        conn.on("close", lambda ev: closes.update([f"{kind} {ev.code}"]))
        conn.handle("Heartbeat", lambda ctx: {"currentTime": NOW})
        conn.handle(
            "BootNotification",
            lambda ctx: {"currentTime": NOW, "interval": 60, "status": "Accepted"},
        )
        if args.handle_meter_values:
            conn.handle("MeterValues", lambda ctx: {})

    options: dict[str, Any] = {"strict_mode": True, "ping_interval": 5.0, "pong_timeout": 10.0}
    if args.max_connections:
        options["max_connections"] = args.max_connections
    if args.tls:
        # Built here with the ssl module alone: the same for both trees.
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(Path(args.tls, "server.pem"))
        ctx.load_verify_locations(Path(args.tls, "ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        options.update(ssl_context=ctx, security_profile=ocpp_trio.SecurityProfile(3))
    server = OCPPServer(on_station, **options)

    async def lag_monitor() -> None:
        while True:
            started = time.perf_counter()
            await trio.sleep(LAG_TICK)
            lags.append(max(0.0, time.perf_counter() - started - LAG_TICK))

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(server.listen, 0, "127.0.0.1"))
            nursery.start_soon(lag_monitor)
            print(f"port {server.port}", flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    print(
        "result "
        + json.dumps(
            {
                "ocpp_trio": ocpp_trio.__file__,
                "lag_max_ms": round(max(lags, default=0.0) * 1000, 1),
                "lag_p99_ms": round(percentile(lags, 0.99) * 1000, 1),
                "lag_p50_ms": round(percentile(lags, 0.5) * 1000, 2),
                "lag_samples": len(lags),
                "connections": dict(connections),
                "closes": dict(closes),
            }
        ),
        flush=True,
    )


# --- raw WebSocket pieces for the attackers ----------------------------------------------

MASK = b"\x37\xfa\x21\x3d"


def client_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One masked client frame (a fixed key: the server must not care)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
    if n == 0:
        return head + MASK
    key = (MASK * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + MASK + body


class FrameReader:
    """Server frames (unmasked): counts data frames, keeps control frames."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> tuple[int, list[tuple[int, bytes]]]:
        buf = self.buf
        buf += data
        pos, count, control = 0, 0, []
        end = len(buf)
        while end - pos >= 2:
            b0, n = buf[pos], buf[pos + 1] & 0x7F
            h = 2
            if n == 126:
                if end - pos < 4:
                    break
                n, h = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if end - pos < 10:
                    break
                n, h = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if end - pos < h + n:
                break
            op = b0 & 0x0F
            if op >= 8:
                control.append((op, bytes(buf[pos + h : pos + h + n])))
            elif b0 & 0x80:
                count += 1
            pos += h + n
        del buf[:pos]
        return count, control


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


async def handshake(
    port: int, ident: str, protocol: str = "ocpp1.6", *, deflate: bool = False
) -> tuple[trio.SocketStream, Any]:
    """The opening handshake with websockets' Sans-I/O ClientProtocol."""
    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    from websockets.http11 import Response
    from websockets.uri import parse_uri

    proto = ClientProtocol(
        parse_uri(f"ws://127.0.0.1:{port}/ocpp/{ident}"),
        subprotocols=[protocol],  # type: ignore[list-item]
        extensions=[ClientPerMessageDeflateFactory()] if deflate else None,
        max_size=None,
    )
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        proto.send_request(proto.connect())
        await stream.send_all(b"".join(proto.data_to_send()))
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise Closed(None)
            proto.receive_data(chunk)
            for event in proto.events_received():
                if isinstance(event, Response):
                    if event.status_code != 101 or proto.handshake_exc is not None:
                        raise Closed(event.status_code)
                    return stream, proto
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n


def control_answers(control: list[tuple[int, bytes]]) -> tuple[bytes, int | None]:
    """Pongs to send for the pings; the close code if a close came."""
    out = b""
    for op, payload in control:
        if op == 0x9:
            out += client_frame(0xA, payload)
        elif op == 0x8:
            return out, int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
    return out, None


# --- the attackers -----------------------------------------------------------------------


async def flooder(port: int, n: int, read: bool, tally: Tally, burst_size: int) -> None:
    burst = b"".join(
        client_frame(0x1, f'[2,"f{n}-{i}","Heartbeat",{{}}]'.encode()) for i in range(burst_size)
    )
    while True:
        try:
            stream, _ = await handshake(port, f"FLOOD{n:03d}")
        except (OSError, trio.BrokenResourceError, Closed) as exc:
            tally.add(f"connect failed ({type(exc).__name__})")
            await trio.sleep(1)
            continue
        tally.add("connections")
        reader = FrameReader()
        try:
            async with stream:
                while True:
                    with trio.move_on_after(20) as scope:
                        await stream.send_all(burst)
                    if scope.cancelled_caught:
                        tally.add("write stuck 20 s: reconnect")
                        break
                    tally.add("bursts sent")
                    if not read:
                        continue
                    got = 0
                    with trio.move_on_after(10):
                        while got < burst_size:
                            chunk = await stream.receive_some(1 << 18)
                            if not chunk:
                                raise Closed(1006)
                            count, control = reader.feed(chunk)
                            got += count
                            pongs, code = control_answers(control)
                            if pongs:
                                await stream.send_all(pongs)
                            if code is not None:
                                raise Closed(code)
                    tally.add("answers read", got)
        except Closed as exc:
            tally.add(f"closed {exc.code}")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            tally.add("closed (socket error)")
        await trio.sleep(0.5)


def meter_values(n: int) -> bytes:
    values = ",".join(
        f'{{"value":{i // 64}.0,"measurand":"Energy.Active.Import.Register"}}' for i in range(n)
    )
    return (
        '{"evseId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z","sampledValue":['
        + values
        + "]}]}"
    ).encode()


async def ws_reader(
    stream: trio.SocketStream, proto: Any, tally: Tally, sending: trio.Lock
) -> None:
    """Read with the Sans-I/O protocol (it answers pings); raise Closed at the end."""
    while True:
        chunk = await stream.receive_some(1 << 18)
        if chunk:
            proto.receive_data(chunk)
        else:
            proto.receive_eof()
        for event in proto.events_received():
            if event.opcode.name == "TEXT":
                tally.add("answers " + ("error" if event.data[:2] == b"[4" else "result"))
        out = proto.data_to_send()
        if out and out[-1] != b"":
            async with sending:
                await stream.send_all(b"".join(out))
        if proto.close_rcvd is not None or not chunk:
            raise Closed(proto.close_rcvd.code if proto.close_rcvd else 1006)


async def expensive(port: int, tally: Tally, samples: int) -> None:
    payload = meter_values(samples)
    tally.counts["message bytes"] = len(payload)
    seq = 0
    while True:
        try:
            stream, proto = await handshake(port, "HEAVY000", "ocpp2.0.1", deflate=True)
        except (OSError, trio.BrokenResourceError, Closed) as exc:
            tally.add(f"connect failed ({exc!r})")
            await trio.sleep(1)
            continue
        tally.add("connections")
        tally.counts["deflate negotiated"] = int(bool(proto.extensions))
        try:
            async with stream, trio.open_nursery() as nursery:
                sending = trio.Lock()
                nursery.start_soon(ws_reader, stream, proto, tally, sending)
                while True:
                    seq += 1
                    started = time.perf_counter()
                    proto.send_text(f'[2,"m{seq}","MeterValues",'.encode() + payload + b"]")
                    data = b"".join(proto.data_to_send())
                    tally.counts["wire bytes"] = len(data)
                    async with sending:
                        await stream.send_all(data)
                    tally.add("sent")
                    await trio.sleep(max(0.0, 1.0 - (time.perf_counter() - started)))
        except* Closed as group:
            for exc in group.exceptions:
                tally.add(f"closed {exc.code}")  # type: ignore[attr-defined]
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            tally.add("closed (socket error)")
        await trio.sleep(0.5)


async def fragments(port: int, tally: Tally, per_message: int) -> None:
    chunk_frames = 100_000
    chunk = client_frame(0x0, b" ", fin=False) * chunk_frames
    first = client_frame(0x1, b'[2,"x","Heartbeat",{', fin=False)
    last = client_frame(0x0, b"}]", fin=True)
    while True:
        try:
            stream, _ = await handshake(port, "FRAG000")
        except (OSError, trio.BrokenResourceError, Closed) as exc:
            tally.add(f"connect failed ({type(exc).__name__})")
            await trio.sleep(1)
            continue
        tally.add("connections")
        reader = FrameReader()
        started = time.perf_counter()
        try:
            async with stream:
                await stream.send_all(first)
                sent = 0
                while sent < per_message:
                    await stream.send_all(chunk)
                    sent += chunk_frames
                    tally.add("fragments sent", chunk_frames)
                    with trio.move_on_after(0):
                        data = await stream.receive_some(65536)
                        if not data:
                            raise Closed(1006)
                        _, control = reader.feed(data)
                        pongs, code = control_answers(control)
                        if pongs:
                            await stream.send_all(pongs)
                        if code is not None:
                            raise Closed(code)
                await stream.send_all(last)
                tally.add("messages completed")
                with trio.move_on_after(10):
                    while data := await stream.receive_some(65536):
                        count, control = reader.feed(data)
                        if count:
                            tally.add("completed message answered")
                            break
                        if control_answers(control)[1] is not None:
                            raise Closed(control_answers(control)[1])
        except Closed as exc:
            tally.add(f"closed {exc.code}")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            tally.add("closed (socket error)")
        tally.counts["last connection s"] = round(time.perf_counter() - started, 1)
        await trio.sleep(0.5)


BAD_UPGRADES = {
    "no Upgrade": (
        "GET /ocpp/{ident} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    ),
    "lower-case get": (
        "get /ocpp/{ident} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    ),
}


async def status_line(stream: trio.abc.Stream, request: bytes) -> str:
    """Send ``request``; the first line of the answer (within 5 s), or "(closed)"."""
    await stream.send_all(request)
    head = b""
    with trio.move_on_after(5):
        while b"\r\n" not in head:
            data = await stream.receive_some(4096)
            if not data:
                break
            head += data
    return head.split(b"\r\n")[0].decode(errors="replace")[:40] or "(closed)"


async def bad_upgrades(port: int, tally: Tally, total: int, every: float) -> None:
    kinds = list(BAD_UPGRADES)
    for i in range(total):
        kind = kinds[i % len(kinds)]
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                request = BAD_UPGRADES[kind].format(ident=VICTIM).encode()
                status = await status_line(stream, request)
        except (OSError, trio.BrokenResourceError) as exc:
            status = f"({type(exc).__name__})"
        tally.add(f"{kind}: {status}")
        await trio.sleep(every)


async def idle_conn(port: int, tally: Tally) -> None:
    while True:
        try:
            with trio.fail_after(5):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
        except (OSError, trio.TooSlowError) as exc:
            tally.add(f"connect failed ({type(exc).__name__})")
            await trio.sleep(1)
            continue
        tally.add("opened")
        tally.add("open now")
        try:
            async with stream:
                while await stream.receive_some(4096):
                    pass
            tally.add("closed by server")
        except (trio.BrokenResourceError, OSError):
            tally.add("reset by server")
        tally.add("open now", -1)
        await trio.sleep(1)


async def intruder(port: int, tally: Tally, tls_dir: str) -> None:
    """Profile 3: a valid certificate of another name, used as GOOD000's, once a second."""
    import ssl

    ctx = ssl.create_default_context(cafile=str(Path(tls_dir, "ca.pem")))
    ctx.load_cert_chain(Path(tls_dir, "INTRUDER.pem"))
    request = (
        f"GET /ocpp/{VICTIM} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    ).encode()
    while True:
        try:
            tcp = await trio.open_tcp_stream("127.0.0.1", port)
            async with trio.SSLStream(tcp, ctx, server_hostname="127.0.0.1") as stream:
                status = await status_line(stream, request)
        except (OSError, trio.BrokenResourceError) as exc:
            status = f"({type(exc).__name__})"
        tally.add(f"as {VICTIM}: {status}")
        await trio.sleep(1)


async def attack_main(args: argparse.Namespace) -> None:
    tally = Tally()
    port = args.port
    with trio.move_on_after(args.duration):
        async with trio.open_nursery() as nursery:
            if args.case in ("1a", "1b"):
                for n in range(args.flooders):
                    nursery.start_soon(flooder, port, n, args.case == "1a", tally, args.burst)
            elif args.case in ("2a", "2b"):
                nursery.start_soon(expensive, port, tally, args.samples)
            elif args.case == "3":
                nursery.start_soon(fragments, port, tally, args.fragments)
            elif args.case == "4":
                nursery.start_soon(intruder, port, tally, args.tls)
            elif args.case == "5":
                every = max(0.2, (args.duration - 5) / args.bad_upgrades)
                nursery.start_soon(bad_upgrades, port, tally, args.bad_upgrades, every)
            elif args.case == "6":
                _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                for i in range(args.idle):
                    nursery.start_soon(idle_conn, port, tally)
                    if i % 100 == 99:
                        await trio.sleep(0.05)
            else:
                raise SystemExit(f"unknown case {args.case}")
    print("result " + json.dumps(dict(tally.counts)), flush=True)


# --- this process: good stations, the probe, samplers ------------------------------------


@dataclass
class Good:
    recording: bool = False
    ok: int = 0
    failed: int = 0
    timeouts: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    closes: Counter[int] = field(default_factory=Counter)
    victim_closes: Counter[int] = field(default_factory=Counter)
    connected: set[str] = field(default_factory=set)


def tls_options(tls_dir: str | None, ident: str) -> dict[str, Any]:
    """Profile 3 client options for ``ident`` (its own certificate), or none."""
    if tls_dir is None:
        return {}
    import ssl

    ctx = ssl.create_default_context(cafile=str(Path(tls_dir, "ca.pem")))
    ctx.load_cert_chain(Path(tls_dir, f"{ident}.pem"))
    return {"ssl_context": ctx, "security_profile": 3}


async def good_station(url: str, ident: str, good: Good, tls_dir: str | None = None) -> None:
    from ocpp_trio import CallTimeout, open_ocpp_client

    def on_close(ev: Any) -> None:
        good.connected.discard(ident)
        if good.recording:
            good.closes[ev.code] += 1
            if ident == VICTIM:
                good.victim_closes[ev.code] += 1

    def setup(client: Any) -> None:
        client.on("close", on_close)
        client.on("open", lambda *_: good.connected.add(ident))

    async with open_ocpp_client(
        url,
        identity=ident,
        setup=setup,
        call_timeout=5.0,
        backoff_min=0.5,
        backoff_max=2.0,
        retry_initial_connect=True,
        **tls_options(tls_dir, ident),
    ) as client:
        good.connected.add(ident)
        next_at = trio.current_time()
        while True:
            next_at = max(next_at + 1.0, trio.current_time())
            await trio.sleep_until(next_at)
            recording = good.recording
            started = time.perf_counter()
            try:
                await client.call("Heartbeat", {})
                outcome = "ok"
            except CallTimeout:
                outcome = "timeout"
            except Exception as exc:
                outcome = type(exc).__name__
            if not recording:
                continue
            if outcome == "ok":
                good.ok += 1
                good.latencies.append(time.perf_counter() - started)
            elif outcome == "timeout":
                good.timeouts += 1
            else:
                good.failed += 1
                good.errors[outcome] += 1


@dataclass
class Probe:
    ok: int = 0
    timeouts: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


async def probe_once(url: str, n: int, probe: Probe, tls_dir: str | None) -> None:
    from ocpp_trio import open_ocpp_client

    started = time.perf_counter()
    try:
        with trio.move_on_after(5) as scope:
            async with open_ocpp_client(
                url,
                identity=f"PROBE{n}",
                reconnect=False,
                connect_timeout=5.0,
                call_timeout=5.0,
                **tls_options(tls_dir, f"PROBE{n}"),
            ) as client:
                await client.call("Heartbeat", {})
                probe.ok += 1
                probe.latencies.append(time.perf_counter() - started)
        if scope.cancelled_caught:
            probe.timeouts += 1
    except Exception as exc:
        probe.failed[type(exc).__name__] += 1


async def run_probe(url: str, probe: Probe, tls_dir: str | None) -> None:
    async with trio.open_nursery() as nursery:
        n = 0
        while True:
            nursery.start_soon(probe_once, url, n, probe, tls_dir)
            n += 1
            await trio.sleep(2)


def make_pki(args: argparse.Namespace, where: Path) -> str:
    """A test CA (trustme), the CSMS's certificate, and one per station naming it."""
    import trustme

    where.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(where / "server.pem"))
    names = [f"GOOD{i:03d}" for i in range(args.stations)]
    names += [f"PROBE{n}" for n in range(int((args.duration + args.warmup + args.settle) / 2) + 30)]
    for name in [*names, "INTRUDER"]:
        leaf = ca.issue_cert(name, common_name=name)
        leaf.private_key_and_cert_chain_pem.write_to_path(str(where / f"{name}.pem"))
    return str(where)


def proc_status(pid: int) -> tuple[int, int]:
    """(RSS kB, open fds) of ``pid``."""
    rss = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0, 0
    return rss, fds


async def stop(proc: trio.Process, bound: float) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    with trio.move_on_after(bound):
        await proc.wait()
        return
    proc.kill()
    await proc.wait()


async def run_case(
    case: str, args: argparse.Namespace, env: dict[str, str], label: str
) -> dict[str, Any]:
    me = [sys.executable, str(HERE / "hostile.py")]
    cmd = [*me, "server"]
    if case == "2b":
        cmd.append("--no-meter-values")
    if case == "6":
        cmd += ["--max-connections", "100", "--nofile", "1024"]
    tls_dir = None
    if case == "4":
        tls_dir = make_pki(args, Path(args.logs) / "hostile-pki")
        cmd += ["--tls", tls_dir]
    log_path = Path(args.logs) / f"server-{case}-{label}.log"
    with log_path.open("wb") as log:
        server = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE, stderr=log, env=env)
    assert server.stdout is not None
    lines = Lines(server.stdout)
    with trio.fail_after(60):
        port = int((await lines.until("port ")).split()[1])
    url = f"{'wss' if tls_dir else 'ws'}://127.0.0.1:{port}/ocpp"
    good = Good()
    probe = Probe()
    samples: list[tuple[float, int, int]] = []
    attack_out: dict[str, Any] = {}
    result: dict[str, Any] = {"case": case, "server": label}
    async with trio.open_nursery() as nursery:
        for i in range(args.stations):
            nursery.start_soon(good_station, url, f"GOOD{i:03d}", good, tls_dir)
        with trio.move_on_after(20):
            while len(good.connected) < args.stations:  # noqa: ASYNC110
                await trio.sleep(0.1)
        await trio.sleep(args.warmup)
        result["good_connected_before"] = len(good.connected)
        rss0, fds0 = proc_status(server.pid)

        async def sampler() -> None:
            t0 = time.monotonic()
            while True:
                rss, fds = proc_status(server.pid)
                samples.append((round(time.monotonic() - t0, 2), rss, fds))
                await trio.sleep(0.25)

        nursery.start_soon(sampler)
        good.recording = True
        nursery.start_soon(run_probe, url, probe, tls_dir)
        attack_cmd = [*me, "attack", case, "--port", str(port), "--duration", str(args.duration)]
        attack_cmd += ["--flooders", str(args.flooders), "--burst", str(args.burst)]
        attack_cmd += ["--samples", str(args.samples), "--fragments", str(args.fragments)]
        attack_cmd += ["--idle", str(args.idle), "--bad-upgrades", str(args.bad_upgrades)]
        if tls_dir:
            attack_cmd += ["--tls", tls_dir]
        attacker = await trio.lowlevel.open_process(attack_cmd, stdout=subprocess.PIPE)
        assert attacker.stdout is not None
        try:
            with trio.fail_after(args.duration + 20):
                line = await Lines(attacker.stdout).until("result ")
            attack_out = json.loads(line.split(" ", 1)[1])
        except (trio.TooSlowError, RuntimeError) as exc:
            attack_out = {"error": repr(exc)}
        await stop(attacker, 5)
        await trio.sleep(args.settle)
        good.recording = False
        result["good_connected_after"] = len(good.connected)
        rss1, fds1 = proc_status(server.pid)
        nursery.cancel_scope.cancel()
    await stop(server, 10)
    try:
        with trio.fail_after(5):
            line = await lines.until("result ")
        result["server_report"] = json.loads(line.split(" ", 1)[1])
    except (trio.TooSlowError, RuntimeError) as exc:
        result["server_report"] = {"error": repr(exc)}
    lat = good.latencies
    peak_rss = max((s[1] for s in samples), default=rss0)
    result.update(
        good_ok=good.ok,
        good_failed=good.failed,
        good_timeouts=good.timeouts,
        good_errors=dict(good.errors),
        good_p50_ms=round(percentile(lat, 0.5) * 1000, 1),
        good_p99_ms=round(percentile(lat, 0.99) * 1000, 1),
        good_max_ms=round(max(lat, default=math.nan) * 1000, 1),
        good_closes={str(k): v for k, v in good.closes.items()},
        victim_closes={str(k): v for k, v in good.victim_closes.items()},
        probe_ok=probe.ok,
        probe_timeouts=probe.timeouts,
        probe_failed=dict(probe.failed),
        probe_p50_ms=round(percentile(probe.latencies, 0.5) * 1000, 1),
        rss_before_mb=round(rss0 / 1024, 1),
        rss_peak_mb=round(peak_rss / 1024, 1),
        rss_end_mb=round(rss1 / 1024, 1),
        fds_before=fds0,
        fds_max=max((s[2] for s in samples), default=fds0),
        fds_end=fds1,
        attacker=attack_out,
        server_log_lines=len(log_path.read_bytes().splitlines()),
        server_log=str(log_path),
    )
    return result


# --- the report --------------------------------------------------------------------------

TITLES = {
    "1a": "1a. call flood, answers read",
    "1b": "1b. call flood, answers never read",
    "2a": "2a. expensive messages: 2.0.1 MeterValues, 62,000 sampled values, handled",
    "2b": "2b. expensive messages: the same, action not handled by the CSMS",
    "3": "3. fragments: one message in 1-byte fragments",
    "4": "4. profile 3: another station's identity with a valid certificate of its own",
    "5": "5. invalid upgrade requests with a live station's identity",
    "6": "6. 2,000 idle TCP connections, max_connections=100, RLIMIT_NOFILE 1024",
}


def _fmt(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {n}" for k, n in v.items()) or "0"
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return str(v)


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    s = r.get("server_report", {})
    probe_fail = r["probe_timeouts"] + sum(r["probe_failed"].values())
    out = [
        ("good calls ok", _fmt(r["good_ok"])),
        ("good calls failed (of which timeouts)", f"{r['good_failed'] + r['good_timeouts']} ({r['good_timeouts']})"),
        ("good call latency p50 / p99 / max (ms)", f"{_fmt(r['good_p50_ms'])} / {_fmt(r['good_p99_ms'])} / {_fmt(r['good_max_ms'])}"),
        ("server loop stall max / p99 (ms)", f"{_fmt(s.get('lag_max_ms'))} / {_fmt(s.get('lag_p99_ms'))}"),
        ("probe ok / failed (timeouts)", f"{r['probe_ok']} / {probe_fail} ({r['probe_timeouts']})"),
        ("probe failures by type", _fmt(r["probe_failed"])),
        ("good stations dropped (1006)", _fmt(r["good_closes"].get("1006", 0))),
        ("good stations' closes by code", _fmt(r["good_closes"])),
        ("server RSS before / peak / end (MB)", f"{r['rss_before_mb']} / {r['rss_peak_mb']} / {r['rss_end_mb']}"),
        ("server open fds before / max / end", f"{r['fds_before']} / {r['fds_max']} / {r['fds_end']}"),
    ]  # fmt: skip
    if r["case"] in ("4", "5"):
        out.insert(6, ("live station evicted (4000)", _fmt(r["victim_closes"].get("4000", 0))))
    out.append(("attacker saw", _fmt(r["attacker"])))
    out.append(("server log lines (stderr)", _fmt(r.get("server_log_lines"))))
    out.append(("server saw (closes by group and code)", _fmt(s.get("closes", s.get("error", "")))))
    return out


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Hostile-load results",
        "",
        f"Date: {meta['date']}. Machine: {meta['machine']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Servers: before = {meta['before']}; after = {meta['after']}.",
        "",
        f"Scale: {meta['scale']}",
        "",
    ]
    by = {(r["case"], r["server"]): r for r in results}
    labels = meta["labels"]
    for case in meta["cases"]:
        per = [by.get((case, label)) for label in labels]
        if not any(per):
            continue
        lines += [f"## {TITLES[case]}", ""]
        lines.append("| figure | " + " | ".join(meta["columns"]) + " |")
        lines.append("| --- |" + " --- |" * len(labels))
        table = [dict(rows(r)) if r else {} for r in per]
        keys = list(dict.fromkeys(k for t in table for k in t))
        for k in keys:
            cells = [t.get(k, "-").replace("|", "/") for t in table]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def describe(args: argparse.Namespace, cases: list[str]) -> dict[str, Any]:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Linux {platform.release()}, Python {platform.python_version()}, "
        f"trio {trio.__version__}",
        "command": " ".join(["python", "soak/hostile.py", *sys.argv[1:]]),
        "cases": cases,
        "after": f"the current tree (HEAD {head} plus the working tree)",
        "scale": (
            f"{args.stations} good stations (OCPP 1.6, a Heartbeat a second, call timeout 5 s; "
            f"the CSMS pings at 5 s, pong timeout 10 s); probe every 2 s (connect + Heartbeat "
            f"within 5 s); attack {args.duration:.0f} s per case, figures over the attack + "
            f"{args.settle:.0f} s; 1a/1b: {args.flooders} flooders x {args.burst:,} CALLs per "
            f"write; 2: {args.samples:,} sampled values; 3: up to {args.fragments:,} fragments "
            f"per message; 5: {args.bad_upgrades} requests; 6: {args.idle:,} idle connections"
        ),
    }
    import websockets

    meta["machine"] += f", websockets {websockets.__version__}"
    return meta


async def orchestrate(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from contextlib import ExitStack

    from baseline import baseline_worktree, check_import, pythonpath_env

    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            raise SystemExit(f"unknown case {c!r} (known: {', '.join(CASES)})")
    servers: list[tuple[str, dict[str, str]]] = []
    meta = describe(args, cases)
    with ExitStack() as stack:
        if args.baseline:
            base = stack.enter_context(baseline_worktree(args.baseline))
            env = pythonpath_env(base)
            check_import(base, env)
            servers.append(("before", env))
            meta["before"] = base.describe()
        else:
            meta["before"] = "(not run)"
        servers.append(("after", dict(os.environ)))
        meta["labels"] = [label for label, _ in servers]
        meta["columns"] = [
            f"before ({args.baseline})" if label == "before" else "after"
            for label in meta["labels"]
        ]
        results: list[dict[str, Any]] = []
        started = time.monotonic()
        for case in cases:
            for label, env in servers:
                t0 = time.monotonic()
                r = await run_case(case, args, env, label)
                results.append(r)
                print(
                    f"[{time.monotonic() - started:5.0f}s] case {case} {label}: "
                    f"{time.monotonic() - t0:.0f}s " + "; ".join(f"{k}={v}" for k, v in rows(r)),
                    flush=True,
                )
    meta["wall_s"] = round(time.monotonic() - started)
    write_outputs(args, meta, results)


def write_outputs(args: argparse.Namespace, meta: dict[str, Any], results: list[Any]) -> None:
    if args.report:
        Path(args.report).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    if args.md:
        Path(args.md).write_text(markdown(results, meta) + "\n")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role")
    srv = sub.add_parser("server", help="(internal) the CSMS process")
    srv.add_argument("--no-meter-values", dest="handle_meter_values", action="store_false")
    srv.add_argument("--max-connections", type=int, default=0)
    srv.add_argument("--nofile", type=int, default=0)
    srv.add_argument("--tls", default=None, help="profile 3 with the PKI in this directory")
    att = sub.add_parser("attack", help="(internal) the attackers of one case")
    att.add_argument("case", choices=CASES)
    att.add_argument("--port", type=int, required=True)
    att.add_argument("--tls", default=None)
    for p in (parser, att):
        p.add_argument("--duration", type=float, default=30.0, help="attack seconds per case")
        p.add_argument("--flooders", type=int, default=20)
        p.add_argument("--burst", type=int, default=3000)
        p.add_argument("--samples", type=int, default=62_000)
        p.add_argument("--fragments", type=int, default=5_000_000)
        p.add_argument("--idle", type=int, default=2000)
        p.add_argument("--bad-upgrades", type=int, default=30)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--baseline", default="faab589")
    parser.add_argument("--no-baseline", dest="baseline", action="store_const", const="")
    parser.add_argument("--logs", default=tempfile.gettempdir(), help="server stderr goes here")
    parser.add_argument("--report", default=str(HERE / "hostile-report.json"))
    parser.add_argument("--md", default=str(HERE / "RESULTS-hostile.md"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    parsed = parse()
    if parsed.role == "server":
        trio.run(server_main, parsed)
    elif parsed.role == "attack":
        trio.run(attack_main, parsed)
    else:
        trio.run(orchestrate, parsed)
