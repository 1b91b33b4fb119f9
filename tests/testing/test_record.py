"""record_frames and replay: a session to JSON lines, and back against a handler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from ocpp_trio import HandlerContext, OCPPConnection
from ocpp_trio.testing import (
    RecordedFrame,
    Recording,
    ReplayMismatch,
    open_memory_pair,
    open_memory_server,
    record_frames,
    replay,
)

BOOT_16 = {"chargePointVendor": "V", "chargePointModel": "M"}


def make_csms(interval: int = 300) -> Any:
    """A CSMS handler that answers and, 5 s after the boot, asks for the configuration."""

    async def on_station(conn: OCPPConnection) -> None:
        booted = trio.Event()

        def boot(ctx: HandlerContext) -> dict[str, Any]:
            booted.set()
            return {"status": "Accepted", "currentTime": now(), "interval": interval}

        conn.handle("BootNotification", boot)
        conn.handle("Heartbeat", lambda ctx: {"currentTime": now()})
        await booted.wait()
        await trio.sleep(5)
        await conn.call("GetConfiguration", {"key": ["HeartbeatInterval"]})

    return on_station


def now() -> str:
    return f"2024-01-01T00:00:{int(trio.current_time()) % 60:02}Z"


async def record_session(path: Path | None = None) -> Recording:
    async with open_memory_pair("ocpp1.6", csms_handler=make_csms(), strict_mode=True) as (
        station,
        csms,
    ):
        station.handle(
            "GetConfiguration",
            lambda ctx: {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False}]},
        )
        with record_frames(csms, path) as recording:
            await station.call("BootNotification", BOOT_16)
            await trio.sleep(10)
            await station.call("Heartbeat", {})
            await station.send_raw("not json")
            await trio.sleep(1)
    return recording


async def test_a_recording_holds_both_directions_with_virtual_times(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "session.jsonl"
    recording = await record_session(path)
    assert (recording.protocol, recording.identity, recording.role) == (
        "ocpp1.6",
        "CP001",
        "server",
    )
    kinds = [(f.outbound, json.loads(f.text)[0]) for f in recording.frames[:-2]]
    assert kinds == [(False, 2), (True, 3), (True, 2), (False, 3), (False, 2), (True, 3)]
    assert [f.time for f in recording.frames] == [0, 0, 5, 5, 10, 10, 10, 10]
    assert recording.frames[-2:] == [
        RecordedFrame(time=10, outbound=False, text="not json"),
        RecordedFrame(
            time=10,
            outbound=True,
            text='[4,"-1","FormationViolation","message is not valid JSON",{}]',
        ),
    ]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {
        "format": "ocpp_trio.recording",
        "version": 1,
        "protocol": "ocpp1.6",
        "identity": "CP001",
        "role": "server",
    }
    assert json.loads(lines[-2]) == {"t": 10, "dir": "in", "text": "not json"}
    assert Recording.load(path) == recording


async def test_replay_against_the_same_handler_matches(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recording = await record_session()
    start = trio.current_time()
    matched = await replay(
        recording, make_csms(), strict_mode=True, timing=True, ignore_keys={"currentTime"}
    )
    assert [frame for frame, _ in matched] == [f for f in recording.frames if f.outbound]
    # with timing, the inbound frames go out at their recorded times
    assert trio.current_time() - start == 10
    # the CSMS's own call got a new id, and the recorded answer was mapped to it
    call = json.loads(matched[1][1])
    assert call[0] == 2
    assert call[1] != json.loads(matched[1][0].text)[1]


async def test_replay_reports_the_first_difference(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recording = await record_session()
    with pytest.raises(ReplayMismatch) as info:
        await replay(recording, make_csms(interval=60), ignore_keys={"currentTime"})
    assert info.value.index == 1
    assert '"interval":60' in (info.value.actual or "")
    assert '"interval":300' in info.value.expected
    assert "frame 1: the frames differ" in str(info.value)


async def test_replay_ignores_keys_and_waits_for_nothing_that_never_comes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recording = await record_session()
    # the replay runs at a later time: currentTime differs, and only it
    with pytest.raises(ReplayMismatch, match="frame 1") as info:
        await replay(recording, make_csms())
    assert "currentTime" in str(info.value)
    matched = await replay(recording, make_csms(), ignore_keys={"currentTime"})
    assert len(matched) == 4

    async def never(ctx: HandlerContext) -> None:
        await trio.sleep_forever()

    def mute(conn: OCPPConnection) -> None:
        conn.handle("BootNotification", never)

    with pytest.raises(ReplayMismatch, match="nothing sent within 3 s") as info:
        await replay(recording, mute, timeout=3)
    assert info.value.actual is None


async def test_replay_of_a_station_recording(autojump_clock: trio.testing.MockClock) -> None:
    async def csms(conn: OCPPConnection) -> None:
        conn.handle(
            "BootNotification",
            lambda ctx: {"status": "Accepted", "currentTime": now(), "interval": 1},
        )

    def firmware(conn: OCPPConnection) -> None:
        conn.handle("Reset", lambda ctx: {"status": "Accepted"})

    async with open_memory_server(csms) as srv, srv.connect("CP7") as station:
        firmware(station)  # type: ignore[arg-type]
        with record_frames(station) as recording:
            await station.call("BootNotification", BOOT_16)
            await srv.clients["CP7"].call("Reset", {"type": "Soft"})
    assert recording.role == "client"
    assert recording.identity == "CP7"
    # The station is under test now: its BootNotification comes from the handler.

    async def station_under_test(conn: OCPPConnection) -> None:
        firmware(conn)
        await conn.call("BootNotification", BOOT_16)

    matched = await replay(recording, station_under_test, ignore_keys={"currentTime"})
    assert [json.loads(actual)[0] for _, actual in matched] == [2, 3]


def test_loads_names_the_bad_line() -> None:
    header = '{"format": "ocpp_trio.recording", "version": 1, "protocol": "ocpp1.6", "identity": "A", "role": "server"}'
    with pytest.raises(ValueError, match="empty"):
        Recording.loads("")
    with pytest.raises(ValueError, match="line 1: not JSON"):
        Recording.loads("{")
    with pytest.raises(ValueError, match="line 1: not an"):
        Recording.loads("{}")
    with pytest.raises(ValueError, match="version"):
        Recording.loads(header.replace('"version": 1', '"version": 2'))
    with pytest.raises(ValueError, match="role"):
        Recording.loads(header.replace('"server"', '"cp"'))
    with pytest.raises(ValueError, match="line 3: not a recorded frame"):
        Recording.loads(
            header + '\n{"t": 0, "dir": "in", "text": "x"}\n{"t": 0, "dir": "up", "text": "x"}'
        )
    assert Recording.loads(header + "\n\n").frames == []
