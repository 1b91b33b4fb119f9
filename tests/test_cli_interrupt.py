"""Ctrl-C (SIGINT) at random moments of ``ocpp-trio demo``, ``serve`` and ``station``.

Each command runs as a subprocess on loopback and gets SIGINT a seeded random
time after it is under way.  Whatever the moment: the documented exit status
(130 for ``demo`` and ``station``, 0 for ``serve``, which stops gracefully),
one line on stderr at most, never a traceback.  A ``station`` run stopped by
Ctrl-C reports what it completed and what was cut short, and its numbers agree
with what the CSMS recorded.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
import trio

PY = sys.executable
#: A few moments per command, reproducible: seconds after the command is under way.
MOMENTS = [round(random.Random(f"ctrl-c {i}").uniform(0.0, 2.5), 2) for i in range(3)]


@dataclass
class Finished:
    """What an interrupted command left."""

    returncode: int
    out: list[str]
    err: str


class Command:
    """A running ``python -m ocpp_trio ...`` whose stdout is read line by line."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._buffer = b""

    async def until(self, text: str) -> str:
        """Read stdout until a line contains ``text``; return that line."""
        assert self.proc.stdout is not None
        while True:
            for line in self.lines:
                if text in line:
                    return line
            chunk = await self.proc.stdout.receive_some()
            if not chunk:
                raise AssertionError(f"no line with {text!r} before EOF; got {self.lines}")
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            self.lines += [line.decode() for line in lines]

    async def interrupt(self, sig: int = signal.SIGINT) -> Finished:
        """Send ``sig``, then read both streams to their end and wait for the exit."""
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.proc.send_signal(sig)
        out = bytearray(self._buffer)
        err = bytearray()

        async def drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
            while chunk := await stream.receive_some():
                into += chunk

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, self.proc.stdout, out)
            nursery.start_soon(drain, self.proc.stderr, err)
        returncode = await self.proc.wait()
        rest = out.decode().splitlines()
        return Finished(returncode, self.lines + rest, err.decode())


async def start(*args: str) -> Command:
    proc = await trio.lowlevel.open_process(
        [PY, "-m", "ocpp_trio", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    return Command(proc)


async def kill(command: Command) -> None:
    if command.proc.returncode is None:  # pragma: no cover - only when a test failed
        command.proc.kill()
        await command.proc.wait()


def assert_clean(result: Finished, status: int, err_lines: list[str]) -> None:
    assert "Traceback" not in result.err, result.err
    assert result.returncode == status, (result.out, result.err)
    assert result.err.strip().splitlines() == err_lines, result.err


@pytest.mark.parametrize("moment", MOMENTS)
async def test_ctrl_c_in_the_demo(moment: float) -> None:
    with trio.fail_after(60):
        demo = await start("demo", "--stations", "3", "--duration", "30", "--plain")
        try:
            await demo.until("demo: a CSMS on")
            await trio.sleep(moment)
            result = await demo.interrupt()
        finally:
            await kill(demo)
    assert_clean(result, 130, ["ocpp-trio demo: interrupted"])


@pytest.mark.parametrize("moment", MOMENTS)
async def test_ctrl_c_in_serve_stops_it_gracefully(moment: float) -> None:
    with trio.fail_after(60):
        serve = await start("serve", "--port", "0", "--host", "127.0.0.1")
        try:
            await serve.until("listening on ")
            await trio.sleep(moment)
            result = await serve.interrupt()
        finally:
            await kill(serve)
    # serve's documented status: 0 after a graceful stop, with its summary
    assert_clean(result, 0, [])
    assert "stopping (SIGINT)" in result.out
    assert result.out[-1].startswith("served 0 stations")


def _summary(lines: list[str]) -> dict[str, Any]:
    records = [json.loads(line) for line in lines if line.startswith("{")]
    summaries = [r for r in records if r.get("event") == "summary"]
    assert len(summaries) == 1, lines
    summary: dict[str, Any] = summaries[0]
    return summary


@pytest.mark.parametrize("moment", MOMENTS)
async def test_ctrl_c_on_a_long_station_run_reports_what_it_completed(moment: float) -> None:
    """``station --duration 60 --repeat``, stopped by Ctrl-C: a report, not a failure."""
    with trio.fail_after(90):
        serve = await start("serve", "--port", "0", "--host", "127.0.0.1", "--json", "-q")
        try:
            url = json.loads(await serve.until('"listening"'))["url"]
            station = await start(
                "station", url, "CP", "--count", "3", "--scenario", "charge",
                "--duration", "60", "--repeat", "--meter-values", "2",
                "--meter-interval", "0.3", "--json",
            )  # fmt: skip
            try:
                await station.until('"connected"')
                await trio.sleep(moment)
                stopped = await station.interrupt()
                text = await start(
                    "station", url, "TEXT", "--scenario", "charge", "--duration", "60",
                    "--repeat", "--meter-values", "50", "--meter-interval", "0.2", "-q",
                )  # fmt: skip
                await trio.sleep(1.5)
                text_result = await text.interrupt()
            finally:
                await kill(station)
            served = await serve.interrupt()
        finally:
            await kill(serve)

    assert_clean(stopped, 130, ["ocpp-trio station: interrupted"])
    summary = _summary(stopped.out)
    assert summary["interrupted"] is True
    assert summary["stations"] == 3
    assert summary["failed"] == []
    # every station either completed its scenario or was stopped before, and says where
    assert summary["completed"] + len(summary["stopped"]) == 3
    assert all(s["step"] for s in summary["stopped"])
    assert summary["sessions_cut_short"] <= summary["sessions"]
    assert summary["sessions_cut_short"] <= 3

    # the plain-text report of a run cut short in its first session
    assert_clean(text_result, 130, ["ocpp-trio station: interrupted"])
    head = text_result.out[0]
    assert "stopped by Ctrl-C: 1 stations in" in head
    assert "0 completed, 0 failed, 1 stopped before completing (1 in meter values)" in head
    assert "1 charging session (1 cut short by Ctrl-C)" in text_result.out[1]

    # the CSMS's books agree: each session reported (cut short ones included) is a
    # finished transaction there (at most one per station may have been stopped in
    # the instant of Ctrl-C, its answer not read)
    assert_clean(served, 0, [])
    csms = _summary(served.out)
    station_sessions = summary["sessions"] + 1  # the text run's cut-short session
    assert station_sessions <= csms["finished_transactions"] <= station_sessions + 3
    assert csms["transactions"] == csms["finished_transactions"]
