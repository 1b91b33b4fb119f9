"""Side-by-side benchmarks: ocpp_trio against its peers, in one run, on this machine.

    python benchmarks/run.py [--runs 3] [--calls-a 20000] [--calls-b 200] [--stations-b 100]
                             [--idle 1000[,10000]] [--connect 1000] [--connect-concurrency 50]
                             [--workloads calls,idle,connect]
                             [--only ours,mobilityhouse] [--baseline REV]
                             [--client ocpp-ws-io[,ocpp_trio-nodeflate...] | --matrix]
                             [--out benchmarks/RESULTS.md]

Each system is a CSMS process and a station process (separate processes, on
loopback).  Workloads (OCPP 1.6 Heartbeat):

(a) 1 station x N sequential calls: calls/s and p50/p99 latency (client side);
(b) S stations x M sequential calls each: total calls/s, p50/p99;
    for both, the server's CPU time per call (user + system, from /proc),
    which is far less sensitive to a busy machine than wall-clock rates;
(c) idle memory: the server's RSS growth per connected idle station, from
    just before N idle stations connect to one second after they all have;
    for each N of ``--idle`` (``--idle 1000,10000``) on a server process of
    its own that has done nothing else, so that one figure does not depend
    on what the others (or (a) and (b)) left behind.  The N stations come
    from one client process; both raise their open-file limit to the hard
    limit (10,000 stations need 10,000 descriptors on each side).
(d) connection rate: N stations connect, at most C attempts in flight; each
    opens TCP, runs the WebSocket upgrade offering ocpp1.6, sends one
    BootNotification and waits for its answer, then stays connected until all
    are in (closing is not timed).  Stations per second = N / the time to the
    last answer, over ws:// and over wss:// (TLS with a self-signed ECDSA
    certificate made with trustme, the same for every server), with the
    server's CPU time per station; on a server process of its own.

For (b) the station process's CPU time per call is reported too (it drives
all S stations, and at (b) it is the busier of the two processes).

Systems: ocpp_trio (default transport, and the trio-websocket transport),
the limit of a Python server on ocpp_trio's own stack (its WebSocket driver
answering each CALL with a canned CALLRESULT, no OCPP layer:
``peers/driver_echo_server.py``),
mobilityhouse ``ocpp`` 2.1.0 with its defaults (asyncio + websockets), the raw
trio-websocket floor (JSON in, JSON out, no OCPP library), and ``ocpp-rpc``
2.2.1 and ``ocpp-ws-io`` 2.3.2 under node when node and the packages are there.
Runs are interleaved (system after system, round after round) and medians
reported, with ratios computed pair by pair within a round.  Nothing here is
asserted anywhere.

By default each system's stations are its own library's client.  ``--client
NAME`` drives every system's server with one common client instead (see
``CLIENTS``: ``ocpp-ws-io`` and ``ocpp-rpc`` offer permessage-deflate, as ws
clients do by default; ``ocpp_trio`` offers it, ``ocpp_trio-nodeflate`` does
not; ``own`` is the default), for every workload; a comma-separated list gives
one set of tables per client, all interleaved in the same rounds.  ``--matrix``
is ``--client ocpp-ws-io,ocpp_trio-nodeflate``: the servers under a client that
offers permessage-deflate and under one that does not.  Each client reports the
extensions the server accepted; the first answer per system and client is
logged (stderr) and summed up under each table.

``--baseline REV`` adds the system ``ocpp_trio @<short hash of REV>``: the same
peer scripts (this tree's) and transport as ``ocpp_trio``, importing the
package from a detached git worktree of REV (first on ``PYTHONPATH``), removed
at the end.  Its row in the ratio tables is then the current tree over REV.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from baseline import Baseline, baseline_worktree, check_import

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
    tls: bool = True  # whether its server takes --tls-cert (for (d) over TLS)
    #: The client's environment when it is not the system's own (a common client).
    client_env: dict[str, str] | None = None
    #: Whether the client gets --strict in strict mode (None: as ``strict_flag``).
    client_strict: bool | None = None

    def client_flag(self, strict: bool) -> list[str]:
        """``--strict`` for the client, when strict mode applies to it."""
        applies = self.strict_flag if self.client_strict is None else self.client_strict
        return ["--strict"] if strict and applies else []

    def client_environ(self) -> dict[str, str]:
        return _env(self.env if self.client_env is None else self.client_env)


@dataclass(frozen=True)
class Client:
    """A common client: drives every system's server in place of the system's own."""

    key: str  # the --client name
    label: str  # for the report
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    offers_deflate: bool = False


#: The ``--client`` names; ``own`` is each system's own client (the default).
CLIENT_KEYS = ["own", "ocpp-ws-io", "ocpp-rpc", "ocpp_trio", "ocpp_trio-nodeflate"]
MATRIX = ["ocpp-ws-io", "ocpp_trio-nodeflate"]


def node_package(name: str) -> str | None:
    """The installed version of a node package, None when it (or node) is missing."""
    manifest = NODE_MODULES / name / "package.json"
    if not NODE or not manifest.is_file():
        return None
    version: str = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    return version


def common_client(key: str) -> Client:
    node_env = {"NODE_PATH": str(NODE_MODULES)}
    if key in ("ocpp-ws-io", "ocpp-rpc"):
        version = node_package(key)
        if version is None or NODE is None:
            raise SystemExit(f"--client {key}: needs node and {key} (make node-deps)")
        script = "ocppwsio_client.js" if key == "ocpp-ws-io" else "rpc_client.js"
        what = "OCPPClient" if key == "ocpp-ws-io" else "RPCClient"
        return Client(
            key,
            f"{key} {version}'s {what} (node; offers permessage-deflate, the ws default)",
            [NODE, str(PEERS / script)],
            node_env,
            offers_deflate=True,
        )
    if key == "ocpp_trio":
        return Client(
            key,
            "ocpp_trio's client (websockets transport) with compression=True "
            "(offers permessage-deflate)",
            [PY, str(PEERS / "ours_client.py"), "--compression"],
            {"WSB": "websockets"},
            offers_deflate=True,
        )
    if key == "ocpp_trio-nodeflate":
        return Client(
            key,
            "ocpp_trio's client (websockets transport) with its default compression=False "
            "(offers no permessage-deflate)",
            [PY, str(PEERS / "ours_client.py")],
            {"WSB": "websockets"},
        )
    raise ValueError(key)


def driven_by(system: System, client: Client | None) -> System:
    """``system`` with its stations from ``client`` (None: its own)."""
    if client is None:
        return system
    return replace(system, client=client.command, client_env=client.env, client_strict=True)


def systems(
    strict: bool, baseline: Baseline | None = None, observability: bool = False
) -> list[System]:
    flag = ["--strict"] if strict else []
    ours = System(
        "ocpp_trio",
        [PY, str(PEERS / "ours_server.py"), *flag],
        [PY, str(PEERS / "ours_client.py")],
        {"WSB": "websockets", "COMP": "1"},
    )
    if observability:
        # The cost of the instrumentation: none configured (ours, and the
        # baseline before it existed), the API with no SDK, the SDK with a
        # Prometheus reader (metrics only; and metrics with spans).
        return [
            ours,
            *([baseline_system(ours, baseline)] if baseline is not None else []),
            replace(
                ours,
                name="ocpp_trio, Telemetry() without an SDK",
                env={**ours.env, "TELEMETRY": "api"},
            ),
            replace(
                ours,
                name="ocpp_trio, PrometheusMetrics (SDK)",
                env={**ours.env, "TELEMETRY": "prometheus"},
            ),
            replace(
                ours,
                name="ocpp_trio, PrometheusMetrics + spans (SDK, no exporter)",
                env={**ours.env, "TELEMETRY": "prometheus+spans"},
            ),
        ]
    out = [
        ours,
        *([baseline_system(ours, baseline)] if baseline is not None else []),
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
            tls=False,
        ),
        System(
            "mobilityhouse ocpp 2.1.0",
            [PY, str(PEERS / "mh_server.py")],
            [PY, str(PEERS / "mh_client.py")],
            strict_flag=False,
        ),
        System(
            "ocpp_trio's WebSocket driver, no OCPP layer (limit)",
            [PY, str(PEERS / "driver_echo_server.py")],
            [PY, str(PEERS / "ours_client.py")],
            {"WSB": "websockets", "COMP": "1"},
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
    if NODE and (NODE_MODULES / "ocpp-ws-io").is_dir():
        out.append(
            System(
                "ocpp-ws-io 2.3.2 (node)",
                [NODE, str(PEERS / "ocppwsio_server.js"), *flag],
                [NODE, str(PEERS / "ocppwsio_client.js")],
                {"NODE_PATH": str(NODE_MODULES)},
            )
        )
    return out


def baseline_system(ours: System, baseline: Baseline) -> System:
    """``ours`` (same peer scripts, same transport) importing ocpp_trio from the worktree."""
    return System(
        baseline.label, ours.server, ours.client, {**ours.env, "PYTHONPATH": str(baseline.path)}
    )


def _raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment with ``extra``; a ``PYTHONPATH`` there goes first."""
    env = dict(os.environ)
    path = [extra.get("PYTHONPATH", ""), str(ROOT), env.get("PYTHONPATH", "")]
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(part for part in path if part)
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
    def __init__(self, system: System, tls_cert: Path | None = None) -> None:
        tls = ["--tls-cert", str(tls_cert)] if tls_cert is not None and system.tls else []
        self.proc = subprocess.Popen(
            [*system.server, *tls],
            stdout=subprocess.PIPE,
            text=True,
            env=_env(system.env),
            preexec_fn=_raise_nofile,
        )
        assert self.proc.stdout is not None
        try:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{system.name}: server did not start")
            info = json.loads(line)
        except BaseException:  # Ctrl-C or SIGTERM while it starts: leave no server behind
            self.proc.kill()
            self.proc.wait(10)
            raise
        self.port = int(info["port"])
        self.pid = int(info.get("pid", self.proc.pid))
        self.pids = [int(p) for p in info.get("workers", [self.pid])]
        self.url = f"ws://127.0.0.1:{self.port}/ocpp"
        tls_port = info.get("tls_port")
        self.tls_url = f"wss://127.0.0.1:{tls_port}/ocpp" if tls_port else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def run_client(
    system: System,
    server: Server,
    args: Sequence[str],
    timeout: float = 600,
    url: str | None = None,
) -> dict[str, Any]:
    out = subprocess.run(
        [*system.client, url or server.url, *args],
        capture_output=True,
        text=True,
        env=system.client_environ(),
        timeout=timeout,
        preexec_fn=_raise_nofile,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{system.name} client failed: {out.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def note_extensions(system: System, result: dict[str, Any], opts: argparse.Namespace) -> None:
    """Log (stderr), once per system and client, what the server said to permessage-deflate.

    ``extensions`` in a client's result line is the server's answer on its
    first connection ("" for none); a client that does not report it says so.
    """
    key = (opts.client_key, system.name)
    if key in opts.negotiated:
        return
    value = result.get("extensions")
    opts.negotiated[key] = value
    if value is None:
        said = "not reported by this client"
    elif "permessage-deflate" in value:
        said = f"negotiated ({value})"
    else:
        said = "not negotiated" + (f" (extensions: {value})" if value else "")
    print(f"  permessage-deflate: {said}", file=sys.stderr, flush=True)


def idle_memory(system: System, stations: int, opts: argparse.Namespace) -> float:
    """(c): KiB of server RSS per idle station, on a fresh server (see the module docstring)."""
    server = Server(system)
    try:
        time.sleep(0.3)
        before = sum(map(_rss_kib, server.pids))
        proc = subprocess.Popen(
            [*system.client, server.url, "--stations", str(stations), "--idle", "3600"],
            stdout=subprocess.PIPE,
            text=True,
            env=system.client_environ(),
            preexec_fn=_raise_nofile,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if "connected" not in line:
                raise RuntimeError(f"{system.name}: idle client failed ({stations} stations)")
            note_extensions(system, json.loads(line), opts)
            time.sleep(1.0)
            after = sum(map(_rss_kib, server.pids))
            if proc.poll() is not None:
                raise RuntimeError(f"{system.name}: idle client died ({stations} stations)")
        finally:
            proc.kill()
            proc.wait(10)
    finally:
        server.stop()
    return (after - before) / stations


def measure(system: System, strict: bool, opts: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    if "calls" in opts.workloads:
        out |= measure_calls(system, strict, opts)
    if "idle" in opts.workloads:
        for stations in opts.idle:
            out[f"idle_kib_{stations}"] = idle_memory(system, stations, opts)
    if "connect" in opts.workloads and opts.connect:
        out |= measure_connect(system, strict, opts)
    return out


def measure_connect(system: System, strict: bool, opts: argparse.Namespace) -> dict[str, float]:
    """(d), plain then TLS, on one fresh server listening on both."""
    server = Server(system, opts.tls_cert)
    try:
        time.sleep(0.3)
        flag = system.client_flag(strict)
        out: dict[str, float] = {}
        for key, url in (("d", server.url), ("dt", server.tls_url)):
            if url is None:
                continue  # this server has no TLS listener here
            args = ["--connect", str(opts.connect), "--concurrency", str(opts.connect_concurrency)]
            args += ["--prefix", key.upper(), *flag]
            if url.startswith("wss:"):
                args += ["--ca", str(opts.ca_file)]
            cpu0 = sum(map(_cpu_seconds, server.pids))
            d = run_client(system, server, args, url=url)
            cpu1 = sum(map(_cpu_seconds, server.pids))
            note_extensions(system, d, opts)
            out |= {
                f"{key}_conn_s": d["stations_per_s"],
                f"{key}_p50": d["p50_ms"],
                f"{key}_server_us": 1e6 * (cpu1 - cpu0) / d["stations"],
            }
        return out
    finally:
        server.stop()


def measure_calls(system: System, strict: bool, opts: argparse.Namespace) -> dict[str, float]:
    """(a) and (b), on one server."""
    server = Server(system)
    try:
        time.sleep(0.3)
        flag = system.client_flag(strict)
        out: dict[str, float] = {}
        cpu0 = sum(map(_cpu_seconds, server.pids))
        a = run_client(system, server, ["--stations", "1", "--calls", str(opts.calls_a), *flag])
        cpu1 = sum(map(_cpu_seconds, server.pids))
        note_extensions(system, a, opts)
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
        if "client_cpu_s" in b:
            out["b_client_us"] = 1e6 * b["client_cpu_s"] / b["calls"]
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
        for package in ("ocpp-rpc", "ocpp-ws-io", "ws"):
            if (version := node_package(package)) is not None:
                parts.append(f"{package} {version}")
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
    ("b_client_us", "(b) client µs/call", "{:.0f}"),
]

CONNECT_COLUMNS = [
    ("d_conn_s", "(d) stations/s", "{:,.0f}"),
    ("d_p50", "(d) p50 ms", "{:.1f}"),
    ("d_server_us", "(d) server µs/station", "{:.0f}"),
    ("dt_conn_s", "(d) TLS stations/s", "{:,.0f}"),
    ("dt_p50", "(d) TLS p50 ms", "{:.1f}"),
    ("dt_server_us", "(d) TLS server µs/station", "{:.0f}"),
]

#: The ratio columns (ours / peer, pair by pair): for CPU a lower figure is better.
RATIO_COLUMNS = [
    ("a_calls_s", "(a) calls/s"),
    ("b_calls_s", "(b) calls/s"),
    ("a_server_us", "(a) server CPU"),
    ("b_server_us", "(b) server CPU"),
    ("b_client_us", "(b) client CPU"),
    ("d_conn_s", "(d) stations/s"),
    ("dt_conn_s", "(d) TLS stations/s"),
]


def idle_columns(counts: Sequence[int]) -> list[tuple[str, str, str]]:
    """The (c) columns, one per number of idle stations."""
    if list(counts) == [1000]:
        return [("idle_kib_1000", "(c) KiB per idle station", "{:.1f}")]
    return [(f"idle_kib_{n}", f"(c) KiB per idle station, {n:,}", "{:.1f}") for n in counts]


def table(
    results: dict[str, list[dict[str, float]]], columns: Sequence[tuple[str, str, str]] = COLUMNS
) -> list[str]:
    lines = [
        "| system | " + " | ".join(title for _, title, _ in columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    for name, rounds in results.items():
        cells = []
        for key, _, fmt in columns:
            values = [r[key] for r in rounds if key in r]
            cells.append(fmt.format(statistics.median(values)) if values else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def ratios(results: dict[str, list[dict[str, float]]], ours: str, keys: Sequence[str]) -> list[str]:
    chosen = [(key, title) for key, title in RATIO_COLUMNS if key in keys]
    lines = [
        "| ours / peer | " + " | ".join(title for _, title in chosen) + " |",
        "| --- |" + " --- |" * len(chosen),
    ]
    mine = results.get(ours, [])
    for name, rounds in results.items():
        if name == ours:
            continue
        cells = []
        for key, _ in chosen:
            pairs = [
                m[key] / p[key]
                for m, p in zip(mine, rounds, strict=False)
                if key in m and key in p and p[key]
            ]
            cells.append(f"{statistics.median(pairs):.2f}x" if pairs else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if any(n < 0 for n in counts):
        raise argparse.ArgumentTypeError(f"station counts must be >= 0, got {text!r}")
    return [n for n in counts if n]


def _clients(text: str) -> list[str]:
    chosen = text.split(",")
    unknown = [key for key in chosen if key not in CLIENT_KEYS]
    if unknown or len(set(chosen)) != len(chosen):
        raise argparse.ArgumentTypeError(
            f"clients are {', '.join(CLIENT_KEYS)}, each once; got {text!r}"
        )
    return chosen


def method_text(keys: Sequence[str], clients: dict[str, Client | None]) -> str:
    """How the stations are driven, for the report."""
    if list(keys) == ["own"]:
        return METHOD_TEXT + CONNECT_TEXT
    mixed = "own" in keys
    return (
        f"Stations: {clients_text(clients)}. "
        + (f"Under `own`: {METHOD_TEXT}Under the others: " if mixed else "")
        + COMMON_TEXT
        + CONNECT_TEXT
    )


def client_title(client: Client | None) -> str:
    return "each system's own client" if client is None else client.label


def clients_text(clients: dict[str, Client | None]) -> str:
    return "; ".join(f"`{key}` = {client_title(client)}" for key, client in clients.items())


def _workloads(text: str) -> set[str]:
    chosen = set(text.split(","))
    if not chosen <= {"calls", "idle", "connect"}:
        raise argparse.ArgumentTypeError(f"workloads are calls, idle and connect, got {text!r}")
    return chosen


def workloads_text(opts: argparse.Namespace) -> str:
    parts = []
    if "calls" in opts.workloads:
        parts += [
            f"(a) 1 station x {opts.calls_a} calls",
            f"(b) {opts.stations_b} stations x {opts.calls_b} calls",
        ]
    if "idle" in opts.workloads and opts.idle:
        counts = " and ".join(f"{n:,}" for n in opts.idle)
        parts.append(f"(c) {counts} idle stations (a fresh server for each)")
    if "connect" in opts.workloads and opts.connect:
        parts.append(
            f"(d) {opts.connect:,} stations connecting, at most {opts.connect_concurrency} "
            "at a time (a fresh server)"
        )
    return "; ".join(parts)


#: How the stations are driven, and what (d) counts: written into the report.
METHOD_TEXT = (
    "Each system's stations are driven by its own client library, in every workload: "
    "ocpp_trio's client, mobilityhouse's ChargePoint over websockets, bare trio-websocket "
    "for the floor, ocpp-rpc's RPCClient, ocpp-ws-io's OCPPClient; one station process "
    "against one server process. "
)
COMMON_TEXT = (
    "Every system's server is driven by one common client, named above each table "
    "(with --strict in strict mode, whatever the server), in every workload; one station "
    "process against one server process. (c) then measures stations as that client "
    "makes them: with permessage-deflate where it offers it and the server accepts. "
)
CONNECT_TEXT = (
    "(d) counts a station once its WebSocket upgrade (ocpp1.6) is done and its one "
    "BootNotification is answered, over ws:// and over wss:// (a self-signed ECDSA "
    "certificate from trustme, the same for every server, with each system's default TLS "
    "settings)."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls-a", type=int, default=20000)
    parser.add_argument("--stations-b", type=int, default=100)
    parser.add_argument("--calls-b", type=int, default=200)
    parser.add_argument(
        "--idle",
        type=_counts,
        default=[1000],
        help="idle stations for (c), comma-separated for several figures (1000,10000); 0 skips",
    )
    parser.add_argument(
        "--connect", type=int, default=1000, help="stations connecting for (d); 0 skips"
    )
    parser.add_argument(
        "--connect-concurrency", type=int, default=50, help="(d): connection attempts in flight"
    )
    parser.add_argument(
        "--workloads",
        type=_workloads,
        default={"calls", "idle", "connect"},
        help="what to run: calls ((a) and (b)), idle ((c)), connect ((d)), comma-separated",
    )
    parser.add_argument("--strict", choices=["off", "on", "both"], default="both")
    parser.add_argument("--only", help="comma-separated substrings of system names")
    parser.add_argument(
        "--observability",
        action="store_true",
        help="measure the instrumentation's cost: ocpp_trio without telemetry, with "
        "Telemetry() and no SDK, with PrometheusMetrics (and spans)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run ocpp_trio as of this git revision (a worktree), as 'ocpp_trio @REV'",
    )
    parser.add_argument(
        "--client",
        type=_clients,
        default=["own"],
        help="drive every server with this common client instead of each system's own: "
        f"{', '.join(CLIENT_KEYS)}; comma-separated for one set of tables per client",
    )
    parser.add_argument(
        "--matrix",
        action="store_true",
        help=f"shorthand for --client {','.join(MATRIX)} (deflate offered, and not)",
    )
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument(
        "--append", action="store_true", help="add the report to the end of --out's file"
    )
    opts = parser.parse_args(argv)
    if opts.matrix:
        opts.client = MATRIX
    clients = {key: None if key == "own" else common_client(key) for key in opts.client}
    opts.negotiated = {}

    modes = {"off": [False], "on": [True], "both": [False, True]}[opts.strict]
    report = [
        f"# Benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}",
        "",
        f"Versions: {versions()}",
        "",
        f"Workloads: {workloads_text(opts)}. Medians of {opts.runs} "
        "interleaved rounds; client and server in separate processes on loopback.",
        "",
        method_text(opts.client, clients),
        "",
    ]
    connecting = "connect" in opts.workloads and opts.connect > 0
    with contextlib.ExitStack() as stack:
        pki = stack.enter_context(tempfile.TemporaryDirectory())
        if connecting:
            opts.tls_cert, opts.ca_file = make_pki(Path(pki))
        baseline = stack.enter_context(baseline_worktree(opts.baseline)) if opts.baseline else None
        if baseline is not None:
            report += [baseline_text(baseline), ""]
        report += run_modes(opts, modes, baseline, clients)
    text = "\n".join(report)
    print(text)
    if opts.out and opts.append:
        with opts.out.open("a", encoding="utf-8") as out:
            # one level down under the file's own title
            out.write("\n#" + text + "\n" if text.startswith("# ") else "\n" + text + "\n")
    elif opts.out:
        opts.out.write_text(text + "\n", encoding="utf-8")
    return 0


def baseline_text(baseline: Baseline) -> str:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"Baseline: {baseline.describe()}, with this tree's peer scripts; `ocpp_trio` is the "
        f"current tree (HEAD {head}, with any uncommitted changes). In the ratio tables the "
        f"row `{baseline.label}` is the current tree over the baseline: above 1x is better "
        "for calls/s and stations/s, below 1x for CPU."
    )


def make_pki(directory: Path) -> tuple[Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1: ``(server PEM, CA PEM)``."""
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, ca_file = directory / "server.pem", directory / "ca.pem"
    server.private_key_and_cert_chain_pem.write_to_path(str(cert))
    ca.cert_pem.write_to_path(str(ca_file))
    return cert, ca_file


def run_modes(
    opts: argparse.Namespace,
    modes: list[bool],
    baseline: Baseline | None = None,
    clients: dict[str, Client | None] | None = None,
) -> list[str]:
    """Every system under every client, round after round, per strict mode: the tables."""
    clients = clients if clients is not None else {"own": None}
    report: list[str] = []
    columns = [
        *(COLUMNS if "calls" in opts.workloads else []),
        *(idle_columns(opts.idle) if "idle" in opts.workloads else []),
    ]
    ratio_keys = [
        *(
            ["a_calls_s", "b_calls_s", "a_server_us", "b_server_us", "b_client_us"]
            if "calls" in opts.workloads
            else []
        ),
        *(["d_conn_s", "dt_conn_s"] if "connect" in opts.workloads and opts.connect else []),
    ]
    by_mode: dict[bool, dict[str, dict[str, list[dict[str, float]]]]] = {}
    for strict in modes:
        chosen = [
            s
            for s in systems(strict, baseline, opts.observability)
            if not opts.only or any(part in s.name for part in opts.only.split(","))
        ]
        for system in chosen:
            if baseline is not None and system.name == baseline.label:
                check_import(baseline, _env(system.env))  # the worktree's package, not ours
        results: dict[str, dict[str, list[dict[str, float]]]] = {
            key: defaultdict(list) for key in clients
        }
        for round_no in range(opts.runs):
            for key, client in clients.items():
                opts.client_key = key
                for system in chosen:
                    print(
                        f"[strict {'on' if strict else 'off'}] round {round_no + 1}: {system.name}"
                        + ("" if client is None else f" <- client {key}"),
                        file=sys.stderr,
                        flush=True,
                    )
                    try:
                        measured = measure(driven_by(system, client), strict, opts)
                    except Exception as exc:  # a peer that fails is reported, the rest go on
                        print(f"  failed: {exc}", file=sys.stderr)
                    else:
                        results[key][system.name].append(measured)
        for key, client in clients.items():
            report += [
                f"## Strict mode {'on' if strict else 'off'}"
                + (" (mobilityhouse always validates; the floor never does)" if strict else "")
                + ("" if len(clients) == 1 and client is None else f", stations: `{key}`"),
                "",
            ]
            if client is not None:
                report += [f"Every server driven by {client.label}.", ""]
            if columns:
                report += [*table(results[key], columns), ""]
            if "connect" in opts.workloads and opts.connect:
                report += [*table(results[key], CONNECT_COLUMNS), ""]
            if ratio_keys:
                report += [*ratios(results[key], "ocpp_trio", ratio_keys), ""]
            report += [deflate_text(opts, key, chosen), ""]
        by_mode[strict] = results
    if True in by_mode and TARGET_CLIENT in by_mode[True]:
        report += targets_text(by_mode[True])
    return report


#: The targets are measured with every server driven by this client, strict mode on.
TARGET_CLIENT = "ocpp-ws-io"
OURS, PEER, LIMIT, FLOOR = (
    "ocpp_trio",
    "ocpp-ws-io 2.3.2 (node)",
    "ocpp_trio's WebSocket driver, no OCPP layer (limit)",
    "raw trio-websocket (floor)",
)


def _pairwise(results: dict[str, list[dict[str, float]]], peer: str, key: str) -> float | None:
    """The median of ours over ``peer`` round by round, None when either is missing."""
    pairs = [
        m[key] / p[key]
        for m, p in zip(results.get(OURS, []), results.get(peer, []), strict=False)
        if key in m and key in p and p[key]
    ]
    return statistics.median(pairs) if pairs else None


def _median(results: dict[str, list[dict[str, float]]], name: str, key: str) -> float | None:
    values = [r[key] for r in results.get(name, []) if key in r]
    return statistics.median(values) if values else None


def targets_text(results: dict[str, dict[str, list[dict[str, float]]]]) -> list[str]:
    """The performance targets against this run (strict on, every server under ocpp-ws-io's client)."""
    under = results[TARGET_CLIENT]
    plain = next((results[key] for key in results if key != TARGET_CLIENT), None)
    # what, the bound (">=" or "<=" and a number; None: recorded only), unit, this run's figure
    rows: list[tuple[str, tuple[str, float] | None, str, float | None]] = [
        (f"{title}, ours / {name}", bound, "x", _pairwise(under, peer, key))
        for title, name, peer, key, bound in (
            ("(a) calls/s", "ocpp-ws-io", PEER, "a_calls_s", (">=", 1.0)),
            ("(a) server CPU per call", "ocpp-ws-io", PEER, "a_server_us", ("<=", 1.0)),
            ("(b) calls/s", "ocpp-ws-io", PEER, "b_calls_s", (">=", 1.0)),
            ("(b) server CPU per call", "ocpp-ws-io", PEER, "b_server_us", ("<=", 1.0)),
            ("(a) calls/s", "limit", LIMIT, "a_calls_s", None),
            ("(a) server CPU per call", "limit", LIMIT, "a_server_us", None),
            ("(b) calls/s", "limit", LIMIT, "b_calls_s", None),
            ("(b) server CPU per call", "limit", LIMIT, "b_server_us", None),
        )
    ]
    rows.append(
        (
            "(c) KiB per idle station, permessage-deflate negotiated",
            ("<=", 32),
            " KiB",
            _median(under, OURS, "idle_kib_1000"),
        )
    )
    if plain is not None:
        rows.append(
            (
                "(c) KiB per idle station, no compression",
                ("<=", 16),
                " KiB",
                _median(plain, OURS, "idle_kib_1000"),
            )
        )
    rows += [
        (f"{title}, ours / raw trio-websocket", (">=", 1.0), "x", _pairwise(under, FLOOR, key))
        for title, key in (("(d) stations/s", "d_conn_s"), ("(d) TLS stations/s", "dt_conn_s"))
    ]

    def number(value: float, unit: str) -> str:
        return f"{value:.2f}x" if unit == "x" else f"{value:.1f}{unit}"

    lines = [
        "## The targets (strict mode on, every server driven by ocpp-ws-io's client)",
        "",
        "Ratios are medians of ours over the peer round by round. `benchmarks/README.md` "
        "explains each gap with its profile.",
        "",
        "| what | target | this run | |",
        "| --- | --- | --- | --- |",
    ]
    for what, bound, unit, figure in rows:
        if bound is None:
            target = "recorded"
        else:
            target = (
                f"{bound[0]} {bound[1]:.1f}x" if unit == "x" else f"{bound[0]} {bound[1]:g}{unit}"
            )
        if figure is None:
            shown, verdict = "—", "not measured"
        else:
            shown = number(figure, unit)
            if bound is None:
                verdict = "—"
            else:
                met = figure >= bound[1] if bound[0] == ">=" else figure <= bound[1]
                verdict = "**met**" if met else "**not met**"
        lines.append(f"| {what} | {target} | {shown} | {verdict} |")
    return [*lines, ""]


def deflate_text(opts: argparse.Namespace, key: str, chosen: Sequence[System]) -> str:
    """Which servers took the client's permessage-deflate offer, as the clients saw it."""
    groups: dict[str, list[str]] = defaultdict(list)
    for system in chosen:
        value = opts.negotiated.get((key, system.name))
        if value is None:
            groups["not reported"].append(system.name)
        elif "permessage-deflate" in value:
            groups["negotiated"].append(system.name)
        else:
            groups["not negotiated"].append(system.name)
    parts = [
        f"{what}: " + ", ".join(f"`{name}`" for name in names) for what, names in groups.items()
    ]
    return "permessage-deflate (the server's answer on the first connection): " + (
        "; ".join(parts) + "."
    )


if __name__ == "__main__":
    raise SystemExit(main())
