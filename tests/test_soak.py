"""The short soak (``soak/soak.py``): 200 stations in 4 processes for ~22 s, every fault once.

A server process restarted half-way, stations mixed 1.6 / 2.0.1 / 2.1, some
over TLS, some through the fault proxy (drop, delay, stall, truncate),
half-open peers, unfinished handshakes, slow handlers, a flooder, oversized
messages, garbage frames.  The invariants are the soak's own (its exit
status); the test re-reads the report for the figures that matter most.
Real time and real processes: about 25 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for RSS"),
]


def test_short_soak_loses_nothing(tmp_path: Path) -> None:
    report_path = tmp_path / "soak.json"
    command = [
        sys.executable,
        str(ROOT / "soak" / "soak.py"),
        "--stations", "200",
        "--processes", "4",
        "--duration", "22",
        "--max-lag", "1.0",
        "--report", str(report_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(report_path.read_text())
    calls = report["calls"]
    assert calls["lost"] == 0
    assert calls["unexpected"] == 0
    assert calls["attempted"] == calls["answered"] + calls["failed_explicit"]
    assert calls["answered"] > 1000
    assert report["csms_calls"].get("answered", 0) > 100
    assert all(count > 0 for count in report["faults"].values()), report["faults"]
    assert set(report["station_protocols"]) == {"ocpp1.6", "ocpp2.0.1", "ocpp2.1"}
    assert report["station_kinds"]["tls"] > 0
    assert report["station_kinds"]["proxied"] > 0
    assert set(report["exit_codes"].values()) == {0}
    assert report["broken"] == []
