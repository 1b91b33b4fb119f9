"""mobilityhouse ocpp 2.1.0 CSMS (asyncio + websockets, library defaults) answering Heartbeat.

It answers BootNotification too; with ``--tls-cert`` it also serves TLS on a
second port (announced as ``tls_port``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, RegistrationStatus

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import announce_port, server_args

logging.getLogger("ocpp").setLevel(logging.WARNING)


class CSMS(ChargePoint):
    @on(Action.heartbeat)
    async def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time="2024-01-01T00:00:00Z")

    @on(Action.boot_notification)
    async def on_boot_notification(self, **kwargs: Any) -> call_result.BootNotification:
        return call_result.BootNotification(
            current_time="2024-01-01T00:00:00Z", interval=300, status=RegistrationStatus.accepted
        )


async def handler(ws) -> None:  # type: ignore[no-untyped-def]
    cp = CSMS(ws.request.path.rsplit("/", 1)[-1], ws)
    try:
        await cp.start()
    except websockets.exceptions.ConnectionClosed:
        pass


async def main() -> None:
    args = server_args()
    options: dict[str, Any] = {
        "subprotocols": ["ocpp1.6"],
        "ping_interval": None,
        "compression": None,
    }
    async with websockets.serve(handler, "127.0.0.1", 0, **options) as server:
        tls_port = None
        if args.tls_cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(args.tls_cert)
            tls = await websockets.serve(handler, "127.0.0.1", 0, ssl=context, **options)
            tls_port = next(iter(tls.sockets)).getsockname()[1]
        announce_port(next(iter(server.sockets)).getsockname()[1], tls_port)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
