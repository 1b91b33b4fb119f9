"""``ocpp-trio serve --frame-log DIR`` and ``station --frame-log DIR``: a JSON-lines file per station."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from ocpp_trio import open_ocpp_client

from .helpers import serving_with_ops


async def test_serve_writes_each_station_s_frames_to_its_file(tmp_path: Path) -> None:
    directory = tmp_path / "frames"
    with serving_with_ops("--frame-log", str(directory)) as served:
        with trio.fail_after(15):
            async with open_ocpp_client(
                served.url, identity="CP-F1", protocols=["ocpp1.6"], reconnect=False
            ) as station:
                await station.call(
                    "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
                )
                await station.call("Authorize", {"idTag": "SECRET-TAG-77"})
    assert served.returncode == 0, served.err
    (path,) = directory.glob("CP-F1*")
    text = path.read_text("utf-8")
    assert "SECRET-TAG-77" not in text
    records = [json.loads(line) for line in text.splitlines()]
    seen = [(r["direction"], r["message_type"], r["action"]) for r in records]
    assert ("in", "CALL", "BootNotification") in seen
    assert ("out", "CALLRESULT", "BootNotification") in seen
    authorize = next(r for r in records if r["action"] == "Authorize" and r["direction"] == "in")
    assert authorize["payload"]["idTag"] == "***"
    answer = next(r for r in records if r["action"] == "Authorize" and r["direction"] == "out")
    assert answer["latency_ms"] is not None


def test_station_writes_each_simulated_station_s_frames(tmp_path: Path) -> None:
    directory = tmp_path / "station-frames"
    with serving_with_ops() as served:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ocpp_trio",
                "station",
                served.url,
                "CP",
                "--count",
                "2",
                "--scenario",
                "boot",
                "--frame-log",
                str(directory),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
    files = sorted(path.name for path in directory.iterdir())
    assert files == ["CP-1.jsonl", "CP-2.jsonl"]
    for name in files:
        records = [json.loads(line) for line in (directory / name).read_text().splitlines()]
        assert ("out", "CALL", "BootNotification") in {
            (r["direction"], r["message_type"], r["action"]) for r in records
        }
        assert {r["identity"] for r in records} == {name.removesuffix(".jsonl")}
