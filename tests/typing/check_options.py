"""Typed options and events: what a user writes, checked (not run) by ``make typecheck``.

The lines that must fail are in ``check_option_errors.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, assert_type

import trio

from ocpp_trio import (
    ClientKwargs,
    ConnectionKwargs,
    OCPPClient,
    OCPPConnection,
    OCPPServer,
    ServerKwargs,
    open_ocpp_client,
    serve_ocpp,
)
from ocpp_trio.events import (
    CallEvent,
    CloseEvent,
    EventName,
    EventPayload,
    OpenEvent,
    ReconnectEvent,
)
from ocpp_trio.server import HandshakeRejectedEvent
from ocpp_trio.types import v16, v201


async def station() -> None:
    async with open_ocpp_client(
        "ws://127.0.0.1:9000/ocpp",
        identity="CP001",
        protocols=["ocpp1.6"],
        call_timeout=5,
        ping_interval=0,
        strict_mode=["ocpp1.6"],
        max_reconnects=math.inf,
        backoff_min=0.5,
        headers={"X-Site": "depot"},
        websocket_backend="trio-websocket",
    ) as client:
        assert_type(client, OCPPClient)
        client.reconfigure(call_timeout=10.0, strict_mode=True)

        def on_close(ev: CloseEvent) -> None:
            print(ev.code, ev.by_peer, ev.will_reconnect)

        assert_type(client.on("close", on_close), Callable[[CloseEvent], object])
        client.on("reconnect", lambda ev: print(ev.delay, ev.error))
        client.on("limit", lambda ev: print(ev.limit, ev.value))

        def log_any(ev: EventPayload) -> None:
            print(ev)

        names: list[EventName] = ["open", "close", "call"]
        for name in names:
            client.on(name, log_any)  # one callback for any event
        client.off("close", on_close)
        client.off("limit")


async def shared_settings() -> None:
    common: ConnectionKwargs = {"call_timeout": 10, "strict_mode": True}
    station_options: ClientKwargs = {"reconnect": False, "password": b"secret", "ping_interval": 0}
    async with open_ocpp_client("ws://h/ocpp", identity="CP1", **station_options) as client:
        assert_type(client.options.call_timeout, float)
    async with open_ocpp_client("ws://h/ocpp", identity="CP2", **common):
        pass
    server_options: ServerKwargs = {"duplicate_policy": "reject", "max_connections": 100}
    OCPPServer(None, **server_options)
    OCPPServer(None, **common)


def server_events(server: OCPPServer) -> None:
    def on_client(conn: OCPPConnection) -> None:
        def on_open(ev: OpenEvent) -> None:
            print(ev.protocol, ev.reconnected)

        def on_call(ev: CallEvent) -> None:
            print(ev.method, ev.params)

        conn.on("open", on_open)
        conn.on("call", on_call)
        conn.on("limit", lambda ev: print(ev.limit, ev.description))

    def on_rejected(ev: HandshakeRejectedEvent) -> None:
        print(ev.status, ev.reason, ev.identity, ev.remote)

    server.on("client", on_client)
    server.on("handshake_rejected", on_rejected)
    server.on("handshake_rejected", lambda ev: print(ev.status))
    server.off("client", on_client)


async def csms(nursery: trio.Nursery) -> None:
    async def on_station(conn: OCPPConnection) -> None:
        conn.reconfigure(call_timeout=3)

    # options through nursery.start go by functools.partial, checked as well
    server = await nursery.start(
        partial(serve_ocpp, on_station, 0, host="127.0.0.1", call_timeout=5)
    )
    print(server.port)
    srv = OCPPServer(on_station, call_timeout=5, strict_mode=True, max_message_size=65536)
    reset = await srv.call_station("CP1", v201.Reset({"type": "Immediate"}))
    assert_type(reset, v201.ResetResponse)
    boot = await srv.call_station("CP1", v16.GetConfiguration({"key": ["HeartbeatInterval"]}))
    assert_type(boot, v16.GetConfigurationResponse)
    raw = await srv.call_station("CP1", "ocpp1.6", "Heartbeat", {}, timeout=2)
    assert_type(raw, dict[str, Any])
    raw2 = await srv.call_station("CP1", "Heartbeat")
    assert_type(raw2, dict[str, Any])


async def serve_typed() -> None:
    await serve_ocpp(None, 9000, host="127.0.0.1", call_timeout=5, duplicate_policy="replace")


def reconnect_event(ev: ReconnectEvent) -> float:
    return ev.delay


async def typed_test_helpers() -> None:
    from ocpp_trio.testing import open_memory_pair, open_memory_server

    async with open_memory_pair(
        "ocpp2.0.1", call_timeout=2, station_options={"strict_mode": True}
    ) as pair:
        pair.station.reconfigure(call_timeout=1)
    async with (
        open_memory_server(protocols=["ocpp1.6"], duplicate_policy="reject") as srv,
        srv.connect("CP1", password="secret", reconnect=False) as client,
    ):
        assert_type(client, OCPPClient)
