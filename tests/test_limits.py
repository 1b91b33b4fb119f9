"""The limits that protect a server: each gives the peer a clear answer and a ``"limit"`` event.

| limit                      | the peer gets                         | this end gets              |
| -------------------------- | ------------------------------------- | -------------------------- |
| inbound_call_concurrency   | [4, id, GenericError, "busy: ..."]    | limit event                |
| max_inbound_call_rate      | [4, id, GenericError, "rate limit..."]| limit event (SEND dropped) |
| max_pending_calls          | (nothing: it bounds our own calls)    | ProtocolStateError + event |
| max_message_size           | close 1009                            | limit event                |
| max_connections (server)   | HTTP 503                              | handshake_rejected event   |
| handshake_timeout (server) | the stream is closed                  | handshake_rejected event   |
"""

from __future__ import annotations

import json
import math
from functools import partial
from typing import Any

import pytest
import trio

from ocpp_trio import (
    ConnectionClosed,
    ConnectionOptions,
    OCPPConnection,
    ProtocolStateError,
    open_ocpp_client,
    serve_ocpp,
)
from ocpp_trio.events import LimitEvent
from ocpp_trio.server import HandshakeRejectedEvent, OCPPServer
from ocpp_trio.testing import open_memory_pair, open_raw_peer

from .conftest import raw_exchange, upgrade_request

NOW = {"currentTime": "2026-01-01T00:00:00Z"}


def _heartbeat(conn: OCPPConnection) -> None:
    conn.handle("Heartbeat", lambda ctx: NOW)


# --- inbound_call_concurrency ---------------------------------------------------------


async def test_busy_answer_is_reported_as_a_limit_event(autojump_clock: Any) -> None:
    release = trio.Event()
    limits: list[LimitEvent] = []

    def install(conn: OCPPConnection) -> None:
        conn.on("limit", limits.append)

        @conn.handle("Heartbeat")
        async def slow(ctx: Any) -> dict[str, str]:
            await release.wait()
            return NOW

    async with open_raw_peer("ocpp1.6", handler=install, inbound_call_concurrency=1) as (
        peer,
        _conn,
    ):
        await peer.send('[2,"a","Heartbeat",{}]')
        await trio.testing.wait_all_tasks_blocked()
        reply = await peer.call("Heartbeat", {}, message_id="b")
        assert reply[:3] == [4, "b", "GenericError"]
        assert reply[3].startswith("busy: 1 calls in progress, at most 1 at once")
        release.set()
        assert await peer.receive_json() == [3, "a", NOW]
    assert limits == [
        LimitEvent(
            limit="inbound_call_concurrency",
            value=1,
            description=reply[3],
            method="Heartbeat",
            message_id="b",
        )
    ]


# --- max_inbound_call_rate ---------------------------------------------------------------


async def test_inbound_call_rate_is_limited_with_a_token_bucket(autojump_clock: Any) -> None:
    limits: list[LimitEvent] = []

    def install(conn: OCPPConnection) -> None:
        _heartbeat(conn)
        conn.on("limit", limits.append)

    async with open_raw_peer(
        "ocpp2.0.1", handler=install, max_inbound_call_rate=2, inbound_call_burst=3
    ) as (peer, conn):
        replies = [await peer.call("Heartbeat", {}) for _ in range(5)]
        assert [r[0] for r in replies] == [3, 3, 3, 4, 4]
        assert replies[3][2:4] == ["GenericError", "rate limit: at most 2 calls per second"]
        await trio.sleep(1.0)  # two tokens back
        replies = [await peer.call("Heartbeat", {}) for _ in range(3)]
        assert [r[0] for r in replies] == [3, 3, 4]
        assert conn.state.name == "OPEN"
        assert conn.bad_message_count == 0  # not a bad message: a well-formed call, refused
    assert [(e.limit, e.value, e.method) for e in limits] == [
        ("max_inbound_call_rate", 2, "Heartbeat")
    ] * 3


async def test_the_default_burst_is_one_second_of_calls(autojump_clock: Any) -> None:
    async with open_raw_peer("ocpp1.6", handler=_heartbeat, max_inbound_call_rate=2.5) as (
        peer,
        _conn,
    ):
        replies = [await peer.call("Heartbeat", {}) for _ in range(4)]
        assert [r[0] for r in replies] == [3, 3, 3, 4]


async def test_a_send_over_the_rate_is_dropped_and_reported(autojump_clock: Any) -> None:
    limits: list[LimitEvent] = []
    sends: list[str] = []

    def install(conn: OCPPConnection) -> None:
        conn.on("limit", limits.append)
        conn.handle("NotifyPeriodicEventStream", lambda ctx: sends.append(ctx.message_id))

    async with open_raw_peer(
        "ocpp2.1", handler=install, max_inbound_call_rate=1, inbound_call_burst=1
    ) as (peer, _conn):
        payload = {"id": 1, "pending": 0, "basetime": NOW["currentTime"], "data": []}
        for mid in ("s1", "s2"):
            await peer.send(json.dumps([6, mid, "NotifyPeriodicEventStream", payload]))
        await peer.expect_silence(0.5)  # a SEND is never answered, not even when refused
    assert sends == ["s1"]
    assert [(e.limit, e.message_id) for e in limits] == [("max_inbound_call_rate", "s2")]


async def test_reconfigure_changes_the_rate(autojump_clock: Any) -> None:
    async with open_raw_peer("ocpp1.6", handler=_heartbeat) as (peer, conn):
        assert [(await peer.call("Heartbeat", {}))[0] for _ in range(20)] == [3] * 20
        conn.reconfigure(max_inbound_call_rate=1)
        assert [(await peer.call("Heartbeat", {}))[0] for _ in range(2)] == [3, 4]
        conn.reconfigure(max_inbound_call_rate=math.inf)
        assert (await peer.call("Heartbeat", {}))[0] == 3


# --- max_pending_calls ------------------------------------------------------------------------


async def test_max_pending_calls_refuses_at_once_instead_of_queueing(autojump_clock: Any) -> None:
    release = trio.Event()
    limits: list[LimitEvent] = []

    async def station(conn: OCPPConnection) -> None:
        @conn.handle("GetConfiguration")
        async def get(ctx: Any) -> dict[str, Any]:
            await release.wait()
            return {"configurationKey": []}

    async with open_memory_pair(station_handler=station, csms_options={"max_pending_calls": 3}) as (
        _station,
        csms,
    ):
        csms.on("limit", limits.append)
        results: list[dict[str, Any]] = []

        async def one() -> None:
            results.append(await csms.call("GetConfiguration", {}))

        async with trio.open_nursery() as nursery:
            for _ in range(3):  # one in flight, two waiting for the call_concurrency slot
                nursery.start_soon(one)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(ProtocolStateError, match="max_pending_calls=3"):
                await csms.call("GetConfiguration", {})
            release.set()
        assert len(results) == 3
        # the bound counts calls not finished: there is room again
        assert await csms.call("GetConfiguration", {}) == {"configurationKey": []}
    assert [(e.limit, e.value, e.method) for e in limits] == [
        ("max_pending_calls", 3, "GetConfiguration")
    ]


# --- max_message_size, max_connections, handshake_timeout: a real server ------------------------


async def _serve(nursery: trio.Nursery, handler: Any = None, **options: Any) -> OCPPServer:
    server: OCPPServer = await nursery.start(
        partial(serve_ocpp, handler, 0, host="127.0.0.1", ping_interval=0, **options)
    )
    return server


def _station(server: OCPPServer, identity: str) -> Any:
    return open_ocpp_client(
        f"ws://127.0.0.1:{server.port}/ocpp",
        identity=identity,
        reconnect=False,
        ping_interval=0,
        protocols=["ocpp1.6"],
    )


async def test_an_oversized_message_closes_1009_and_is_reported() -> None:
    limits: list[LimitEvent] = []

    async def handler(conn: OCPPConnection) -> None:
        conn.on("limit", limits.append)
        _heartbeat(conn)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await _serve(nursery, handler, max_message_size=1000)
            async with _station(server, "BIG1") as client:
                with pytest.raises(ConnectionClosed) as info:
                    await client.call("DataTransfer", {"vendorId": "v", "data": "x" * 5000})
                assert info.value.code == 1009
            async with _station(server, "SMALL1") as client:
                assert await client.call("Heartbeat", {}) == NOW
            await server.close()
    assert [(e.limit, e.value) for e in limits] == [("max_message_size", 1000)]


async def test_max_connections_closes_at_accept_and_reports_it() -> None:
    rejected: list[HandshakeRejectedEvent] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await _serve(nursery, _heartbeat, max_connections=1)
            server.on("handshake_rejected", rejected.append)
            async with _station(server, "ONE"):
                answer = await raw_exchange(server.port, upgrade_request("/ocpp/TWO"))
                assert answer == b""  # closed at accept, before reading anything
            await server.close()
    assert [(e.identity, e.status, e.reason) for e in rejected] == [
        (None, None, "max_connections=1 reached; closed at accept")
    ]


async def test_an_unfinished_handshake_is_dropped_and_reported() -> None:
    rejected: list[HandshakeRejectedEvent] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await _serve(nursery, _heartbeat, handshake_timeout=0.3)
            server.on("handshake_rejected", rejected.append)
            answer = await raw_exchange(server.port, upgrade_request("/ocpp/SLOW")[:40])
            assert answer == b""
            await server.close()
    assert [(e.status, e.reason) for e in rejected] == [(None, "handshake timeout")]


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_inbound_call_rate", 0),
        ("max_inbound_call_rate", -1.0),
        ("inbound_call_burst", 0),
        ("inbound_call_burst", 1.5),
        ("max_pending_calls", 0),
        ("max_pending_calls", 2.5),
    ],
)
def test_bad_limit_values_are_refused(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        ConnectionOptions(**{option: value})


def test_limit_defaults() -> None:
    options = ConnectionOptions()
    assert options.max_inbound_call_rate == math.inf
    assert options.inbound_call_capacity == math.inf
    assert options.max_pending_calls == 1000
    assert ConnectionOptions(max_inbound_call_rate=0.5).inbound_call_capacity == 1
    assert ConnectionOptions(max_inbound_call_rate=10).inbound_call_capacity == 10
