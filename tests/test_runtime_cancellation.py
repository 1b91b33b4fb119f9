"""The runtime's rules for ``call()``: one cancel scope to its deadline, cancellation from
outside at every stage, no system tasks, no task outliving its connection, in virtual time."""

from __future__ import annotations

import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from ocpp_trio import (
    NOREPLY,
    CallTimeout,
    ConnectionClosed,
    HandlerContext,
    OCPPConnection,
    ProtocolStateError,
)
from ocpp_trio._core.protocol import Role
from ocpp_trio._rpc.connection import run_connection
from ocpp_trio._websocket.transport import HandshakeInfo
from ocpp_trio.client import OCPPClient
from ocpp_trio.events import CloseEvent, LateResponseEvent, LimitEvent
from ocpp_trio.testing import open_memory_pair, open_memory_server

from .helpers import Recorder
from .runtime_helpers import (
    NOW,
    Gate,
    SilentTransport,
    Watch,
    all_tasks,
    library_tasks,
    names,
    station_stream_pair,
    tasks_below,
)

KINDS = ["move_on_after", "cancelled nursery", "KeyboardInterrupt in a sibling"]
BACKOFF = {"backoff_min": 10, "backoff_max": 10, "backoff_jitter": 0}


def silent_connection(**options: Any) -> tuple[OCPPConnection, SilentTransport]:
    transport = SilentTransport()
    conn = OCPPConnection(
        transport,
        identity="CP1",
        protocol="ocpp1.6",
        role=Role.CLIENT,
        handshake=HandshakeInfo(subprotocol="ocpp1.6"),
    )
    conn.reconfigure(ping_interval=0, **options)
    return conn, transport


# --- the deadline -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["timeout=", "call_timeout"])
async def test_the_deadline_inside_a_call_is_its_start_plus_timeout(
    autojump_clock: trio.testing.MockClock, how: str
) -> None:
    """Queueing counts: a call that waited 5 s for its slot writes under its original deadline."""
    conn, transport = silent_connection(call_timeout=7 if how == "call_timeout" else 1000)
    kwargs: dict[str, Any] = {"timeout": 7} if how == "timeout=" else {}
    ends: dict[str, tuple[float, float]] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(run_connection, conn)
        t0 = trio.current_time()

        async def one(name: str, delay: float) -> None:
            await trio.sleep(delay)
            start = trio.current_time()
            with pytest.raises(CallTimeout):
                await conn.call("Heartbeat", {}, **kwargs)
            ends[name] = (start - t0, trio.current_time() - t0)

        async with trio.open_nursery() as calls:
            calls.start_soon(one, "first", 0)
            calls.start_soon(one, "queued", 2)
        assert ends == {"first": (0, 7), "queued": (2, 9)}
        assert [(t - t0, d - t0) for t, d, _ in transport.sent] == [(0, 7), (7, 9)]
        assert conn.pending_calls == 0
        await conn.close(force=True)


async def test_a_client_call_waiting_for_a_reconnect_keeps_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    watch = Watch()

    async def on_station(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)

    async with (
        open_memory_server(
            on_station, stream_pair_factory=lambda: station_stream_pair(watch=watch)
        ) as srv,
        srv.connect("CP1", call_timeout=4, **BACKOFF) as client,
    ):
        await srv.clients["CP1"].close()  # the client reconnects 10 s later
        await trio.testing.wait_all_tasks_blocked()
        t0 = trio.current_time()
        # Waiting for the reconnect counts against call_timeout.
        with pytest.raises(CallTimeout):
            await client.call("Heartbeat", {})
        assert trio.current_time() == t0 + 4
        watch.armed = True
        assert await client.call("Heartbeat", {}, timeout=25) == NOW
        assert trio.current_time() == t0 + 10
        assert client.reconnects == 1
        # The CALL was the last write; it ran under the call's own deadline.
        assert watch.deadlines[-1] == t0 + 4 + 25


# --- cancellation from outside, at every stage --------------------------------------


async def cancel_after(
    kind: str, delay: float, call: Callable[[], Awaitable[object]]
) -> list[tuple[str, float]]:
    """Run ``call()`` and cancel it from outside after ``delay``; return what it did, when."""
    seen: list[tuple[str, float]] = []

    async def watched() -> None:
        try:
            await call()
        except BaseException as exc:
            seen.append((type(exc).__name__, trio.current_time()))
            raise
        seen.append(("returned", trio.current_time()))

    if kind == "move_on_after":
        with trio.move_on_after(delay) as scope:
            await watched()
        assert scope.cancelled_caught
    elif kind == "cancelled nursery":
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watched)
            await trio.sleep(delay)
            nursery.cancel_scope.cancel()
    else:

        async def interrupt() -> None:
            await trio.sleep(delay)
            raise KeyboardInterrupt

        with pytest.RaisesGroup(KeyboardInterrupt):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(interrupt)
                await watched()
    return seen


class Csms:
    """The CSMS side of Heartbeat: holds every answer back (NOREPLY) until ``auto``."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.auto = False

    def heartbeat(self, ctx: HandlerContext) -> Any:
        if self.auto:
            return NOW
        self.ids.append(ctx.message_id)
        return NOREPLY


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stage", ["queued for a slot", "writing", "waiting for the answer"])
async def test_a_connection_call_cancelled_from_outside(
    autojump_clock: trio.testing.MockClock, stage: str, kind: str
) -> None:
    gate = Gate()
    peer = Csms()
    async with open_memory_pair(
        "ocpp1.6", stream_pair_factory=lambda: station_stream_pair(gate), call_timeout=100
    ) as (station, csms):
        csms.handle("Heartbeat", peer.heartbeat)
        late = Recorder(station, "late_response")
        first: list[object] = []
        async with trio.open_nursery() as nursery:
            if stage == "queued for a slot":

                async def first_call() -> None:
                    first.append(await station.call("Heartbeat", {}))

                nursery.start_soon(first_call)
                await trio.testing.wait_all_tasks_blocked()
                assert station.pending_calls == 1
            elif stage == "writing":
                gate.close()
            await trio.testing.wait_all_tasks_blocked()
            before = tasks_below()
            start = trio.current_time()
            seen = await cancel_after(kind, 1, lambda: station.call("Heartbeat", {}))
            assert seen == [("Cancelled", start + 1)]
            assert trio.current_time() == start + 1
            await trio.testing.wait_all_tasks_blocked()
            after = tasks_below()
            assert after <= before, names(after - before)  # the call left no task behind
            if stage == "writing":
                gate.open()
                await station.wait_closed()
                assert station.close_code == 1006
                assert "half-way" in station.close_reason
                assert station.pending_calls == 0
                with pytest.raises(ConnectionClosed):
                    await station.call("Heartbeat", {})
                return
            assert after == before
            if stage == "queued for a slot":
                assert len(peer.ids) == 1  # the cancelled call never went out
                assert station.pending_calls == 1
                await csms.send_raw(json.dumps([3, peer.ids[0], NOW]))
                await trio.testing.wait_all_tasks_blocked()
                assert first == [NOW]
                assert late["late_response"] == []
            else:
                (mid,) = peer.ids
                assert station.pending_calls == 0
                await csms.send_raw(json.dumps([3, mid, NOW]))  # the late answer
                await trio.testing.wait_all_tasks_blocked()
                (event,) = late["late_response"]
                assert isinstance(event, LateResponseEvent)
                assert event.message_id == mid
        assert station.pending_calls == 0
        assert station.bad_message_count == 0
        peer.auto = True
        assert await station.call("Heartbeat", {}) == NOW


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "stage",
    ["queued for a slot", "waiting for a reconnect", "writing", "waiting for the answer"],
)
async def test_a_client_call_cancelled_from_outside(
    autojump_clock: trio.testing.MockClock, stage: str, kind: str
) -> None:
    gate = Gate()
    peer = Csms()

    async def on_station(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", peer.heartbeat)

    async with (
        open_memory_server(
            on_station, stream_pair_factory=lambda: station_stream_pair(gate)
        ) as srv,
        srv.connect("CP1", call_timeout=100, **BACKOFF) as client,
    ):
        late = Recorder(client, "late_response")
        closes = Recorder(client, "close")
        first: list[object] = []
        async with trio.open_nursery() as nursery:
            if stage == "queued for a slot":

                async def first_call() -> None:
                    first.append(await client.call("Heartbeat", {}))

                nursery.start_soon(first_call)
                await trio.testing.wait_all_tasks_blocked()
            elif stage == "waiting for a reconnect":
                await srv.clients["CP1"].close()
                await trio.testing.wait_all_tasks_blocked()
                assert client.connection is not None
                assert client.connection.close_code == 1000
            elif stage == "writing":
                gate.close()
            await trio.testing.wait_all_tasks_blocked()
            before = tasks_below()
            start = trio.current_time()
            seen = await cancel_after(kind, 1, lambda: client.call("Heartbeat", {}))
            assert seen == [("Cancelled", start + 1)]
            assert trio.current_time() == start + 1
            await trio.testing.wait_all_tasks_blocked()
            after = tasks_below()
            assert after <= before, names(after - before)
            conn = client.connection
            assert conn is not None
            assert conn.pending_calls == (1 if stage == "queued for a slot" else 0)
            if stage == "writing":
                gate.open()
                await trio.testing.wait_all_tasks_blocked()
                event = closes["close"][0]
                assert isinstance(event, CloseEvent)
                assert event.code == 1006
                assert "half-way" in event.reason
                assert conn.close_code == 1006
                assert "half-way" in conn.close_reason
            else:
                assert after == before
            if stage == "queued for a slot":
                assert len(peer.ids) == 1
                await srv.clients["CP1"].send_raw(json.dumps([3, peer.ids[0], NOW]))
                await trio.testing.wait_all_tasks_blocked()
                assert first == [NOW]
                assert late["late_response"] == []
            elif stage == "waiting for the answer":
                (mid,) = peer.ids
                await srv.clients["CP1"].send_raw(json.dumps([3, mid, NOW]))
                await trio.testing.wait_all_tasks_blocked()
                (event,) = late["late_response"]
                assert isinstance(event, LateResponseEvent)
                assert event.message_id == mid
            else:
                assert late["late_response"] == []
        peer.auto = True
        t1 = trio.current_time()
        assert await client.call("Heartbeat", {}) == NOW
        reconnected = stage in ("waiting for a reconnect", "writing")
        assert client.reconnects == (1 if reconnected else 0)
        if stage == "writing":
            assert trio.current_time() == t1 + 10  # aborted just now: reconnected after backoff
        assert client.connection is not None
        assert client.connection.pending_calls == 0
        assert client.connection.bad_message_count == 0


@pytest.mark.parametrize("stage", ["queued for a slot", "waiting for the answer"])
def test_a_keyboard_interrupt_delivered_to_the_calling_task(stage: str) -> None:
    """Ctrl-C's own path: SIGINT, and Trio raises KeyboardInterrupt in the main task's wait."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    outcome: dict[str, object] = {}

    async def main() -> None:
        peer = Csms()
        async with open_memory_pair("ocpp1.6", call_timeout=100) as (station, csms):
            csms.handle("Heartbeat", peer.heartbeat)
            late = Recorder(station, "late_response")
            async with trio.open_nursery() as nursery:
                if stage == "queued for a slot":
                    nursery.start_soon(station.call, "Heartbeat", {})
                    await trio.testing.wait_all_tasks_blocked()

                async def press_ctrl_c() -> None:
                    await trio.sleep(1)
                    signal.raise_signal(signal.SIGINT)

                nursery.start_soon(press_ctrl_c)
                start = trio.current_time()
                try:
                    await station.call("Heartbeat", {})
                except KeyboardInterrupt:
                    outcome["interrupted after"] = trio.current_time() - start
                assert len(peer.ids) == 1
                await csms.send_raw(json.dumps([3, peer.ids[0], NOW]))
            await trio.testing.wait_all_tasks_blocked()
            outcome["pending"] = station.pending_calls
            outcome["late"] = len(late["late_response"])
            peer.auto = True
            outcome["next"] = await station.call("Heartbeat", {})

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        trio.run(main, clock=clock, restrict_keyboard_interrupt_to_checkpoints=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert outcome == {
        "interrupted after": 1,
        "pending": 0,
        "late": 1 if stage == "waiting for the answer" else 0,
        "next": NOW,
    }


# --- tasks: none in the system nursery, none outliving a connection ---------------


def outside(task: trio.lowlevel.Task) -> set[trio.lowlevel.Task]:
    """Every task of the run except ``task``'s descendants."""
    return all_tasks() - tasks_below(task)


async def test_the_library_starts_no_system_task(autojump_clock: trio.testing.MockClock) -> None:
    me = trio.lowlevel.current_task()
    elsewhere = outside(me)
    pings = {"server": 0, "client": 0}

    async def on_station(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)
        conn.on("pong", lambda event: pings.__setitem__("server", pings["server"] + 1))

    async def ask(conn: OCPPConnection | OCPPClient) -> None:
        for _ in range(3):
            await conn.call("Heartbeat", {})
            await trio.sleep(2)

    async with (
        open_memory_server(on_station, ping_interval=1) as srv,
        srv.connect("CP1", ping_interval=1) as client,
    ):
        client.handle("Heartbeat", lambda ctx: NOW)
        client.on("pong", lambda event: pings.__setitem__("client", pings["client"] + 1))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, client)
            nursery.start_soon(ask, srv.clients["CP1"])
            await trio.sleep(3)
            during = all_tasks()
            mine = tasks_below(me)
        assert pings["server"] >= 2
        assert pings["client"] >= 2
        assert outside(me) == elsewhere
        assert during - mine == elsewhere, names(during - mine - elsewhere)
        # The library's tasks (pingers, readers, the server's per-station task) are all ours.
        assert len(library_tasks(mine)) >= 4, names(mine)


async def test_a_closed_connection_leaves_no_task(autojump_clock: trio.testing.MockClock) -> None:
    started = trio.Event()
    before = tasks_below()
    async with open_memory_pair("ocpp1.6", ping_interval=1) as (station, csms):

        @csms.handle("Heartbeat")
        async def never(ctx: HandlerContext) -> Any:
            started.set()
            await trio.sleep_forever()

        async with trio.open_nursery() as nursery:

            async def doomed_call() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await station.call("Heartbeat", {})

            nursery.start_soon(doomed_call)
            await started.wait()
            await trio.sleep(2.5)  # pings flow
            assert library_tasks(tasks_below())
            await station.close()
        await csms.wait_closed()
        await station.wait_closed()
        await trio.testing.wait_all_tasks_blocked()
        assert names(tasks_below() - before) == []
        assert station.pending_calls == 0


async def test_a_closed_client_leaves_no_task_on_either_side(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def on_station(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)

    async with open_memory_server(on_station, ping_interval=1) as srv:
        await trio.testing.wait_all_tasks_blocked()
        before = tasks_below()
        async with srv.connect("CP1", ping_interval=1) as client:
            assert await client.call("Heartbeat", {}) == NOW
            await trio.sleep(3)
            server_side = srv.clients["CP1"]
            assert len(library_tasks(tasks_below() - before)) >= 3
        await server_side.wait_closed()
        await trio.testing.wait_all_tasks_blocked()
        assert names(tasks_below() - before) == []


# --- max_pending_calls on a client ---------------------------------------------------


async def test_max_pending_calls_bounds_a_client(autojump_clock: trio.testing.MockClock) -> None:
    peer = Csms()

    async def on_station(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", peer.heartbeat)

    async with (
        open_memory_server(on_station) as srv,
        srv.connect("CP1", max_pending_calls=1) as client,
    ):
        limits = Recorder(client, "limit")
        outcomes: list[tuple[str, float]] = []

        async def one() -> None:
            try:
                result = await client.call("Heartbeat", {})
            except ProtocolStateError:
                outcomes.append(("refused", trio.current_time()))
            else:
                assert result == NOW
                outcomes.append(("answered", trio.current_time()))

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
            await trio.testing.wait_all_tasks_blocked()
            assert outcomes == [("refused", start), ("refused", start)]
            await trio.sleep(4)
            (mid,) = peer.ids
            await srv.clients["CP1"].send_raw(json.dumps([3, mid, NOW]))
        assert outcomes[2] == ("answered", start + 4)
        assert len(limits["limit"]) == 2
        for event in limits["limit"]:
            assert isinstance(event, LimitEvent)
            assert event.limit == "max_pending_calls"
            assert event.method == "Heartbeat"
        peer.auto = True
        assert await client.call("Heartbeat", {}) == NOW  # the slot is free again
