"""Echo peers for the Autobahn|Testsuite (``make conformance``; see ``run.py``).

``server-driver PORT``: an echo server over the default driver (``WSTransport``
from ``server_handshake``).  ``server-trio-websocket PORT``: the same over the
trio-websocket backend (``TrioWebsocketTransport``).  ``client URL AGENT``: the
default driver as a client of Autobahn's fuzzing server, one connection per
case.  Every text message is sent back as it came; a binary message closes
with 1003 on both backends, as OCPP-J uses text only.  Message and fragment
limits are raised so that the size cases test the protocol, not our limits.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from typing import Any

import trio

from ocpp_trio._core.errors import ConnectionClosed
from ocpp_trio._websocket.handshake import HandshakeFailed, client_handshake, server_handshake

MAX_SIZE = 32 * 1024 * 1024
MAX_FRAGMENTS = 2**20


async def _echo(transport: Any) -> None:
    try:
        while True:
            message = await transport.receive()
            if isinstance(message, bytes):
                await transport.aclose(1003, "text only")
                return
            await transport.send(message)
    except ConnectionClosed:
        pass
    finally:
        with trio.move_on_after(2) as scope:
            scope.shield = True
            await transport.aclose()


async def _driver_server(stream: trio.SocketStream) -> None:
    try:
        with trio.fail_after(10):
            request = await server_handshake(
                stream, max_message_size=MAX_SIZE, max_fragments=MAX_FRAGMENTS
            )
            transport = await request.accept(None)
    except (HandshakeFailed, trio.TooSlowError):
        await trio.aclose_forcefully(stream)
        return
    await _echo(transport)


async def _trio_websocket_server(stream: trio.SocketStream) -> None:
    import trio_websocket

    from ocpp_trio._websocket.trio_websocket import TrioWebsocketTransport

    async with trio.open_nursery() as nursery:
        request = await trio_websocket.wrap_server_stream(
            nursery, stream, max_message_size=MAX_SIZE
        )
        ws = await request.accept()
        await _echo(TrioWebsocketTransport(ws, stream))


async def _client(base: str, agent: str) -> None:
    async def connect(path: str) -> Any:
        stream = await trio.open_tcp_stream("127.0.0.1", int(base.rsplit(":", 1)[1]))
        transport, _ = await client_handshake(
            stream,
            base + path,
            subprotocols=[],
            headers=[],
            max_message_size=MAX_SIZE,
            max_fragments=MAX_FRAGMENTS,
        )
        return transport

    counter = await connect("/getCaseCount")
    count = json.loads(await counter.receive())
    await counter.aclose()
    for case in range(1, count + 1):
        try:
            with trio.fail_after(60):
                await _echo(await connect(f"/runCase?case={case}&agent={agent}"))
        except (HandshakeFailed, OSError, trio.TooSlowError) as exc:
            print(f"case {case}: {exc!r}", file=sys.stderr)
    reporter = await connect(f"/updateReports?agent={agent}")
    await reporter.aclose()


async def _guarded(handler: Any, stream: trio.SocketStream) -> None:
    """One connection's handler; whatever it raises ends that connection only."""
    try:
        await handler(stream)
    except Exception as exc:  # an echo peer under fuzzing: report and carry on
        print(f"connection failed: {exc!r}", file=sys.stderr)
        await trio.aclose_forcefully(stream)


def main() -> None:
    mode, arg = sys.argv[1], sys.argv[2]
    if mode == "client":
        trio.run(_client, arg, sys.argv[3])
        return
    handler = {"server-driver": _driver_server, "server-trio-websocket": _trio_websocket_server}
    serve = partial(_guarded, handler[mode])
    trio.run(partial(trio.serve_tcp, serve, int(arg), host="127.0.0.1"))


if __name__ == "__main__":
    main()
