"""Each ``ocpp-trio`` command end to end, as a subprocess on loopback.

``serve`` prints ``listening on URL`` first (``--port 0`` picks a free port);
the tests read it, run ``station`` against it, stop the server with SIGTERM
and look at its log and its SQLite file.  Every child is killed on the way out.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from ocpp_trio import CallErrorReceived, HandlerContext, open_ocpp_client
from ocpp_trio.events import CloseEvent

from .conftest import STATION_ID
from .helpers import Lines

PY = sys.executable
PASSWORD = "0123456789abcdef0123"


def ocpp_trio(
    *args: str, timeout: float = 30, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ocpp_trio ARGS`` to its end."""
    return subprocess.run(
        [PY, "-m", "ocpp_trio", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )


@dataclass
class Served:
    """What a stopped ``serve`` left: its status, its output after the first line."""

    url: str
    returncode: int | None = None
    out: str = ""
    err: str = ""


@contextmanager
def serving(*args: str) -> Iterator[Served]:
    """Run ``ocpp-trio serve --port 0 ARGS``; stop it with SIGTERM on exit."""
    proc = subprocess.Popen(
        [PY, "-m", "ocpp_trio", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout=15)
        first = proc.stdout.readline() if ready else ""
        if not first.startswith("listening on ") and not first.startswith("{"):
            proc.kill()
            out, err = proc.communicate(timeout=10)
            pytest.fail(f"serve did not start: {first!r} {out!r} {err!r}")
        url = json.loads(first)["url"] if first.startswith("{") else first.split()[-1]
        served = Served(url=url)
        yield served
        proc.send_signal(signal.SIGTERM)
        served.out, served.err = proc.communicate(timeout=15)
        served.returncode = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def one_line_error(result: subprocess.CompletedProcess[str], command: str, status: int) -> str:
    """Assert a user error: the status, one line on stderr, no traceback; return the line."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"ocpp-trio {command}: error: "), result.stderr
    return result.stderr.strip()


# --- serve + station ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
def test_station_with_an_outbox_delivers_through_it(protocol: str, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    with serving("--protocols", protocol) as served:
        station = ocpp_trio(
            "station",
            served.url,
            "CP",
            "--protocol",
            protocol,
            "--scenario",
            "charge",
            "--count",
            "2",
            "--meter-interval",
            "0.05",
            "--outbox",
            str(outbox),
        )
        assert station.returncode == 0, (station.stdout, station.stderr)
    assert "2 completed, 0 failed" in station.stdout
    con = sqlite3.connect(outbox)
    try:
        # both stations' transaction messages went through the file, and left it
        (left,) = con.execute("SELECT COUNT(*) FROM ocpp_outbox").fetchone()
        (used,) = con.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'ocpp_outbox'"
        ).fetchone()
    finally:
        con.close()
    assert left == 0
    assert used >= 2 * (2 + 3)  # per station: start, 3 samples, stop (at least)


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"])
def test_serve_and_station(protocol: str, tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    json_serve = protocol == "ocpp2.1"
    json_station = protocol == "ocpp2.0.1"
    serve_args = ["--strict", "--db", str(db), "--protocols", protocol]
    with serving(*serve_args, *(["--json"] if json_serve else [])) as served:
        station = ocpp_trio(
            "station",
            served.url,
            "CP",
            "--protocol",
            protocol,
            "--scenario",
            "charge",
            "--count",
            "2",
            "--strict",
            "--meter-interval",
            "0.05",
            *(["--json"] if json_station else []),
        )
        assert station.returncode == 0, (station.stdout, station.stderr)
    assert served.returncode == 0, served.err
    assert served.err == ""

    # the station's summary
    if json_station:
        summary = json.loads(station.stdout.splitlines()[-1])
        assert summary["event"] == "summary"
        assert (summary["stations"], summary["completed"], summary["failed"]) == (2, 2, [])
        assert summary["failed_calls"] == 0
        assert set(summary["latency_ms"]) == {"p50", "p90", "p99", "max"}
    else:
        assert "2 stations in" in station.stdout
        assert "2 completed, 0 failed" in station.stdout
        assert re.search(r"latency   p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms", station.stdout)
        assert "CP-1" in station.stdout
        assert "CP-2" in station.stdout

    # one line per message, with latency on the answers
    if json_serve:
        lines = [json.loads(line) for line in served.out.splitlines()]
        boot = next(
            x for x in lines if x.get("type") == "RESULT" and x["action"] == "BootNotification"
        )
        assert boot["direction"] == "out"
        assert boot["latency_ms"] >= 0
        assert boot["payload"]["status"] == "Accepted"
        assert lines[-1]["event"] == "summary"
        assert lines[-1]["errors"] == 0
    else:
        assert re.search(r"CP-1 +<- CALL +BootNotification", served.out)
        assert re.search(r"CP-1 +-> RESULT BootNotification [\d.]+ ms", served.out)
        inventory = "GetConfiguration" if protocol == "ocpp1.6" else "GetVariables"
        assert re.search(rf"CP-2 +-> CALL +{inventory}", served.out)
        assert "(0 errors)" in served.out

    # the state, in SQLite
    with sqlite3.connect(db) as con:
        stations = con.execute(
            "SELECT identity, protocol, boots FROM stations ORDER BY 1"
        ).fetchall()
        assert stations == [("CP-1", protocol, 1), ("CP-2", protocol, 1)]
        txs = con.execute("SELECT state, energy_wh >= 0 FROM transactions").fetchall()
        assert txs == [("finished", 1), ("finished", 1)]
        (samples,) = con.execute("SELECT COUNT(*) FROM meter_values").fetchone()
        assert samples >= 2
        (settings,) = con.execute("SELECT COUNT(*) FROM configuration").fetchone()
        assert settings >= 2


async def test_sigterm_lets_the_call_in_flight_finish_then_closes_with_1001() -> None:
    """``serve`` stops as ``run_server`` does: its GetConfiguration in flight gets its answer."""
    asked, release = trio.Event(), trio.Event()
    closes: list[CloseEvent] = []
    with trio.fail_after(60):
        proc = await trio.lowlevel.open_process(
            [PY, "-m", "ocpp_trio", "serve", "--port", "0", "--protocols", "ocpp1.6"],
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            lines = Lines(proc.stdout)
            url = (await lines.until("listening on ")).split()[-1]
            async with open_ocpp_client(
                url, identity="CP1", protocols=["ocpp1.6"], reconnect=False, ping_interval=0
            ) as client:
                client.on("close", closes.append)

                @client.handle("GetConfiguration")
                async def get_configuration(ctx: HandlerContext) -> dict[str, Any]:
                    asked.set()
                    await release.wait()  # answered only once the server was told to stop
                    return {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False}]}

                await client.call(
                    "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
                )
                await asked.wait()
                proc.send_signal(signal.SIGTERM)
                await lines.until("stopping (SIGTERM)")
                # Shutting down, the server answers new CALLs "closing" but has
                # not closed us: our answer is awaited.  (Had it sent the close
                # frame, it would arrive before this answer: ConnectionClosed.)
                refused: CallErrorReceived | None = None
                while refused is None:
                    try:
                        await client.call("Heartbeat", {})
                    except CallErrorReceived as exc:
                        refused = exc
                assert (refused.code, refused.description) == (
                    "GenericError",
                    "the connection is closing",
                )
                release.set()
                await client.wait_closed()
            assert await proc.wait() == 0
            await lines.until("served 1 stations")
        finally:
            if proc.returncode is None:  # pragma: no cover - the test failed
                proc.kill()
                await proc.wait()
    assert [(c.code, c.by_peer) for c in closes] == [(1001, True)]
    results = [line for line in lines.seen if re.search(r"CP1 +<- RESULT +GetConfiguration", line)]
    assert len(results) == 1, lines.seen


# --- security profiles ----------------------------------------------------------------


@pytest.fixture
def pki(
    tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert, station_cert: trustme.LeafCert
) -> dict[str, str]:
    files = {
        "ca": tmp_path / "ca.pem",
        "server": tmp_path / "server.pem",
        "station": tmp_path / "station.pem",
        "passwords": tmp_path / "passwords",
        "password": tmp_path / "password",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(files["server"]))
    station_cert.private_key_and_cert_chain_pem.write_to_path(str(files["station"]))
    files["passwords"].write_text(f"# per station\n{STATION_ID}:{PASSWORD}\n")
    files["password"].write_text(PASSWORD + "\n")
    return {k: str(v) for k, v in files.items()}


def test_security_profile_1(pki: dict[str, str]) -> None:
    with serving("--security-profile", "1", "--password-file", pki["passwords"]) as served:
        assert served.url.startswith("ws://")
        ok = ocpp_trio("station", served.url, STATION_ID, "--password", PASSWORD)
        assert ok.returncode == 0, (ok.stdout, ok.stderr)
        bad = ocpp_trio("station", served.url, STATION_ID, "--password", "wrong-password-000")
        line = one_line_error(bad, "station", 1)
        assert "401" in line
        assert "wrong-password" not in line
    assert served.returncode == 0
    assert PASSWORD not in served.out + served.err


def test_security_profile_2(pki: dict[str, str]) -> None:
    args = ["--security-profile", "2", "--cert", pki["server"], "--password-file", pki["passwords"]]
    with serving(*args) as served:
        assert served.url.startswith("wss://")
        ok = ocpp_trio(
            "station", served.url, STATION_ID, "--ca", pki["ca"], "--password-file", pki["password"]
        )
        assert ok.returncode == 0, (ok.stdout, ok.stderr)
        untrusted = ocpp_trio("station", served.url, STATION_ID, "--password", PASSWORD)
        assert "certificate" in one_line_error(untrusted, "station", 1)
    assert served.returncode == 0


def test_security_profile_3(pki: dict[str, str]) -> None:
    args = ["--security-profile", "3", "--cert", pki["server"], "--ca", pki["ca"]]
    with serving(*args) as served:
        ok = ocpp_trio(
            "station", served.url, STATION_ID, "--ca", pki["ca"], "--cert", pki["station"]
        )
        assert ok.returncode == 0, (ok.stdout, ok.stderr)
        assert "connected (ocpp2.1)" not in ok.stdout  # the default protocol is ocpp1.6
        someone_else = ocpp_trio(
            "station", served.url, "CP002", "--ca", pki["ca"], "--cert", pki["station"]
        )
        assert "401" in one_line_error(someone_else, "station", 1)  # not its certificate
    assert served.returncode == 0


# --- validate -----------------------------------------------------------------------

GOOD = [
    [2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}],
    [3, "1", {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300}],
    [2, "2", "Heartbeat", {}],
    [3, "2", {"currentTime": "2024-01-01T00:00:05Z"}],
]


def test_validate_good_and_bad(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(f) for f in GOOD) + "\n")
    result = ocpp_trio("validate", str(good))
    assert result.returncode == 0, result.stdout
    assert result.stdout == f"{good}: 4 frames (ocpp1.6), 4 valid, 0 invalid\n"

    # a JSON array of frames, on stdin
    result = ocpp_trio("validate", "-", stdin=json.dumps(GOOD, indent=1))
    assert result.returncode == 0, result.stdout
    assert "4 frames (ocpp1.6), 4 valid" in result.stdout

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join(
            [
                json.dumps(
                    [
                        2,
                        "1",
                        "BootNotification",
                        {"chargePointVendor": "V" * 21, "chargePointModel": "M"},
                    ]
                ),
                "[2, 'single quotes']",
                json.dumps(
                    [
                        2,
                        "2",
                        "StatusNotification",
                        {"connectorId": "1", "errorCode": "NoError", "status": "Available"},
                    ]
                ),
            ]
        )
    )
    result = ocpp_trio("validate", str(bad))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{bad}:1: BootNotification request: chargePointVendor must be at most 20 characters "
        "(PropertyConstraintViolation)",
        f"{bad}:2: frame: message is not valid JSON (FormationViolation)",
        f"{bad}:3: StatusNotification request: connectorId must be integer, not string "
        "(TypeConstraintViolation)",
        f"{bad}: 3 frames (ocpp1.6), 0 valid, 3 invalid",
    ]

    result = ocpp_trio("validate", "--json", "--protocol", "ocpp2.0.1", str(bad))
    assert result.returncode == 1
    problems = [json.loads(line) for line in result.stdout.splitlines()]
    assert problems[0]["line"] == 1
    assert problems[0]["action"] == "BootNotification"
    assert problems[0]["code"] == "OccurrenceConstraintViolation"  # 2.0.1 spelling
    assert problems[-1]["invalid"] == 3


# --- demo ---------------------------------------------------------------------------


@pytest.mark.slow
def test_demo(tmp_path: Path) -> None:
    result = ocpp_trio("demo", "--stations", "4", "--duration", "2")
    assert result.returncode == 0, (result.stdout, result.stderr)
    out = result.stdout
    assert "\x1b[" not in out  # not a terminal: plain lines
    assert re.search(r"^\[  1\.\d s\] stations 4/4 connected", out, re.M)
    assert "demo summary: 4 stations (2 ocpp1.6, 1 ocpp2.0.1, 1 ocpp2.1) and one CSMS" in out
    assert "4 booted, 4 completed their scenario, 0 failed" in out
    assert re.search(r"messages +\d+ \(\d+/s\), 0 errors", out)
    assert re.search(r"latency p50 [\d.]+ ms, p90", out)


# --- user errors ------------------------------------------------------------------------


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(ocpp_trio("serve", "--port", str(port)), "serve", 1)
        assert line.endswith(f"cannot listen on 127.0.0.1:{port}: Address already in use")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed_port = free.getsockname()[1]
    line = one_line_error(
        ocpp_trio("station", f"ws://127.0.0.1:{closed_port}/ocpp", "CP", "--count", "3"),
        "station",
        1,
    )
    assert f"cannot connect to ws://127.0.0.1:{closed_port}/ocpp:" in line
    assert "refused" in line
    one_line_error(ocpp_trio("validate", str(tmp_path / "nope.jsonl")), "validate", 2)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    line = one_line_error(
        ocpp_trio("serve", "--security-profile", "3", "--cert", str(garbage), "--ca", str(garbage)),
        "serve",
        2,
    )
    assert str(garbage) in line
    usage = ocpp_trio("station", "ws://127.0.0.1:1/ocpp")
    assert usage.returncode == 2
    assert usage.stderr.count("\n") == 1
    assert "IDENTITY" in usage.stderr


def test_entry_points() -> None:
    result = subprocess.run(
        [PY, "-m", "ocpp_trio.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("ocpp-trio ")
    script = Path(PY).parent / "ocpp-trio"
    if not script.exists():
        pytest.skip("the ocpp-trio script is not installed in this environment")
    result = subprocess.run(
        [str(script), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 0
    assert result.stdout == ocpp_trio("--version").stdout


# --- Ctrl-C -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("after", ["[  1.0 s]", "[  2.0 s]"])
async def test_ctrl_c_in_the_demo_is_one_line_and_exit_130(after: str) -> None:
    """SIGINT while the demo runs: status 130, one line on stderr, no traceback."""
    with trio.fail_after(60):
        proc = await trio.lowlevel.open_process(
            [PY, "-m", "ocpp_trio", "demo", "--stations", "3", "--duration", "60", "--plain"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            lines = Lines(proc.stdout)
            await lines.until(after)  # the stations are running
            proc.send_signal(signal.SIGINT)
            assert await proc.wait() == 130
            err = (await proc.stderr.receive_some(65536)).decode()
        finally:
            if proc.returncode is None:  # pragma: no cover - the test failed
                proc.kill()
                await proc.wait()
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["ocpp-trio demo: interrupted"]
