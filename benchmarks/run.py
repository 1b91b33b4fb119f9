"""Side-by-side benchmarks: ocpp_trio against its peers, in one run, on this machine.

    python benchmarks/run.py [--runs 3] [--calls-a 20000] [--calls-b 200] [--stations-b 100]
                             [--idle 1000] [--only ours,mobilityhouse] [--out benchmarks/RESULTS.md]

Each system is a CSMS process and a station process (separate processes, on
loopback).  Workloads (OCPP 1.6 Heartbeat):

(a) 1 station x N sequential calls: calls/s and p50/p99 latency (client side);
(b) S stations x M sequential calls each: total calls/s, p50/p99;
    for both, the server's CPU time per call (user + system, from /proc),
    which is far less sensitive to a busy machine than wall-clock rates;
(c) idle memory: the server's RSS growth per connected idle station.

Systems: ocpp_trio (default transport, and the trio-websocket transport),
mobilityhouse ``ocpp`` 2.1.0 with its defaults (asyncio + websockets), the raw
trio-websocket floor (JSON in, JSON out, no OCPP library), and ``ocpp-rpc``
2.2.1 under node when node and the package are there.  Runs are interleaved
(system after system, round after round) and medians reported, with ratios
computed pair by pair within a round.  Nothing here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
ROOT = HERE.parent
NODE_MODULES = ROOT / "tests" / "interop" / "node" / "node_modules"
PY = sys.executable
NODE = shutil.which("node")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class System:
    name: str
    server: list[str]
    client: list[str]
    env: dict[str, str] = field(default_factory=dict)
    strict_flag: bool = True  # whether --strict means anything for it


def systems(strict: bool) -> list[System]:
    flag = ["--strict"] if strict else []
    out = [
        System(
            "ocpp_trio",
            [PY, str(PEERS / "ours_server.py"), *flag],
            [PY, str(PEERS / "ours_client.py")],
            {"WSB": "websockets", "COMP": "1"},
        ),
        System(
            "ocpp_trio (trio-websocket transport)",
            [PY, str(PEERS / "ours_server.py"), *flag],
            [PY, str(PEERS / "ours_client.py")],
            {"WSB": "trio-websocket", "COMP": "0"},
        ),
        System(
            "ocpp_trio, 2 worker processes",
            [PY, str(PEERS / "ours_workers.py"), "--workers", "2", *flag],
            [PY, str(PEERS / "ours_client.py")],
        ),
        System(
            "mobilityhouse ocpp 2.1.0",
            [PY, str(PEERS / "mh_server.py")],
            [PY, str(PEERS / "mh_client.py")],
            strict_flag=False,
        ),
        System(
            "raw trio-websocket (floor)",
            [PY, str(PEERS / "tws_server.py")],
            [PY, str(PEERS / "tws_client.py")],
            strict_flag=False,
        ),
    ]
    if NODE and (NODE_MODULES / "ocpp-rpc").is_dir():
        out.append(
            System(
                "ocpp-rpc 2.2.1 (node)",
                [NODE, str(PEERS / "rpc_server.js"), *flag],
                [NODE, str(PEERS / "rpc_client.js")],
                {"NODE_PATH": str(NODE_MODULES)},
            )
        )
    return out


def _raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Server:
    def __init__(self, system: System) -> None:
        self.proc = subprocess.Popen(
            system.server,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(system.env),
            preexec_fn=_raise_nofile,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{system.name}: server did not start")
        info = json.loads(line)
        self.port = int(info["port"])
        self.pid = int(info.get("pid", self.proc.pid))
        self.pids = [int(p) for p in info.get("workers", [self.pid])]
        self.url = f"ws://127.0.0.1:{self.port}/ocpp"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def run_client(
    system: System, server: Server, args: Sequence[str], timeout: float = 600
) -> dict[str, Any]:
    out = subprocess.run(
        [*system.client, server.url, *args],
        capture_output=True,
        text=True,
        env=_env(system.env),
        timeout=timeout,
        preexec_fn=_raise_nofile,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{system.name} client failed: {out.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def idle_memory(system: System, server: Server, stations: int) -> float:
    before = sum(map(_rss_kib, server.pids))
    proc = subprocess.Popen(
        [*system.client, server.url, "--stations", str(stations), "--idle", "600"],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(system.env),
        preexec_fn=_raise_nofile,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "connected" not in line:
            raise RuntimeError(f"{system.name}: idle client failed")
        time.sleep(1.0)
        after = sum(map(_rss_kib, server.pids))
    finally:
        proc.kill()
        proc.wait(10)
    return (after - before) / stations


def measure(system: System, strict: bool, opts: argparse.Namespace) -> dict[str, float]:
    server = Server(system)
    try:
        time.sleep(0.3)
        flag = ["--strict"] if strict and system.strict_flag else []
        out: dict[str, float] = {}
        cpu0 = sum(map(_cpu_seconds, server.pids))
        a = run_client(system, server, ["--stations", "1", "--calls", str(opts.calls_a), *flag])
        cpu1 = sum(map(_cpu_seconds, server.pids))
        out |= {
            "a_calls_s": a["calls_per_s"],
            "a_p50": a["p50_ms"],
            "a_p99": a["p99_ms"],
            "a_server_us": 1e6 * (cpu1 - cpu0) / a["calls"],
        }
        b = run_client(
            system,
            server,
            ["--stations", str(opts.stations_b), "--calls", str(opts.calls_b), *flag],
        )
        cpu2 = sum(map(_cpu_seconds, server.pids))
        out |= {
            "b_calls_s": b["calls_per_s"],
            "b_p50": b["p50_ms"],
            "b_p99": b["p99_ms"],
            "b_server_us": 1e6 * (cpu2 - cpu1) / b["calls"],
        }
        if opts.idle:
            out["idle_kib"] = idle_memory(system, server, opts.idle)
        return out
    finally:
        server.stop()


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, {platform.platform()}"


def versions() -> str:
    from importlib import metadata

    parts = []
    for dist in ("ocpp-trio", "trio", "trio-websocket", "websockets", "fastjsonschema", "ocpp"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    if NODE:
        node_v = subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout.strip()
        parts.append(f"node {node_v}")
    return ", ".join(parts)


COLUMNS = [
    ("a_calls_s", "(a) calls/s", "{:,.0f}"),
    ("a_p50", "(a) p50 ms", "{:.2f}"),
    ("a_p99", "(a) p99 ms", "{:.2f}"),
    ("a_server_us", "(a) server µs/call", "{:.0f}"),
    ("b_calls_s", "(b) calls/s", "{:,.0f}"),
    ("b_p50", "(b) p50 ms", "{:.1f}"),
    ("b_p99", "(b) p99 ms", "{:.1f}"),
    ("b_server_us", "(b) server µs/call", "{:.0f}"),
    ("idle_kib", "(c) KiB per idle station", "{:.1f}"),
]


def table(results: dict[str, list[dict[str, float]]]) -> list[str]:
    lines = [
        "| system | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "| --- |" + " --- |" * len(COLUMNS),
    ]
    for name, rounds in results.items():
        cells = []
        for key, _, fmt in COLUMNS:
            values = [r[key] for r in rounds if key in r]
            cells.append(fmt.format(statistics.median(values)) if values else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def ratios(results: dict[str, list[dict[str, float]]], ours: str) -> list[str]:
    lines = [
        "| ours / peer | (a) calls/s | (b) calls/s | (a) server CPU | (b) server CPU |",
        "| --- | --- | --- | --- | --- |",
    ]
    mine = results.get(ours, [])
    for name, rounds in results.items():
        if name == ours:
            continue
        cells = []
        for key in ("a_calls_s", "b_calls_s", "a_server_us", "b_server_us"):
            pairs = [
                m[key] / p[key]
                for m, p in zip(mine, rounds, strict=False)
                if key in m and key in p and p[key]
            ]
            cells.append(f"{statistics.median(pairs):.2f}x" if pairs else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls-a", type=int, default=20000)
    parser.add_argument("--stations-b", type=int, default=100)
    parser.add_argument("--calls-b", type=int, default=200)
    parser.add_argument("--idle", type=int, default=1000, help="idle stations for (c); 0 skips")
    parser.add_argument("--strict", choices=["off", "on", "both"], default="both")
    parser.add_argument("--only", help="comma-separated substrings of system names")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    opts = parser.parse_args(argv)

    modes = {"off": [False], "on": [True], "both": [False, True]}[opts.strict]
    report = [
        f"# Benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}",
        "",
        f"Versions: {versions()}",
        "",
        f"Workloads: (a) 1 station x {opts.calls_a} calls; (b) {opts.stations_b} stations x "
        f"{opts.calls_b} calls; (c) {opts.idle} idle stations. Medians of {opts.runs} "
        "interleaved rounds; client and server in separate processes on loopback.",
        "",
    ]
    for strict in modes:
        chosen = [
            s
            for s in systems(strict)
            if not opts.only or any(part in s.name for part in opts.only.split(","))
        ]
        results: dict[str, list[dict[str, float]]] = defaultdict(list)
        for round_no in range(opts.runs):
            for system in chosen:
                print(
                    f"[strict {'on' if strict else 'off'}] round {round_no + 1}: {system.name}",
                    file=sys.stderr,
                    flush=True,
                )
                try:
                    results[system.name].append(measure(system, strict, opts))
                except Exception as exc:  # a peer that fails is reported, the rest go on
                    print(f"  failed: {exc}", file=sys.stderr)
        report += [
            f"## Strict mode {'on' if strict else 'off'}"
            + (" (mobilityhouse always validates; the floor never does)" if strict else ""),
            "",
        ]
        report += [*table(results), "", *ratios(results, "ocpp_trio"), ""]
    text = "\n".join(report)
    print(text)
    if opts.out:
        opts.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
