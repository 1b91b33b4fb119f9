"""ocpp_trio CSMS answering Heartbeat and BootNotification (sync handlers), for the benchmarks.

With ``--tls-cert`` it also serves TLS on a second port (announced as ``tls_port``).
"""

from __future__ import annotations

import os
import sys
from functools import partial
from typing import Any

import trio

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import BOOT_RESULT, HEARTBEAT_RESULT, announce_port, server_args

from ocpp_trio import OCPPConnection, OCPPServer, serve_ocpp
from ocpp_trio.security import server_ssl_context


async def on_station(conn: OCPPConnection) -> None:
    conn.handle("Heartbeat", lambda ctx: HEARTBEAT_RESULT)
    conn.handle("BootNotification", lambda ctx: BOOT_RESULT)


async def main() -> None:
    args = server_args()
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "protocols": ["ocpp1.6"],
        "strict_mode": args.strict,
        # The library's default (30 s): every station has its ping task, as
        # in production; no ping falls due during a benchmark's measurement.
        "ping_interval": float(os.environ.get("PING", "30")),
        "max_connections": 100_000,
        "websocket_backend": os.environ.get("WSB", "websockets"),
        "compression": os.environ.get("COMP", "1") == "1",
    }
    telemetry = os.environ.get("TELEMETRY", "")
    if telemetry == "api":  # the OpenTelemetry API with no SDK: no-op instruments
        from ocpp_trio.observability import Telemetry

        options["telemetry"] = Telemetry()
    elif telemetry.startswith("prometheus"):
        from opentelemetry.sdk.trace import TracerProvider

        from ocpp_trio.observability import PrometheusMetrics

        spans = telemetry.endswith("+spans")  # recorded, sampled, exported nowhere
        options["telemetry"] = PrometheusMetrics().telemetry(
            traces=spans, tracer_provider=TracerProvider() if spans else None
        )
    async with trio.open_nursery() as nursery:
        server: OCPPServer = await nursery.start(partial(serve_ocpp, on_station, 0, **options))
        tls_port = None
        if args.tls_cert:
            tls: OCPPServer = await nursery.start(
                partial(
                    serve_ocpp,
                    on_station,
                    0,
                    ssl_context=server_ssl_context(args.tls_cert),
                    **options,
                )
            )
            tls_port = tls.port
        announce_port(server.port, tls_port)


if __name__ == "__main__":
    trio.run(main)
