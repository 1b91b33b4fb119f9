"""Cluster features over LocalAdapter: servers in one process sharing a LocalHub.

The same glue as over Redis, with no backend: routing, errors, presence,
duplicate policy and broadcasts, over real loopback WebSockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from ocpp_trio import (
    CallErrorReceived,
    CallTimeout,
    HandshakeRejected,
    OCPPClient,
    RPCSecurityError,
    open_ocpp_client,
)
from ocpp_trio.cluster import (
    ClusterMessage,
    InstanceGone,
    LocalAdapter,
    LocalHub,
    StationOffline,
)
from ocpp_trio.server import CLOSE_REPLACED, OCPPServer

TIMEOUT = 10.0


@asynccontextmanager
async def cluster(n: int, **options: Any) -> AsyncIterator[list[OCPPServer]]:
    """``n`` servers on loopback ports sharing one LocalHub."""
    hub = LocalHub()
    options.setdefault("ping_interval", 0)
    servers = []
    async with trio.open_nursery() as nursery:
        for i in range(n):
            server = OCPPServer(None, **options)
            server.set_adapter(LocalAdapter(hub, instance_id=f"i{i}"))
            await nursery.start(server.listen, 0, "127.0.0.1")
            servers.append(server)
        try:
            yield servers
        finally:
            with trio.fail_after(TIMEOUT):
                for server in servers:
                    await server.close()


@asynccontextmanager
async def station(server: OCPPServer, identity: str, **options: Any) -> AsyncIterator[OCPPClient]:
    options.setdefault("reconnect", False)
    options.setdefault("ping_interval", 0)
    async with open_ocpp_client(
        f"ws://127.0.0.1:{server.port}/ocpp",
        identity=identity,
        protocols=["ocpp1.6"],
        **options,
    ) as client:

        @client.handle("Reset")
        def reset(ctx: Any) -> dict[str, Any]:
            return {"status": "Accepted"}

        @client.handle("UnlockConnector")
        def unlock(ctx: Any) -> dict[str, Any]:
            raise RPCSecurityError("not you", {"why": "test"})

        @client.handle("GetConfiguration")
        async def slow(ctx: Any) -> dict[str, Any]:
            await trio.sleep_forever()
            raise AssertionError

        yield client


async def test_call_reaches_a_station_on_another_instance() -> None:
    async with cluster(2) as (a, b), station(b, "CP1"):
        assert await a.call_station("CP1", "Reset", {"type": "Soft"}) == {"status": "Accepted"}
        assert await a.call_station("CP1", "ocpp1.6", "Reset", {"type": "Hard"}) == {
            "status": "Accepted"
        }
        # and from its own instance, the very local call
        assert await b.call_station("CP1", "Reset", {"type": "Soft"}) == {"status": "Accepted"}
        assert await a.locate_station("CP1") == "i1"
        assert await b.locate_station("CP1") == "i1"


async def test_remote_errors_are_the_local_ones() -> None:
    async with cluster(2) as (a, b), station(b, "CP1"):
        with pytest.raises(CallErrorReceived) as remote:
            await a.call_station("CP1", "UnlockConnector", {"connectorId": 1})
        with pytest.raises(CallErrorReceived) as local:
            await b.call_station("CP1", "UnlockConnector", {"connectorId": 1})
        for info in (remote, local):
            assert info.value.code == "SecurityError"
            assert info.value.description == "not you"
            assert info.value.details == {"why": "test"}
            assert info.value.action == "UnlockConnector"
        assert str(remote.value) == str(local.value)
        with pytest.raises(CallTimeout, match=r"GetConfiguration: no answer within 0\.2 s"):
            await a.call_station("CP1", "GetConfiguration", {}, timeout=0.2)
        with pytest.raises(TypeError):
            await a.call_station("CP1", "Reset", 5)


async def test_offline_station_fails_at_once() -> None:
    async with cluster(2) as (a, _b):
        with trio.fail_after(1):
            with pytest.raises(StationOffline) as info:
                await a.call_station("NOPE", "Reset", {"type": "Soft"})
        assert info.value.identity == "NOPE"
        assert await a.locate_station("NOPE") is None


async def test_presence_follows_connect_and_disconnect() -> None:
    async with cluster(2) as (a, b):
        async with station(b, "CP1") as client:
            assert await a.locate_station("CP1") == "i1"
            await client.close()
        with trio.fail_after(TIMEOUT):
            while await a.locate_station("CP1") is not None:  # noqa: ASYNC110 - polls state held elsewhere
                await trio.sleep(0.01)


async def test_duplicate_rejected_across_instances() -> None:
    async with cluster(2, duplicate_policy="reject") as (a, b), station(a, "CP1"):
        with pytest.raises(HandshakeRejected) as info:
            async with station(b, "CP1"):
                pass  # pragma: no cover
        assert info.value.status_code == 409
        assert await b.locate_station("CP1") == "i0"


async def test_duplicate_replaces_across_instances() -> None:
    async with cluster(2) as (a, b), station(a, "CP1") as old:
        async with station(b, "CP1"):
            with trio.fail_after(TIMEOUT):
                await old.wait_closed()
            assert old.connection is not None
            assert old.connection.close_code == CLOSE_REPLACED
            assert "CP1" not in a.clients
            assert await a.locate_station("CP1") == "i1"
            assert await a.call_station("CP1", "Reset", {"type": "Soft"}) == {"status": "Accepted"}
        # the old connection's release did not drop the new one's presence
        with trio.fail_after(TIMEOUT):
            while await a.locate_station("CP1") is not None:  # noqa: ASYNC110 - polls state held elsewhere
                await trio.sleep(0.01)


async def test_broadcast_reaches_every_instance() -> None:
    got: list[tuple[str, ClusterMessage]] = []
    async with cluster(3) as servers:
        for server in servers:
            server.subscribe("news", lambda m, s=server: got.append((s.adapter.instance_id, m)))
        await servers[1].publish("news", {"n": 1})
        await servers[1].publish("other", {"n": 2})
    assert sorted(i for i, _ in got) == ["i0", "i1", "i2"]
    assert all(m == ClusterMessage(channel="news", payload={"n": 1}, instance="i1") for _, m in got)


async def test_a_dead_instance_is_gone() -> None:
    hub = LocalHub()
    dead = LocalAdapter(hub, instance_id="dead")
    async with cluster(1) as (a,):
        async with trio.open_nursery() as nursery:
            await nursery.start(dead.run, a._glue())
            await dead.claim("CP9", "1", replace=False)
            nursery.cancel_scope.cancel()
        with pytest.raises(InstanceGone):
            await dead.request("dead", "call", {"identity": "CP9"}, 1.0)
        assert await dead.locate("CP9") is None


async def test_single_server_without_adapter() -> None:
    async with trio.open_nursery() as nursery:
        server = OCPPServer(None, ping_interval=0)
        seen: list[ClusterMessage] = []
        server.subscribe("x", seen.append)
        await nursery.start(server.listen, 0, "127.0.0.1")
        async with station(server, "CP1"):
            assert await server.call_station("CP1", "Reset", {"type": "Soft"}) == {
                "status": "Accepted"
            }
            assert await server.locate_station("CP1") == server.adapter.instance_id
        with pytest.raises(StationOffline):
            await server.call_station("CP1", "Reset", {"type": "Soft"})
        await server.publish("x", [1, 2])
        assert [m.payload for m in seen] == [[1, 2]]
        with pytest.raises(RuntimeError):
            server.set_adapter(LocalAdapter())
        await server.close()


async def test_typed_action_form() -> None:
    v16 = pytest.importorskip("ocpp_trio.types.v16")
    if not hasattr(v16, "Reset"):  # pragma: no cover - typed actions not there yet
        pytest.skip("typed action entries are not available")
    async with cluster(2) as (a, b), station(b, "CP1"):
        assert await a.call_station("CP1", v16.Reset({"type": "Soft"})) == {"status": "Accepted"}
        assert await b.call_station("CP1", v16.Reset({"type": "Soft"})) == {"status": "Accepted"}
