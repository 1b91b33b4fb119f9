"""The limit of a Python server on ocpp_trio's own stack: its WebSocket driver, no OCPP layer.

The same handshake and transport as ``ocpp_trio`` (websockets' Sans-I/O
protocol inside ``ocpp_trio._websocket``, permessage-deflate accepted with
the same threshold), a task per station, and for each message a canned
CALLRESULT with the CALL's message id cut out of the text: no JSON decoding,
no validation, no routing, no RPC state.  What ocpp_trio spends above this is
its OCPP layer; what this spends is the floor that layer sits on.

With ``--tls-cert`` it also serves TLS on a second port (announced as ``tls_port``).
"""

from __future__ import annotations

import json
import ssl
import sys
from functools import partial

import trio

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import BOOT_RESULT, HEARTBEAT_RESULT, announce_port, server_args

from ocpp_trio._core.errors import ConnectionClosed
from ocpp_trio._websocket.handshake import HandshakeFailed, server_handshake

_HEARTBEAT = json.dumps(HEARTBEAT_RESULT, separators=(",", ":"))
_BOOT = json.dumps(BOOT_RESULT, separators=(",", ":"))


async def station(stream: trio.abc.Stream, context: ssl.SSLContext | None) -> None:
    if context is not None:
        stream = trio.SSLStream(stream, context, server_side=True)
    try:
        with trio.move_on_after(10):
            request = await server_handshake(stream, max_message_size=65536)
            transport = await request.accept("ocpp1.6")
    except (HandshakeFailed, trio.BrokenResourceError):
        await trio.aclose_forcefully(stream)
        return
    try:
        while True:
            text = await transport.receive()
            # [2,"<id>","<action>",{...}]: the id is between the first two quotes.
            _, mid, _ = text.split('"', 2)
            body = _BOOT if "BootNotification" in text else _HEARTBEAT
            await transport.send(f'[3,"{mid}",{body}]')
    except ConnectionClosed:
        pass
    finally:
        await transport.abort()


async def main() -> None:
    args = server_args()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, partial(station, context=None), 0, host="127.0.0.1")
        )
        tls_port = None
        if args.tls_cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(args.tls_cert)
            tls = await nursery.start(
                partial(trio.serve_tcp, partial(station, context=context), 0, host="127.0.0.1")
            )
            tls_port = tls[0].socket.getsockname()[1]
        announce_port(listeners[0].socket.getsockname()[1], tls_port)


if __name__ == "__main__":
    trio.run(main)
