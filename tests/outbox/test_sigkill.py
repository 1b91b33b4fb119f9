"""A real station process, killed with SIGKILL mid-delivery, restarted: nothing is lost.

The station (a subprocess on the default SQLite store) queues a transaction
of 1 StartTransaction, ``N`` MeterValues and a StopTransaction, then boots.
The CSMS (a real server on a loopback port, in this process) kills the
station with SIGKILL while it handles MeterValues number ``K``: that message
is in flight (the CSMS has it, the station never gets the answer) and the
rest of the queue is on disk.  Restarted, the station delivers the rest.
The CSMS sees every message, in order, no gap, and exactly the documented
duplicate: the message in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import trio

from ocpp_trio import HandlerContext, OCPPConnection, serve_ocpp

from ..helpers import Lines

N = 12
K = 5

STATION = textwrap.dedent(
    """
    import sys
    import trio
    from ocpp_trio import open_ocpp_client
    from ocpp_trio.outbox import Outbox

    url, db, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    def meter(i):
        return [{"timestamp": "2024-01-01T00:00:00Z", "sampledValue": [{"value": str(i)}]}]

    async def main():
        outbox = Outbox(db, message_attempt_interval=1)
        async with open_ocpp_client(
            url, identity="CP1", protocols=["ocpp1.6"], outbox=outbox, ping_interval=0,
            backoff_min=0.1, backoff_max=0.5, retry_initial_connect=True,
        ) as client:
            if mode == "produce":
                start = await client.enqueue("StartTransaction", {
                    "connectorId": 1, "idTag": "TAG", "meterStart": 0,
                    "timestamp": "2024-01-01T00:00:00Z"})
                for i in range(n):
                    await client.enqueue("MeterValues", {
                        "connectorId": 1, "transactionId": 0, "meterValue": meter(i)},
                        transaction_of=start)
                await client.enqueue("StopTransaction", {
                    "transactionId": 0, "meterStop": n, "timestamp": "2024-01-01T01:00:00Z"},
                    transaction_of=start)
            print("queued", len(outbox), flush=True)
            await client.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
            last = outbox.pending()[-1].seq
            await outbox.handle(last).result()
            print("drained", len(outbox), flush=True)

    trio.run(main)
    """
)


async def test_sigkill_mid_delivery_then_restart_delivers_everything(tmp_path: Path) -> None:
    script = tmp_path / "station.py"
    script.write_text(STATION)
    db = tmp_path / "outbox.db"
    received: list[tuple[str, dict[str, Any], str]] = []
    victim: list[trio.Process] = []
    killed = trio.Event()

    async def on_station(conn: OCPPConnection) -> None:
        async def answer(ctx: HandlerContext) -> dict[str, Any]:
            received.append((ctx.method, dict(ctx.params), ctx.message_id))
            if ctx.method == "BootNotification":
                return {
                    "status": "Accepted",
                    "currentTime": "2024-01-01T00:00:00Z",
                    "interval": 300,
                }
            if ctx.method == "StartTransaction":
                return {"transactionId": 4711, "idTagInfo": {"status": "Accepted"}}
            if ctx.method == "StopTransaction":
                return {"idTagInfo": {"status": "Accepted"}}
            value = ctx.params["meterValue"][0]["sampledValue"][0]["value"]
            if value == str(K) and not killed.is_set():
                killed.set()
                os.kill(victim[0].pid, signal.SIGKILL)  # processed here, never answered there
                await victim[0].wait()
            return {}

        conn.handle(answer)

    async def run_station(mode: str) -> list[str]:
        proc = await trio.lowlevel.open_process(
            [sys.executable, str(script), url, str(db), mode, str(N)], stdout=subprocess.PIPE
        )
        victim[:] = [proc]
        assert proc.stdout is not None
        lines = Lines(proc.stdout)
        try:
            await lines.until_eof()
            await proc.wait()
        finally:
            if proc.returncode is None:  # pragma: no cover - the test failed
                proc.kill()
                await proc.wait()
        return lines.seen

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_ocpp, on_station, 0)
            url = f"ws://127.0.0.1:{server.port}/ocpp"
            first = await run_station("produce")
            assert first == [f"queued {N + 2}"]  # everything on disk before the first send
            assert killed.is_set()
            assert victim[0].returncode == -signal.SIGKILL
            second = await run_station("drain")
            nursery.cancel_scope.cancel()

    # restarted with the rest of the queue: the message in flight, the ones after it, the Stop
    assert second == [f"queued {N - K + 1}", "drained 0"]
    actions = [r[0] for r in received]
    assert actions.count("StartTransaction") == 1
    assert actions.count("StopTransaction") == 1
    assert actions[-1] == "StopTransaction"
    values = [
        int(p["meterValue"][0]["sampledValue"][0]["value"])
        for a, p, _ in received
        if a == "MeterValues"
    ]
    assert values == [*range(K + 1), *range(K, N)]  # no gap; the one in flight twice
    tx = [p for a, p, _ in received if a in ("MeterValues", "StopTransaction")]
    assert all(p["transactionId"] == 4711 for p in tx)  # the fix-up survived the restart
    ids = [r[2] for r in received]
    assert len(set(ids)) == len(ids)  # the duplicate went with a new message id
