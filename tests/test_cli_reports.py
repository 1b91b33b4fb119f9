"""What the commands tell their user: refused stations, reconnect causes, empty input, summaries.

``serve`` prints a line for each station it refuses at the handshake (the
status and the reason, never the password) and says that it listens on
loopback only; ``station`` gives the cause of each reconnect; ``validate``
refuses an input with nothing to check; ``demo``'s summary counts sessions as
its CSMS counts transactions.  Each command runs as a subprocess.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from ocpp_trio import HandshakeRejected, OCPPConnection, open_ocpp_client, serve_ocpp

from .test_cli_interrupt import Command, kill, start

PY = sys.executable
PASSWORD = "0123456789abcdef0123"


def ocpp_trio(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "ocpp_trio", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
    )


async def _refused(url: str, identity: str, password: str) -> int:
    with pytest.raises(HandshakeRejected) as info:
        async with open_ocpp_client(
            url, identity=identity, password=password, security_profile=1, reconnect=False
        ):
            pass  # pragma: no cover
    return info.value.status_code


@pytest.mark.parametrize("json_mode", [False, True])
async def test_serve_prints_each_refused_handshake(tmp_path: Path, json_mode: bool) -> None:
    passwords = tmp_path / "pw"
    passwords.write_text(f"CP1:{PASSWORD}\n")
    args = ["serve", "--port", "0", "--security-profile", "1", "--password-file", str(passwords)]
    args += ["--json", "-v"] if json_mode else []
    with trio.fail_after(60):
        serve = await start(*args)
        try:
            first = await serve.until("listening")
            url = json.loads(first)["url"] if json_mode else first.split()[-1]
            assert await _refused(url, "CP1", "wrong-password-wrong") == 401
            assert await _refused(url, "CP9", PASSWORD) == 401
            assert await _refused(url, "X" * 60, PASSWORD) == 400
            await serve.until("at most 48")
            result = await serve.interrupt(signal.SIGTERM)
        finally:
            await kill(serve)
    assert result.returncode == 0, result.err
    out = "\n".join(result.out)
    assert PASSWORD not in out
    assert "wrong-password-wrong" not in out
    if json_mode:
        rejected = [
            r for line in result.out if line.startswith("{")
            for r in [json.loads(line)] if r.get("event") == "handshake_rejected"
        ]  # fmt: skip
        assert [r["status"] for r in rejected] == [401, 401, 400]
        assert [r["identity"] for r in rejected[:2]] == ["CP1", "CP9"]
        assert "wrong password" in rejected[0]["reason"]
        assert "unknown station" in rejected[1]["reason"]
        assert "48" in rejected[2]["reason"]
        assert all(r["remote"].startswith("127.0.0.1:") for r in rejected)
    else:
        lines = [line for line in result.out if "refused (HTTP" in line]
        assert len(lines) == 3, result.out
        assert re.search(r" CP1 +refused \(HTTP 401\): .*wrong password", lines[0])
        assert re.search(r" CP9 +refused \(HTTP 401\): .*unknown station", lines[1])
        assert "refused (HTTP 400): " in lines[2]
        assert "at most 48" in lines[2]


def test_serve_says_it_binds_loopback_by_default() -> None:
    help_text = " ".join(ocpp_trio("serve", "--help").stdout.split())
    assert "default 127.0.0.1" in help_text
    assert "--host 0.0.0.0" in help_text


@pytest.mark.parametrize(
    ("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("0.0.0.0", False)]
)
async def test_serve_start_up_names_a_loopback_bind(host: str, loopback: bool) -> None:
    with trio.fail_after(60):
        serve = await start("serve", "--port", "0", "--host", host)
        try:
            await serve.until("listening on ")
            result = await serve.interrupt(signal.SIGTERM)
        finally:
            await kill(serve)
    assert result.returncode == 0, result.err
    note = [line for line in result.out if "only this machine can connect" in line]
    assert bool(note) is loopback, result.out
    if loopback:
        assert result.out[1] == note[0]  # right after the listening line
        assert "--host 0.0.0.0" in note[0]
    json_serve = await start("serve", "--port", "0", "--host", host, "--json")
    try:
        record = json.loads(await json_serve.until('"listening"'))
        await json_serve.interrupt(signal.SIGTERM)
    finally:
        await kill(json_serve)
    assert record["loopback_only"] is loopback


@pytest.mark.parametrize(
    ("content", "what"), [("", "it is empty"), ("\n\n", "it is empty"), ("[]", "no frame in it")]
)
def test_validate_refuses_an_input_without_frames(tmp_path: Path, content: str, what: str) -> None:
    empty = tmp_path / "frames.jsonl"
    empty.write_text(content)
    for result, name in (
        (ocpp_trio("validate", str(empty)), str(empty)),
        (ocpp_trio("validate", "-", stdin=content), "<stdin>"),
    ):
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert result.stderr.splitlines() == [
            f"ocpp-trio validate: error: {name}: nothing to validate ({what}); expected OCPP-J frames"
        ]
        assert result.stdout == ""


def test_demo_summary_counts_sessions_as_its_csms_counts_transactions() -> None:
    result = ocpp_trio("demo", "--stations", "3", "--duration", "2", "--plain")
    assert result.returncode == 0, (result.stdout, result.stderr)
    summary = result.stdout[result.stdout.index("demo summary:") :]
    sessions = re.search(
        r"; (\d+) charging sessions?(?: \((\d+) cut short by the end of the run\))?", summary
    )
    transactions = re.search(r"CSMS +\d+ stations, (\d+) transactions \((\d+) finished\)", summary)
    assert sessions is not None, summary
    assert transactions is not None, summary
    assert int(transactions[2]) == int(transactions[1]) > 0
    # A transaction the CSMS finishes at the very instant the run ends may not
    # be in the station's count yet: at most one per station (3 here).
    assert abs(int(transactions[2]) - int(sessions[1])) <= 3, summary
    # the run is timed from the stations' start: about --duration, not the CSMS's start-up
    seconds = float(re.search(r"one CSMS, ([\d.]+) s", summary)[1])  # type: ignore[index]
    assert 2.0 <= seconds < 4.0, summary


async def test_station_reconnect_lines_give_the_cause() -> None:
    closed = trio.Event()

    async def on_station(conn: OCPPConnection) -> None:
        conn.handle("ocpp1.6", "BootNotification", lambda ctx: {
            "status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300,
        })  # fmt: skip
        conn.handle("ocpp1.6", "StatusNotification", lambda ctx: {})
        conn.handle("ocpp1.6", "Heartbeat", lambda ctx: {"currentTime": "2024-01-01T00:00:00Z"})
        if not closed.is_set():
            closed.set()
            await trio.sleep(0.3)
            await conn.close(4000, "maintenance")

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(serve_ocpp, on_station, 0, host="127.0.0.1", protocols=["ocpp1.6"])
            )
            station: Command = await start(
                "station", f"ws://127.0.0.1:{server.port}/ocpp", "CP1", "--duration", "30",
            )  # fmt: skip
            try:
                line = await station.until("reconnecting in")
                await station.until("reconnected")
                await station.interrupt()
            finally:
                await kill(station)
            nursery.cancel_scope.cancel()
    assert "closed by the CSMS (4000: maintenance); reconnecting in" in line
    assert "(attempt 1)" in line
