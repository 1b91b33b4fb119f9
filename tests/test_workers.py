"""serve_workers: several processes share one port; SIGTERM stops them cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from ocpp_trio import open_ocpp_client

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "peers" / "ours_workers.py"

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="SO_REUSEPORT load balancing is Linux"
)


async def _read_line(stream: trio.abc.ReceiveStream) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            break
        data += chunk
    return data.decode()


async def test_two_workers_share_the_port_and_stop_on_sigterm() -> None:
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(SCRIPT), "--workers", "2"], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        with trio.fail_after(30):
            info = json.loads(await _read_line(proc.stdout))
        assert len(set(info["workers"])) == 2
        url = f"ws://127.0.0.1:{info['port']}/ocpp"
        served_by: set[str] = set()
        with trio.fail_after(30):
            for i in range(40):
                async with open_ocpp_client(
                    url, identity=f"CP{i}", ping_interval=0, reconnect=False
                ) as client:
                    res = await client.call("DataTransfer", {"vendorId": "test"})
                    served_by.add(res["data"])
                if len(served_by) == 2:
                    break
        assert served_by == {str(pid) for pid in info["workers"]}
        # A station stays connected while the workers stop: it sees 1001.
        async with open_ocpp_client(
            url, identity="LAST", ping_interval=0, reconnect=False
        ) as client:
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                await client.wait_closed()
            assert client.connection is not None
            assert client.connection.close_code == 1001
        with trio.fail_after(20):
            assert await proc.wait() == 0
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()


async def test_workers_stop_when_the_parent_is_killed() -> None:
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(SCRIPT), "--workers", "2"], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        with trio.fail_after(30):
            info = json.loads(await _read_line(proc.stdout))
        url = f"ws://127.0.0.1:{info['port']}/ocpp"
        async with open_ocpp_client(
            url, identity="CP1", ping_interval=0, reconnect=False
        ) as client:
            proc.kill()  # SIGKILL: the parent cannot pass anything on
            with trio.fail_after(20):
                await client.wait_closed()
            assert client.connection is not None
            assert client.connection.close_code == 1001
        with trio.fail_after(20):
            while True:  # the workers are gone: nobody listens on the port any more
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", info["port"])
                except OSError:
                    break
                await stream.aclose()
                await trio.sleep(0.1)
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()
