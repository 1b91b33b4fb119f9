"""Options and events that must fail: each line carries the mypy error code it must raise.

As in ``check_errors.py``: mypy runs with ``warn_unused_ignores`` (part of
--strict) and pyright with ``reportUnnecessaryTypeIgnoreComment``, so a line
that stops failing fails the check.  One statement per line (``fmt: off``).
"""
# pyright: reportUnnecessaryTypeIgnoreComment=true
# fmt: off

from __future__ import annotations

from functools import partial

from ocpp_trio import (
    ConnectionKwargs,
    OCPPClient,
    OCPPConnection,
    OCPPServer,
    open_ocpp_client,
    serve_ocpp,
)
from ocpp_trio.events import CloseEvent, OpenEvent
from ocpp_trio.server import HandshakeRejectedEvent
from ocpp_trio.testing import MemoryServer, open_memory_pair, open_memory_server
from ocpp_trio.types import v201


async def misspelt_options() -> None:
    # a misspelt connection option
    async with open_ocpp_client("ws://h/ocpp", identity="CP1", call_timout=5):  # type: ignore[call-arg]
        pass
    # a misspelt client option
    async with open_ocpp_client("ws://h/ocpp", identity="CP1", max_reconnect=3):  # type: ignore[call-arg]
        pass
    # a value of the wrong type
    async with open_ocpp_client("ws://h/ocpp", identity="CP1", call_timeout="5"):  # type: ignore[arg-type]
        pass
    # a bad literal
    async with open_ocpp_client("ws://h/ocpp", identity="CP1", websocket_backend="wsproto"):  # type: ignore[arg-type]
        pass
    # a misspelt server option and connection option
    OCPPServer(None, duplicate_polcy="reject")  # type: ignore[call-arg]
    OCPPServer(None, ping_intervall=0)  # type: ignore[call-arg]
    await serve_ocpp(None, 9000, call_timout=5)  # type: ignore[call-arg]
    await serve_ocpp(None, 9000, duplicate_policy="ignore")  # type: ignore[arg-type]
    partial(serve_ocpp, None, 0, host="127.0.0.1", call_timout=5)  # type: ignore[call-arg]
    # a client-only option is not a connection option
    shared: ConnectionKwargs = {"reconnect": False}  # type: ignore[typeddict-unknown-key]
    print(shared)


def misspelt_reconfigure(client: OCPPClient, conn: OCPPConnection) -> None:
    client.reconfigure(call_timout=5)  # type: ignore[call-arg]
    conn.reconfigure(call_concurrency=1.5)  # type: ignore[arg-type]
    # the client's own options cannot be changed at run time
    client.reconfigure(reconnect=False)  # type: ignore[call-arg]


def wrong_event_callbacks(client: OCPPClient, server: OCPPServer) -> None:
    def on_close(ev: CloseEvent) -> None:
        print(ev.code)

    def on_open(ev: OpenEvent) -> None:
        print(ev.protocol)

    def on_rejected(ev: HandshakeRejectedEvent) -> None:
        print(ev.status)

    # a callback for another event's payload
    client.on("open", on_close)  # type: ignore[call-overload]
    client.on("close", on_open)  # type: ignore[call-overload]
    # an unknown event name
    client.on("closed", on_close)  # type: ignore[call-overload]
    # a lambda reading what the payload does not have
    client.on("close", lambda ev: ev.protocol)  # type: ignore[call-overload]
    # server events: the payloads are a connection and a HandshakeRejectedEvent
    server.on("client", on_rejected)  # type: ignore[call-overload]
    server.on("handshake_rejected", on_open)  # type: ignore[call-overload]
    server.on("open", on_open)  # type: ignore[call-overload]


async def wrong_call_station(server: OCPPServer) -> None:
    # the response of a typed action has its own keys
    res = await server.call_station("CP1", v201.Reset({"type": "Immediate"}))
    print(res["currentTime"])  # type: ignore[typeddict-item]
    # and the request is checked
    await server.call_station("CP1", v201.Reset({"type": "Hard"}))  # type: ignore[typeddict-item]


async def misspelt_test_options() -> None:
    async with open_memory_pair(call_timout=5):  # type: ignore[call-arg]
        pass
    async with open_memory_pair(station_options={"strict_mod": True}):  # type: ignore[typeddict-unknown-key]
        pass
    async with open_memory_server(duplicate_polcy="reject"):  # type: ignore[call-arg]
        pass


async def misspelt_connect(srv: MemoryServer) -> None:
    async with srv.connect("CP1", max_reconnect=1):  # type: ignore[call-arg]
        pass
