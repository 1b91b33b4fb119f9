"""Several CSMS processes sharing one real Redis: broadcast, routed calls, presence, failures.

Each instance is ``instance.py`` in a process of its own (presence_ttl 1.5 s,
so a refresh every 0.5 s); the test process runs the stations and a control
connection (``ctl``) to each instance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio

from ocpp_trio import (
    CallErrorReceived,
    HandshakeRejected,
    OCPPClient,
    RPCSecurityError,
    open_ocpp_client,
)
from ocpp_trio.server import CLOSE_REPLACED

from .conftest import Instance, RedisServer, instances

pytestmark = pytest.mark.slow

TTL = 1.5
TIMEOUT = 20.0


@asynccontextmanager
async def station(instance: Instance, identity: str) -> AsyncIterator[OCPPClient]:
    async with open_ocpp_client(
        instance.url,
        identity=identity,
        protocols=["ocpp1.6"],
        reconnect=False,
        ping_interval=0,
        call_timeout=TIMEOUT,
    ) as client:

        @client.handle("Reset")
        def reset(ctx: Any) -> dict[str, Any]:
            return {"status": "Accepted", "by": identity}

        @client.handle("UnlockConnector")
        def unlock(ctx: Any) -> dict[str, Any]:
            raise RPCSecurityError("not you")

        @client.handle("GetConfiguration")
        async def hang(ctx: Any) -> dict[str, Any]:
            await trio.sleep_forever()
            raise AssertionError

        yield client


async def ctl(client: OCPPClient, action: str, **params: Any) -> Any:
    """Run ``action`` on the instance ``client`` is connected to."""
    for _ in range(50):
        try:
            return await client.call(action, params)
        except CallErrorReceived as exc:  # the handlers are registered a moment after open
            if exc.code != "NotImplemented":
                raise
            await trio.sleep(0.02)
    raise AssertionError("control handlers never appeared")


async def wait_for(client: OCPPClient, action: str, predicate: Any, **params: Any) -> Any:
    with trio.fail_after(TIMEOUT):
        while not predicate(result := await ctl(client, action, **params)):  # noqa: ASYNC110 - polls state held elsewhere
            await trio.sleep(0.05)
    return result


@asynccontextmanager
async def controls(insts: list[Instance]) -> AsyncIterator[list[OCPPClient]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(station(i, f"ctl-{i.name}")) for i in insts]


async def test_broadcast_and_calls_across_three_instances(
    redis_server: RedisServer, prefix: str
) -> None:
    async with (
        instances(redis_server.url, prefix, ["A", "B", "C"]) as (a, b, c),
        controls([a, b, c]) as (ca, cb, cc),
        station(a, "CP-A"),
        station(b, "CP-B"),
        station(c, "CP-C"),
    ):
        # broadcast reaches every instance, its own included
        assert await ctl(cb, "CtlPublish", channel="news", payload={"n": 1}) == {"ok": True}
        for control in (ca, cb, cc):
            got = await wait_for(control, "CtlBroadcasts", lambda r: r["got"])
            assert got == {"got": [["B", {"n": 1}]]}
        # a call issued on A reaches the station on B, and the other ways round
        reply = await ctl(ca, "CtlCall", identity="CP-B", method="Reset", params={"type": "Soft"})
        assert reply["ok"] == {"status": "Accepted", "by": "CP-B"}
        reply = await ctl(cc, "CtlCall", identity="CP-A", method="Reset", params={"type": "Hard"})
        assert reply["ok"] == {"status": "Accepted", "by": "CP-A"}
        reply = await ctl(
            cb, "CtlCall", identity="CP-C", protocol="ocpp1.6", method="Reset", params={}
        )
        assert reply["ok"]["by"] == "CP-C"
        # the station's CALLERROR comes back as the same error
        reply = await ctl(
            ca, "CtlCall", identity="CP-B", method="UnlockConnector", params={"connectorId": 1}
        )
        assert reply["error"] == "CallErrorReceived"
        assert reply["code"] == "SecurityError"
        assert reply["message"] == "UnlockConnector: peer answered SecurityError: not you"
        # timeouts as a local call's
        reply = await ctl(
            ca, "CtlCall", identity="CP-B", method="GetConfiguration", params={}, timeout=0.3
        )
        assert reply["error"] == "CallTimeout"
        assert 0.3 <= reply["elapsed"] < 1.0
        # an unknown station: a clear error at once
        reply = await ctl(ca, "CtlCall", identity="NOPE", method="Reset", params={})
        assert reply["error"] == "StationOffline"
        assert reply["elapsed"] < 0.5
        assert await ctl(cc, "CtlLocate", identity="CP-B") == {"ok": "B"}


async def test_presence_after_disconnect_and_after_an_instance_is_killed(
    redis_server: RedisServer, prefix: str
) -> None:
    async with (
        instances(redis_server.url, prefix, ["A", "B"], ttl=TTL) as (a, b),
        controls([a]) as (ca,),
    ):
        async with station(b, "CP-1") as cp1:
            assert await ctl(ca, "CtlLocate", identity="CP-1") == {"ok": "B"}
            await cp1.close()
        # released by its owner at once, not at expiry
        with trio.fail_after(TTL):
            await wait_for(ca, "CtlLocate", lambda r: r == {"ok": None}, identity="CP-1")

        async with station(b, "CP-2"), trio.open_nursery() as nursery:
            assert await ctl(ca, "CtlLocate", identity="CP-2") == {"ok": "B"}
            results: list[Any] = []

            async def in_flight() -> None:
                results.append(
                    await ctl(ca, "CtlCall", identity="CP-2", method="GetConfiguration", params={})
                )

            nursery.start_soon(in_flight)
            await trio.sleep(0.2)
            b.kill()
            killed = trio.current_time()
            # the dead instance's station is offline within the TTL
            await wait_for(ca, "CtlLocate", lambda r: r == {"ok": None}, identity="CP-2")
            assert trio.current_time() - killed <= TTL + 0.5
        # the call in flight failed within TTL + TTL/3, long before its 20 s timeout
        (reply,) = results
        assert reply["error"] == "InstanceGone"
        assert reply["elapsed"] <= 0.2 + TTL + TTL / 3 + 0.5
        reply = await ctl(ca, "CtlCall", identity="CP-2", method="Reset", params={})
        assert reply["error"] == "StationOffline"


async def test_duplicate_policy_across_instances(redis_server: RedisServer, prefix: str) -> None:
    async with (
        instances(redis_server.url, prefix + "rej:", ["A", "B"], policy="reject") as (a, b),
        station(a, "CP-1"),
    ):
        with pytest.raises(HandshakeRejected) as info:
            async with station(b, "CP-1"):
                pass  # pragma: no cover
        assert info.value.status_code == 409
    async with (
        instances(redis_server.url, prefix + "rep:", ["A", "B"]) as (a, b),
        controls([a]) as (ca,),
        station(a, "CP-1") as old,
        station(b, "CP-1"),
    ):
        with trio.fail_after(TIMEOUT):
            await old.wait_closed()
        assert old.connection is not None
        assert old.connection.close_code == CLOSE_REPLACED
        assert await ctl(ca, "CtlLocate", identity="CP-1") == {"ok": "B"}
        reply = await ctl(ca, "CtlCall", identity="CP-1", method="Reset", params={})
        assert reply["ok"]["by"] == "CP-1"


async def test_redis_restarted_mid_run(own_redis: RedisServer, prefix: str) -> None:
    async with (
        instances(own_redis.url, prefix, ["A", "B"], ttl=TTL, op_timeout=0.5) as (a, b),
        controls([a, b]) as (ca, cb),
        station(a, "CP-A"),
        station(b, "CP-B"),
    ):
        reply = await ctl(ca, "CtlCall", identity="CP-B", method="Reset", params={})
        assert reply["ok"]["by"] == "CP-B"

        own_redis.stop()
        # local stations keep working
        reply = await ctl(ca, "CtlCall", identity="CP-A", method="Reset", params={})
        assert reply["ok"]["by"] == "CP-A"
        # cluster features fail with a clear error, quickly
        reply = await ctl(ca, "CtlCall", identity="CP-B", method="Reset", params={})
        assert reply["error"] == "ClusterUnavailable"
        assert reply["elapsed"] < 1.0
        assert (await ctl(cb, "CtlPublish", channel="news", payload=1))["error"] == (
            "ClusterUnavailable"
        )
        # a station connecting meanwhile is let in
        async with station(b, "CP-B2"):
            own_redis.start()  # empty: persistence is off
            # everything comes back on its own: presence, liveness, routing, broadcast
            started = trio.current_time()
            await wait_for(ca, "CtlLocate", lambda r: r == {"ok": "B"}, identity="CP-B2")
            reply = await wait_for(
                ca,
                "CtlCall",
                lambda r: "ok" in r,
                identity="CP-B",
                method="Reset",
                params={},
            )
            assert reply["ok"]["by"] == "CP-B"
            await wait_for(cb, "CtlPublish", lambda r: r == {"ok": True}, channel="news", payload=2)
            got = await wait_for(ca, "CtlBroadcasts", lambda r: r["got"])
            assert got == {"got": [["B", 2]]}
            assert trio.current_time() - started < 5.0
