"""ocpp_trio CSMS on several worker processes sharing one port (serve_workers), answering Heartbeat.

It answers BootNotification too (for (d)); it has no TLS listener.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ocpp_trio import OCPPConnection
from ocpp_trio.workers import serve_workers

HEARTBEAT_RESULT = {"currentTime": "2024-01-01T00:00:00Z"}
BOOT_RESULT = {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300}


async def on_station(conn: OCPPConnection) -> None:
    conn.handle("Heartbeat", lambda ctx: HEARTBEAT_RESULT)
    conn.handle("BootNotification", lambda ctx: BOOT_RESULT)
    conn.handle("DataTransfer", lambda ctx: {"status": "Accepted", "data": str(os.getpid())})


def ready(port: int, pids: list[int]) -> None:
    print(json.dumps({"port": port, "pid": os.getpid(), "workers": pids}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    serve_workers(
        on_station,
        0,
        workers=args.workers,
        host="127.0.0.1",
        on_ready=ready,
        protocols=["ocpp1.6"],
        strict_mode=args.strict,
        ping_interval=0,
        max_connections=100_000,
    )


if __name__ == "__main__":
    main()
