"""RedisAdapter on its own, in this process, against a real Redis: presence rules, load, failures."""

from __future__ import annotations

import importlib
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import ocpp_trio.cluster
from ocpp_trio.cluster import ClusterUnavailable, Holder, InstanceGone, RedisAdapter

from ..conftest import free_tcp_port
from .conftest import RedisServer


class EchoNode:
    """A ClusterNode that answers every request with its body, and records lost claims."""

    def __init__(self) -> None:
        self.lost: list[tuple[str, str]] = []
        self.requests = 0

    async def handle_request(
        self, kind: str, body: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        self.requests += 1
        await trio.lowlevel.checkpoint()
        return {"ok": {"kind": kind, **body}}

    def presence_lost(self, identity: str, token: str) -> None:
        self.lost.append((identity, token))


@asynccontextmanager
async def running(*adapters: RedisAdapter) -> AsyncIterator[list[EchoNode]]:
    nodes = [EchoNode() for _ in adapters]
    async with trio.open_nursery() as nursery:
        for adapter, node in zip(adapters, nodes, strict=True):
            await nursery.start(adapter.run, node)
        yield nodes
        nursery.cancel_scope.cancel()


def adapter(redis: RedisServer, prefix: str, name: str, **options: Any) -> RedisAdapter:
    options.setdefault("presence_ttl", 1.5)
    return RedisAdapter(redis.url, key_prefix=prefix, instance_id=name, **options)


def test_exports() -> None:
    fresh = importlib.import_module("ocpp_trio.cluster")
    assert sorted(fresh.__all__) == list(fresh.__all__)
    for name in ocpp_trio.cluster.__all__:
        assert getattr(fresh, name) is not None, name
        obj = getattr(fresh, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, ocpp_trio.OCPPError), name


def test_bad_options() -> None:
    for options in (
        {"key_prefix": "a{b}"},
        {"instance_id": "a|b"},
        {"presence_ttl": 0.01},
        {"op_timeout": 0},
        {"max_inbound_requests": 0},
    ):
        with pytest.raises(ValueError):
            RedisAdapter(**options)


async def test_presence_is_removed_and_refreshed_only_by_its_holder(
    redis_server: RedisServer, prefix: str
) -> None:
    a, b = adapter(redis_server, prefix, "A"), adapter(redis_server, prefix, "B")
    async with running(a, b) as (node_a, _node_b):
        first = await a.claim("CP1", "t1", replace=False)
        assert first.taken
        assert first.previous is None
        # B may not take it under "reject"; may under "replace"
        refused = await b.claim("CP1", "t2", replace=False)
        assert not refused.taken
        assert refused.previous == Holder(instance="A", token="t1")
        taken = await b.claim("CP1", "t2", replace=True)
        assert taken.taken
        assert taken.previous == Holder(instance="A", token="t1")
        # A's late release does not remove B's claim
        await a.release("CP1", "t1")
        assert await a.locate("CP1") == Holder(instance="B", token="t2")
        # A's own later connection of CP2 overrides its older one
        await a.claim("CP2", "t3", replace=False)
        assert (await a.claim("CP2", "t4", replace=False)).taken
        assert await b.locate("CP2") == Holder(instance="A", token="t4")
        # a claim taken over behind A's back is reported by A's refresher
        await a.claim("CP3", "t5", replace=False)
        await b.claim("CP3", "t6", replace=True)
        with trio.fail_after(2):
            while node_a.lost != [("CP3", "t5")]:  # noqa: ASYNC110 - polls state held elsewhere
                await trio.sleep(0.05)
        # refreshed claims outlive their TTL; released ones are gone
        await trio.sleep(2.0)
        assert await a.locate("CP2") == Holder(instance="A", token="t4")
        await b.release("CP1", "t2")
        assert await a.locate("CP1") is None


async def test_a_stopped_instance_is_gone(redis_server: RedisServer, prefix: str) -> None:
    a, b = adapter(redis_server, prefix, "A"), adapter(redis_server, prefix, "B", presence_ttl=0.6)
    async with running(a):
        async with running(b):
            await b.claim("CP1", "t1", replace=False)
            assert await a.request("B", "call", {"x": 1}, 2.0) == {"ok": {"kind": "call", "x": 1}}
        with trio.fail_after(1.0):
            while await a.locate("CP1") is not None:  # noqa: ASYNC110 - polls state held elsewhere
                await trio.sleep(0.05)
        with pytest.raises(InstanceGone):
            await a.request("B", "call", {"identity": "CP1"}, 2.0)


def redis_delete(redis: RedisServer, key: str) -> int:
    """DEL ``key`` over a socket of our own (as a Redis restarted empty would lose it)."""
    raw = key.encode()
    with socket.create_connection(("127.0.0.1", redis.port), timeout=2) as sock:
        sock.sendall(b"*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n" % (len(raw), raw))
        reply = sock.recv(64)
    assert reply.startswith(b":"), reply
    return int(reply[1:].split(b"\r\n", 1)[0])


class ForgettingNode(EchoNode):
    """An EchoNode that deletes the requester's ``alive`` key before it answers."""

    def __init__(self, redis: RedisServer, key: str) -> None:
        super().__init__()
        self.redis = redis
        self.key = key
        self.deleted = 0

    async def handle_request(
        self, kind: str, body: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        self.deleted += await trio.to_thread.run_sync(redis_delete, self.redis, self.key)
        return await super().handle_request(kind, body, timeout)


async def test_an_answer_waits_for_the_requester_to_be_alive_again(
    redis_server: RedisServer, prefix: str
) -> None:
    """After Redis lost the requester's ``alive`` key (a restart), its answer still arrives."""
    a, b = adapter(redis_server, prefix, "A"), adapter(redis_server, prefix, "B")
    node_b = ForgettingNode(redis_server, f"{prefix}{{A}}:alive")
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run, EchoNode())
        await nursery.start(b.run, node_b)
        start = trio.current_time()
        answer = await a.request("B", "call", {"x": 1}, 5.0)
        assert answer == {"ok": {"kind": "call", "x": 1}}
        assert node_b.deleted == 1
        # back at A's next heartbeat (presence_ttl / 3), not at the request's timeout
        assert trio.current_time() - start < 1.5
        nursery.cancel_scope.cancel()


async def test_adapter_under_1000_stations(redis_server: RedisServer, prefix: str) -> None:
    """1,000 claims, lookups and routed requests, and their refresh, within a few seconds."""
    # A presence TTL that a loaded machine's late refresh (every TTL / 3) does not miss.
    a = adapter(redis_server, prefix, "A", presence_ttl=4.0)
    b = adapter(redis_server, prefix, "B", presence_ttl=4.0)
    n = 1000
    async with running(a, b) as (node_a, _):
        with trio.fail_after(20):
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(lambda i=i: a.claim(f"CP{i}", str(i), replace=False))
            claimed = trio.current_time() - start

            holders: dict[int, Holder | None] = {}

            async def locate(i: int) -> None:
                holders[i] = await b.locate(f"CP{i}")

            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(locate, i)
            assert all(holders[i] == Holder(instance="A", token=str(i)) for i in range(n))

            answers: dict[int, Any] = {}
            limit = trio.Semaphore(200)

            async def call(i: int) -> None:
                async with limit:
                    answers[i] = await b.request("A", "call", {"identity": f"CP{i}"}, 5.0)

            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(call, i)
            routed = trio.current_time() - start
            assert all(answers[i]["ok"]["identity"] == f"CP{i}" for i in range(n))
            assert node_a.requests == n
            # past the TTL, every claim is still there: refreshed
            await trio.sleep(4.5)
            assert all([await b.locate(f"CP{i}") for i in range(0, n, 97)])
        print(f"1000 claims {claimed:.2f} s, 1000 routed requests {routed:.2f} s")


async def test_redis_down_fails_fast_and_hides_the_password() -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_tcp_port()}/0"
    down = RedisAdapter(url, op_timeout=0.5)
    assert "s3cret" not in repr(down)
    async with running(down):
        assert not down.healthy
        with trio.fail_after(1.0):
            with pytest.raises(ClusterUnavailable) as info:
                await down.publish("x", 1)
            assert "s3cret" not in str(info.value)
            with pytest.raises(ClusterUnavailable):
                await down.locate("CP1")
            with pytest.raises(ClusterUnavailable):
                await down.claim("CP1", "t1", replace=False)
