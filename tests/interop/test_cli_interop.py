"""The ``ocpp-trio`` commands against ``ocpp-rpc`` 2.2.1 (Node), both ways, OCPP 1.6 and 2.0.1.

- ``ocpp-trio station`` against an ocpp-rpc CSMS (``node/csms.js``), which reads
  and changes the station's configuration, triggers a message, and starts
  and stops a transaction remotely;
- ``ocpp-trio serve`` answering an ocpp-rpc station (``node/station.js``).

Both peers run ocpp-rpc's strict mode, so every payload our commands send
is checked against ocpp-rpc's own copy of the schemas.  ``make test``
installs the Node peer (``npm ci`` in ``tests/interop/node``).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..test_cli_commands import serving

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]


def _require_peer() -> None:
    if not (NODE_DIR / "node_modules" / "ocpp-rpc").is_dir():
        pytest.fail("ocpp-rpc is not installed: run `make node-deps` (make test does)")


def run_station_against_node_csms(
    protocol: str,
) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    _require_peer()
    assert NODE is not None
    csms = subprocess.Popen(
        [NODE, "csms.js", protocol],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert csms.stdout is not None
        first = csms.stdout.readline()
        port = json.loads(first)["port"]
        station = subprocess.run(
            [
                sys.executable,
                "-m",
                "ocpp_trio",
                "station",
                f"ws://127.0.0.1:{port}",
                "TRIO-CP",
                "--protocol",
                protocol,
                "--strict",
                "--duration",
                "4",
                "--meter-interval",
                "0.1",
                "-v",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        out, err = csms.communicate(timeout=15)
    finally:
        if csms.poll() is None:
            csms.kill()
            csms.communicate(timeout=10)
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert csms.returncode == 0, (events, err[-2000:], station.stdout[-3000:])
    return station, events


def _answers(events: list[Any]) -> dict[str, Any]:
    return {e["answer"]: e["result"] for e in events if "answer" in e}


def _got(events: list[Any]) -> list[str]:
    return [e["got"] for e in events if "got" in e]


def test_station_against_an_ocpp_rpc_csms_16() -> None:
    station, events = run_station_against_node_csms("ocpp1.6")
    assert station.returncode == 0, (station.stdout, station.stderr)
    assert "1 completed, 0 failed" in station.stdout
    answers = _answers(events)
    assert answers["GetConfiguration"] == {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}],
        "unknownKey": ["NoSuchKey"],
    }
    assert answers["ChangeConfiguration"] == {"status": "Accepted"}
    assert answers["TriggerMessage"] == {"status": "Accepted"}
    assert answers["RemoteStartTransaction"] == {"status": "Accepted"}
    assert answers["RemoteStopTransaction"] == {"status": "Accepted"}
    got = _got(events)
    assert got[0] == "BootNotification"
    assert got.count("StartTransaction") == got.count("StopTransaction") == 1
    stop = next(e["params"] for e in events if e.get("got") == "StopTransaction")
    assert (stop["transactionId"], stop["reason"], stop["idTag"]) == (42, "Remote", "REMOTE-1")
    # HeartbeatInterval changed to 1 s: heartbeats follow within the run
    after_change = got[got.index("StartTransaction") :]
    assert "Heartbeat" in after_change
    assert events[-1]["closed"] == 1000
    assert re.search(r"TRIO-CP +<- CALL +RemoteStartTransaction", station.stdout)


def test_station_against_an_ocpp_rpc_csms_201() -> None:
    station, events = run_station_against_node_csms("ocpp2.0.1")
    assert station.returncode == 0, (station.stdout, station.stderr)
    answers = _answers(events)
    results = answers["GetVariables"]["getVariableResult"]
    assert [r["attributeStatus"] for r in results] == ["Accepted", "UnknownComponent"]
    assert [r["attributeStatus"] for r in answers["SetVariables"]["setVariableResult"]] == [
        "Accepted"
    ]
    assert answers["TriggerMessage"] == {"status": "Accepted"}
    assert answers["RequestStartTransaction"]["status"] == "Accepted"
    assert answers["RequestStopTransaction"] == {"status": "Accepted"}
    tx_events = [e["params"] for e in events if e.get("got") == "TransactionEvent"]
    assert tx_events[0]["eventType"] == "Started"
    assert tx_events[0]["transactionInfo"]["remoteStartId"] == 7
    assert tx_events[-1]["eventType"] == "Ended"
    assert tx_events[-1]["transactionInfo"]["stoppedReason"] == "Remote"
    assert "Heartbeat" in _got(events)
    assert events[-1]["closed"] == 1000


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
def test_serve_answers_an_ocpp_rpc_station(protocol: str, tmp_path: Path) -> None:
    _require_peer()
    assert NODE is not None
    db = tmp_path / "csms.db"
    with serving("--strict", "--protocols", protocol, "--db", str(db)) as served:
        result = subprocess.run(
            [NODE, "station.js", served.url, "RPC-STATION", protocol],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, (lines, result.stderr[-2000:], served.out)
    assert lines[0] == {"connected": protocol}
    by_answer = {line["answer"]: line for line in lines if "answer" in line}
    boot = by_answer["BootNotification"]["result"]
    assert (boot["status"], boot["interval"]) == ("Accepted", 300)
    assert by_answer["StatusNotification"]["result"] == {}
    assert "error" not in json.dumps(lines)
    asked = next(line for line in lines if "got" in line)
    assert asked["got"] == ("GetConfiguration" if protocol == "ocpp1.6" else "GetVariables")
    assert served.returncode == 0
    assert re.search(r"RPC-STATION +<- CALL +BootNotification", served.out)
    assert re.search(
        r"RPC-STATION +<- RESULT (GetConfiguration|GetVariables) [\d.]+ ms", served.out
    )
    assert "(0 errors)" in served.out
    with sqlite3.connect(db) as con:
        row = con.execute("SELECT vendor, model, boot_status FROM stations").fetchone()
        assert row == ("Node", "ocpp-rpc", "Accepted")
        (values,) = con.execute("SELECT COUNT(*) FROM configuration WHERE value = '300'").fetchone()
        assert values >= 1
