"""Soak and chaos run: a CSMS process, station processes, faults on a schedule, nothing lost.

    python soak/soak.py                                  # 200 stations, 30 s
    python soak/soak.py --stations 2000 --processes 8 --duration 600 --report soak.json

Layout (all on loopback):

- one server process (``server_proc.py``): a plain and a TLS ``OCPPServer``
  with the limits on (message size, inbound call rate, handler concurrency,
  handshake timeout, pings); it calls the stations too; restarted once,
  half-way, with SIGTERM (graceful: calls in flight finish, 1001);
- ``--processes`` station processes (``stations_proc.py``), stations mixed
  1.6 / 2.0.1 / 2.1, one in ten over TLS, one in ten through the fault proxy,
  plus in each process a flooder, an oversize sender, a garbage sender and a
  slow caller;
- in this process: the fault proxy (``proxy.py``: drop, delay, stall,
  truncate), handshakes that never finish, half-open peers (handshake, then
  never read again), the server's RSS sampled every half second.

At the end every call is accounted for by message id on both sides:
attempted = answered + failed with an explicit error; lost must be 0.  The
invariants checked (any broken one: exit status 1):

1. no call without an outcome (``lost``) and no unexpected exception type;
2. every call a station saw answered was answered by the server (same id),
   and every CALLERROR a station got is the one the server sent;
3. every CSMS call answered was answered by the station (same id);
4. every fault kind happened at least once, and was survived: unfinished
   handshakes and half-open peers are dropped by the server within their
   bounds; the restart exits 0 and stations reconnect;
5. every process exits 0; the server's RSS does not grow after the warm-up
   (beyond ``--rss-slack``); the event loop's p99 lag is under ``--max-lag``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy import FaultProxy

HERE = Path(__file__).resolve().parent


@dataclass
class Run:
    """What this process saw."""

    rss: list[tuple[float, int, int]] = field(default_factory=list)  # (t, incarnation, kB)
    hung_handshakes: list[float] = field(default_factory=list)  # seconds until dropped
    half_open: list[float] = field(default_factory=list)  # seconds until dropped
    chaos_failures: list[str] = field(default_factory=list)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    restart_downtime: float | None = None
    incarnation: int = 0
    started: float = field(default_factory=time.monotonic)
    proxy_applied: dict[str, int] = field(default_factory=dict)
    proxy_fired: dict[str, int] = field(default_factory=dict)


# --- processes ---------------------------------------------------------------------------


class Lines:
    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def until(self, prefix: str) -> str:
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                if line.decode(errors="replace").startswith(prefix):
                    return line.decode(errors="replace")
            chunk = await self.stream.receive_some()
            if not chunk:
                raise RuntimeError(f"process ended before printing {prefix!r}")
            self.buffer += chunk


async def start_server(
    args: argparse.Namespace,
    out: Path,
    pki: dict[str, str],
    incarnation: int,
    ports: tuple[int, int],
) -> tuple[trio.Process, tuple[int, int]]:
    cmd = [
        sys.executable,
        str(HERE / "server_proc.py"),
        "--out", str(out),
        "--incarnation", str(incarnation),
        "--plain-port", str(ports[0]),
        "--tls-port", str(ports[1]),
        "--cert", pki["cert"],
        "--key", pki["key"],
        "--seed", str(args.seed + incarnation),
        "--ping-interval", str(args.ping_interval),
        "--handshake-timeout", str(args.handshake_timeout),
        "--max-message-size", str(args.max_message_size),
        "--max-rate", str(args.max_rate),
        "--csms-pace", str(args.csms_pace),
    ]  # fmt: skip
    proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with trio.fail_after(30):
        line = await Lines(proc.stdout).until("ports ")
    _, plain, tls = line.split()
    return proc, (int(plain), int(tls))


async def stop(proc: trio.Process, bound: float) -> int | None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    with trio.move_on_after(bound):
        return await proc.wait()
    proc.kill()
    await proc.wait()
    return None


# --- chaos from this process -------------------------------------------------------------

UPGRADE = (
    "GET /ocpp/{ident} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
)


async def _until_eof(stream: trio.SocketStream) -> None:
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass


async def hung_handshake(port: int, run: Run, args: argparse.Namespace, n: int) -> None:
    """Half an upgrade request, then nothing: the server must drop it after handshake_timeout."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return  # the server is restarting
    async with stream:
        started = trio.current_time()
        try:
            await stream.send_all(UPGRADE.format(ident=f"HUNG{n}").encode()[:50])
        except trio.BrokenResourceError:
            return
        with trio.move_on_after(args.handshake_timeout + 3) as scope:
            await _until_eof(stream)
        if scope.cancelled_caught:
            run.chaos_failures.append(
                f"hung handshake {n} not dropped within handshake_timeout + 3 s"
            )
        else:
            run.hung_handshakes.append(trio.current_time() - started)


async def half_open(port: int, run: Run, args: argparse.Namespace, n: int) -> None:
    """A full handshake, then never read or write again: the server's pings must find out."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return
    async with stream:
        try:
            await stream.send_all(UPGRADE.format(ident=f"HALFOPEN{n}").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return  # refused during a restart
                head += chunk
        except trio.BrokenResourceError:
            return
        if not head.startswith(b"HTTP/1.1 101"):
            return
        started = trio.current_time()
        bound = 2 * args.ping_interval + 3  # a ping, its pong timeout, slack
        await trio.sleep(bound)  # the peer has stopped reading (its buffers hold the pings)
        with trio.move_on_after(1) as scope:
            await _until_eof(stream)
        if scope.cancelled_caught:
            run.chaos_failures.append(f"half-open peer {n} not dropped within {bound + 1:g} s")
        else:
            run.half_open.append(trio.current_time() - started)


async def chaos(port: int, run: Run, args: argparse.Namespace, end: float) -> None:
    async with trio.open_nursery() as nursery:
        n = 0
        while trio.current_time() < end - (2 * args.ping_interval + 5):
            nursery.start_soon(hung_handshake, port, run, args, n)
            if n % 2 == 0:
                nursery.start_soon(half_open, port, run, args, n)
            n += 1
            await trio.sleep(args.duration / 12)


async def sample_rss(pid_of: Any, run: Run) -> None:
    while True:
        pid, incarnation = pid_of()
        try:
            status = await trio.Path(f"/proc/{pid}/status").read_text()
        except OSError:
            status = ""
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                run.rss.append((time.monotonic() - run.started, incarnation, int(line.split()[1])))
        await trio.sleep(0.5)


# --- the run --------------------------------------------------------------------------


def make_pki(out: Path) -> dict[str, str]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": out / "ca.pem", "cert": out / "server.pem", "key": out / "server.key"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(paths["cert"]), append=True)
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return {k: str(v) for k, v in paths.items()}


async def soak(args: argparse.Namespace, out: Path) -> Run:
    run = Run()
    pki = make_pki(out)
    server, ports = await start_server(args, out, pki, 0, (0, 0))
    current = [server]
    proxy = FaultProxy(ports[0], seed=args.seed)
    end = trio.current_time() + args.duration
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        nursery.start_soon(sample_rss, lambda: (current[0].pid, run.incarnation), run)
        per = math.ceil(args.stations / args.processes)
        stations: list[trio.Process] = []
        for index in range(args.processes):
            count = min(per, args.stations - index * per)
            if count <= 0:
                break
            cmd = [
                sys.executable,
                str(HERE / "stations_proc.py"),
                "--out", str(out),
                "--index", str(index),
                "--count", str(count),
                "--plain-url", f"ws://127.0.0.1:{ports[0]}/ocpp",
                "--tls-url", f"wss://127.0.0.1:{ports[1]}/ocpp",
                "--proxy-url", f"ws://127.0.0.1:{proxy.port}/ocpp",
                "--ca", pki["ca"],
                "--seed", str(args.seed + index),
                "--pace", str(args.pace),
                "--ramp", str(min(5.0, args.duration / 6)),
                "--ping-interval", str(args.ping_interval),
                "--max-message-size", str(args.max_message_size),
            ]  # fmt: skip
            stations.append(await trio.lowlevel.open_process(cmd))
        nursery.start_soon(chaos, ports[0], run, args, end)

        # the server restart, half-way
        await trio.sleep_until(end - args.duration / 2)
        went_down = trio.current_time()
        run.exit_codes["server-0"] = await stop(current[0], 30)
        run.incarnation = 1
        current[0], _ = await start_server(args, out, pki, 1, ports)
        run.restart_downtime = trio.current_time() - went_down

        await trio.sleep_until(end)
        with trio.move_on_after(60):
            async with trio.open_nursery() as stopping:
                for index, proc in enumerate(stations):

                    async def one(index: int = index, proc: trio.Process = proc) -> None:
                        run.exit_codes[f"stations-{index}"] = await stop(proc, 45)

                    stopping.start_soon(one)
        run.exit_codes["server-1"] = await stop(current[0], 30)
        nursery.cancel_scope.cancel()
    run.proxy_applied = dict(proxy.applied)
    run.proxy_fired = dict(proxy.fired)
    return run


# --- accounting -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def account(args: argparse.Namespace, out: Path, run: Run) -> tuple[dict[str, Any], list[str]]:
    broken: list[str] = list(run.chaos_failures)
    servers = [json.loads(p.read_text()) for p in sorted(out.glob("server-*.json"))]
    stations = [json.loads(p.read_text()) for p in sorted(out.glob("stations-*.json"))]
    for name, code in sorted(run.exit_codes.items()):
        if code != 0:
            broken.append(f"{name} exited with {code}")
    if len(servers) != 2:
        broken.append(f"expected 2 server ledgers, got {len(servers)}")
    if len(stations) != len([k for k in run.exit_codes if k.startswith("stations-")]):
        broken.append("a station process wrote no ledger")

    server_answer: dict[tuple[str, str], str] = {}
    for ledger in servers:
        for ident, ids in ledger["inbound"].items():
            for mid, what in ids.items():
                server_answer[(ident, mid)] = what
    station_answered = {(i, m) for s in stations for i, m in s["answered"]}

    # station -> CSMS calls
    outcomes: Counter[str] = Counter()
    mismatches: list[str] = []
    for s in stations:
        for ident, mid, action, outcome in s["calls"]:
            kind = outcome.split(":")[0]
            outcomes[kind] += 1
            if outcome == "answered":
                if mid is None or server_answer.get((ident, mid)) != "result":
                    mismatches.append(
                        f"{ident} {action} {mid}: answered, server says {server_answer.get((ident, mid))}"
                    )
            elif kind == "error":
                code = outcome.split(":", 1)[1]
                if mid is None or server_answer.get((ident, mid)) != code:
                    mismatches.append(
                        f"{ident} {action} {mid}: got {code}, server sent {server_answer.get((ident, mid))}"
                    )
    # CSMS -> station calls
    csms: Counter[str] = Counter()
    for ledger in servers:
        for ident, mid, outcome in ledger["outbound"]:
            csms[outcome.split(":")[0]] += 1
            if outcome == "answered" and (ident, mid) not in station_answered:
                mismatches.append(
                    f"CSMS call {ident} {mid}: answered, but the station never answered it"
                )

    attempted = sum(outcomes.values())
    explicit = {"error", "timeout", "closed", "refused"}
    failed = sum(v for k, v in outcomes.items() if k in explicit)
    lost = outcomes["lost"] + csms["lost"] + len(mismatches)
    unexpected = outcomes["unexpected"] + csms["unexpected"]
    if lost:
        broken.append(f"{lost} call(s) lost: {mismatches[:5]}")
    if unexpected:
        broken.append(f"{unexpected} call(s) ended with an unexpected exception type")
    if attempted != outcomes["answered"] + failed + outcomes["lost"] + outcomes["unexpected"]:
        broken.append("call outcomes do not add up")  # pragma: no cover - by construction

    special: Counter[str] = Counter()
    for s in stations:
        special.update(s["special"])
        for crash in s.get("crashes", []):
            broken.append(f"a station crashed: {crash}")
    limits: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for ledger in servers:
        limits.update(ledger["limits"])
        rejected.update(ledger["rejected"])
    bad_messages = sum(ledger["bad_messages"] for ledger in servers)
    reconnect_times = [t for s in stations for t in s["reconnect_times"]]
    lags = [lag for ledger in servers for lag in ledger["lags"]]
    pauses = [p for ledger in servers for p in ledger.get("gc_pauses", []) if len(p) == 3]

    applied, fired = run.proxy_applied, run.proxy_fired
    faults = {
        "proxy delay": applied.get("delay", 0),
        "proxy drop": fired.get("drop", 0),
        "proxy stall": fired.get("stall", 0),
        "proxy truncate": fired.get("truncate", 0),
        "half-open peer dropped": len(run.half_open),
        "hung handshake dropped": len(run.hung_handshakes),
        "server restart": int(run.restart_downtime is not None),
        "slow handler (station timed out)": special.get("slow_timeout", 0),
        "flood refused (rate limit / busy)": special.get("flood_refused", 0),
        "oversized message closed (1009)": special.get("oversize_closed", 0),
        "garbage frames (server bad_message)": bad_messages,
    }
    for name, count in faults.items():
        if count == 0:
            broken.append(f"fault never happened: {name}")

    # memory: after the warm-up (first third of the last incarnation), no growth beyond the slack
    last = [(t, kb) for t, inc, kb in run.rss if inc == 1]
    rss_note = "no samples"
    if len(last) >= 6:
        warm = last[len(last) // 3][1]
        peak_after = max(kb for _, kb in last[len(last) // 3 :])
        rss_note = f"{warm / 1024:.0f} MB after warm-up, peak {peak_after / 1024:.0f} MB after"
        if peak_after > warm * (1 + args.rss_slack) + 20 * 1024:
            broken.append(f"server RSS grew after the warm-up: {rss_note}")
    p99 = percentile(lags, 0.99)
    if p99 > args.max_lag:
        broken.append(f"event-loop lag p99 {p99 * 1000:.0f} ms > {args.max_lag * 1000:.0f} ms")

    report = {
        "stations": args.stations,
        "processes": args.processes,
        "duration_s": args.duration,
        "calls": {
            "attempted": attempted,
            "answered": outcomes["answered"],
            "failed_explicit": failed,
            "failed_by_kind": {k: v for k, v in outcomes.items() if k in explicit},
            "lost": lost,
            "unexpected": unexpected,
        },
        "csms_calls": dict(csms),
        "server_answers_logged": len(server_answer),
        "station_kinds": dict(sum((Counter(s["kinds"]) for s in stations), Counter())),
        "station_protocols": dict(sum((Counter(s["protocols"]) for s in stations), Counter())),
        "reconnect_attempts": sum(s["reconnects"] for s in stations),
        "reconnect_time_s": {
            "count": len(reconnect_times),
            "p50": round(percentile(reconnect_times, 0.5), 3),
            "p99": round(percentile(reconnect_times, 0.99), 3),
            "max": round(max(reconnect_times, default=0.0), 3),
        },
        "restart_downtime_s": round(run.restart_downtime or 0.0, 3),
        "faults": faults,
        "proxy_connections": applied,
        "limits_reported": dict(limits),
        "handshakes_rejected": dict(rejected),
        "half_open_dropped_within_s": round(max(run.half_open, default=0.0), 2),
        "hung_handshake_dropped_after_s": round(max(run.hung_handshakes, default=0.0), 2),
        "server_rss": rss_note,
        "server_rss_samples_kb": [
            (round(t, 1), inc, kb) for t, inc, kb in run.rss[:: max(1, len(run.rss) // 40)]
        ],
        "event_loop_lag_ms": {
            "p50": round(percentile(lags, 0.5) * 1000, 1),
            "p99": round(p99 * 1000, 1),
            "max": round(max(lags, default=0.0) * 1000, 1),
        },
        "server_gc": {
            "collections_of_10ms_or_more": len(pauses),
            "max_wall_ms": round(max((p[1] for p in pauses), default=0.0) * 1000, 1),
            "max_cpu_ms": round(max((p[2] for p in pauses), default=0.0) * 1000, 1),
            "objects_freed_by_the_collector": sum(
                sum(ledger.get("gc_collected", [])) for ledger in servers
            ),
        },
        "exit_codes": run.exit_codes,
        "broken": broken,
    }
    return report, broken


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument(
        "--pace", type=float, default=1.0, help="seconds between a station's calls (mean)"
    )
    parser.add_argument(
        "--csms-pace", type=float, default=2.5, help="seconds between the CSMS's calls to a station"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--ping-interval",
        type=float,
        help="seconds between pings, both ways (default: stations / 200, at least 2 and at most 30)",
    )
    parser.add_argument("--handshake-timeout", type=float, default=2.0)
    parser.add_argument("--max-message-size", type=int, default=65536)
    parser.add_argument("--max-rate", type=float, default=20.0, help="inbound calls/s per station")
    parser.add_argument(
        "--rss-slack", type=float, default=0.5, help="allowed RSS growth after warm-up"
    )
    parser.add_argument("--max-lag", type=float, default=0.5, help="event-loop lag p99 bound (s)")
    parser.add_argument("--report", help="write the report as JSON here")
    parser.add_argument("--keep", help="keep the ledgers in this directory")
    args = parser.parse_args(argv)
    if args.duration < 20:
        parser.error("--duration must be at least 20 s (a restart and every fault must fit)")
    if args.stations < 4 * args.processes:
        parser.error("need at least 4 stations per process (the misbehaving ones)")
    if args.ping_interval is None:
        # Half-open peers must be found within the run, but pinging 2,000
        # stations every 2 s (4,000 pings and pongs a second through one
        # server) would be the heaviest load of the soak; real CSMSs ping
        # every 30-300 s.
        args.ping_interval = min(30.0, max(2.0, args.stations / 200))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="ocpp-soak-") as tmp:
        out = Path(args.keep) if args.keep else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        run = trio.run(soak, args, out)
        report, broken = account(args, out, run)
    text = json.dumps(report, indent=2)
    if args.report:
        Path(args.report).write_text(text + "\n")
    print(text)
    if broken:
        print(f"SOAK FAILED: {len(broken)} invariant(s) broken", file=sys.stderr)
        for line in broken:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print("soak passed: 0 lost, every error explicit", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
