"""The transport floor: raw trio-websocket answering every CALL, no OCPP library at all.

With ``--tls-cert`` it also serves TLS on a second port (announced as ``tls_port``).
"""

from __future__ import annotations

import json
import ssl
import sys
from functools import partial

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import BOOT_RESULT, HEARTBEAT_RESULT, announce_port, server_args


async def handler(request: WebSocketRequest) -> None:
    ws = await request.accept(subprotocol="ocpp1.6")
    try:
        while True:
            message = await ws.get_message()
            frame = json.loads(message)
            result = BOOT_RESULT if frame[2] == "BootNotification" else HEARTBEAT_RESULT
            await ws.send_message(json.dumps([3, frame[1], result]))
    except ConnectionClosed:
        pass


async def main() -> None:
    args = server_args()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(serve_websocket, handler, "127.0.0.1", 0, ssl_context=None)
        )
        tls_port = None
        if args.tls_cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(args.tls_cert)
            tls = await nursery.start(
                partial(serve_websocket, handler, "127.0.0.1", 0, ssl_context=context)
            )
            tls_port = tls.port
        announce_port(server.port, tls_port)


if __name__ == "__main__":
    trio.run(main)
