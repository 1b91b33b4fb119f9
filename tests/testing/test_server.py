"""open_memory_server: a real OCPPServer with in-memory stations, in virtual time."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
import trio.testing

from ocpp_trio import (
    AuthAccept,
    AuthReject,
    HandshakeRejected,
    HandshakeRequest,
    OCPPConnection,
    ProtocolNegotiationError,
)
from ocpp_trio.testing import MemoryServer, open_memory_server

NOW = {"currentTime": "2024-01-01T00:00:00Z"}
BOOT_RESULT = {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300}


class CSMS:
    """A small CSMS, as a user would write one: boots, heartbeats, asks for configuration."""

    def __init__(self) -> None:
        self.booted: list[str] = []
        self.configs: dict[str, Any] = {}

    async def on_station(self, conn: OCPPConnection) -> None:
        booted = trio.Event()

        def boot(ctx: Any) -> dict[str, Any]:
            self.booted.append(ctx.identity)
            booted.set()
            return BOOT_RESULT

        conn.handle("BootNotification", boot)
        conn.handle("Heartbeat", lambda ctx: NOW)
        await booted.wait()
        await trio.sleep(1)
        self.configs[conn.identity] = await conn.call("GetConfiguration", {})


async def test_many_stations_against_one_handler(autojump_clock: trio.testing.MockClock) -> None:
    csms = CSMS()
    async with open_memory_server(csms.on_station, strict_mode=True) as srv:
        assert isinstance(srv, MemoryServer)
        async with AsyncExitStack() as stack:
            stations = [
                await stack.enter_async_context(srv.connect(f"CP{i:03}", strict_mode=True))
                for i in range(20)
            ]
            assert sorted(srv.clients) == [f"CP{i:03}" for i in range(20)]
            for station in stations:
                station.handle("GetConfiguration", lambda ctx: {"configurationKey": []})
            async with trio.open_nursery() as nursery:
                for station in stations:
                    nursery.start_soon(
                        station.call,
                        "BootNotification",
                        {"chargePointVendor": "V", "chargePointModel": "M"},
                    )
            await trio.sleep(2)
            assert trio.current_time() == 2
        assert len(csms.booted) == 20
        assert csms.configs == {f"CP{i:03}": {"configurationKey": []} for i in range(20)}
        await trio.testing.wait_all_tasks_blocked()
        assert srv.clients == {}


async def test_the_server_side_is_there_when_connect_returns() -> None:
    async with open_memory_server() as srv, srv.connect("CP1") as station:
        conn = srv.clients["CP1"]
        assert conn.protocol == station.protocol == "ocpp1.6"
        assert conn.handshake.path == "/ocpp/CP1"
        assert "CP1" in repr(srv)
        conn.handle("Heartbeat", lambda ctx: NOW)
        assert await station.call("Heartbeat", {}) == NOW


async def test_the_servers_protocol_choice_and_auth_apply() -> None:
    def auth(req: HandshakeRequest) -> AuthAccept | AuthReject:
        if req.identity == "intruder":
            return AuthReject(401)
        return AuthAccept(session={"site": "depot"})

    async with open_memory_server(
        protocols=["ocpp2.0.1"], auth=auth, station_protocols=["ocpp2.1", "ocpp2.0.1"]
    ) as srv:
        async with srv.connect("CP1") as station:
            assert station.protocol == "ocpp2.0.1"
            assert srv.clients["CP1"].session == {"site": "depot"}
        with pytest.raises(HandshakeRejected) as info:
            async with srv.connect("intruder"):
                pass  # pragma: no cover
        assert info.value.status_code == 401
        with pytest.raises(ProtocolNegotiationError):
            async with srv.connect("CP2", protocols=["ocpp1.6"]):
                pass  # pragma: no cover


async def test_a_second_connection_replaces_the_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_server() as srv, srv.connect("CP1", reconnect=False) as first:
        old = srv.clients["CP1"]
        async with srv.connect("CP1") as _second:
            await first.wait_closed()
            assert old.close_code == 4000
            assert srv.clients["CP1"] is not old


async def test_closing_the_server_closes_the_stations_with_1001(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_server() as srv, srv.connect("CP1", reconnect=False) as station:
        await srv.server.close()
        await station.wait_closed()
        assert station.connection is not None
        assert station.connection.close_code == 1001
