"""The outbound call path (``_rpc/outbound.py``): slots, deadlines, cancellation, in virtual time."""

from __future__ import annotations

import math
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
)
from ocpp_trio._core.protocol import Role
from ocpp_trio._rpc.connection import run_connection
from ocpp_trio._websocket.transport import HandshakeInfo
from ocpp_trio.events import LateResponseEvent
from ocpp_trio.testing import open_memory_pair

from .helpers import Recorder

NOW = {"currentTime": "2024-01-01T00:00:00Z"}


async def test_a_call_with_a_free_slot_is_still_a_checkpoint() -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):
        csms.handle("Heartbeat", lambda ctx: NOW)
        seen = Recorder(csms, "call")
        with trio.testing.assert_checkpoints():
            assert await station.call("Heartbeat", {}) == NOW
        with trio.CancelScope() as scope:
            scope.cancel()
            await station.call("Heartbeat", {})
        assert scope.cancelled_caught
        await trio.testing.wait_all_tasks_blocked()
        assert len(seen["call"]) == 1  # the cancelled call sent nothing
        assert station.pending_calls == 0


async def test_a_new_call_queues_behind_the_waiting_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    order: list[str] = []
    release = trio.Event()
    async with open_memory_pair("ocpp1.6") as (station, csms):

        @csms.handle("DataTransfer")
        async def data_transfer(ctx: HandlerContext) -> dict[str, Any]:
            order.append(ctx.params["vendorId"])
            if ctx.params["vendorId"] == "A":
                await release.wait()
            return {"status": "Accepted"}

        async with trio.open_nursery() as nursery:
            nursery.start_soon(station.call, "DataTransfer", {"vendorId": "A"})
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(station.call, "DataTransfer", {"vendorId": "B"})
            await trio.testing.wait_all_tasks_blocked()
            # A's answer frees the slot while C arrives: B was first in line.
            release.set()
            nursery.start_soon(station.call, "DataTransfer", {"vendorId": "C"})
        assert order == ["A", "B", "C"]


async def test_deadlines_of_different_lengths_each_expire_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    expired_after: dict[float, float] = {}
    async with open_memory_pair("ocpp1.6", call_concurrency=10) as (station, csms):
        csms.handle("Heartbeat", lambda ctx: NOREPLY)

        async def one(timeout: float) -> None:
            start = trio.current_time()
            with pytest.raises(CallTimeout, match=f"within {timeout:g} s"):
                await station.call("Heartbeat", {}, timeout=timeout)
            expired_after[timeout] = trio.current_time() - start

        async with trio.open_nursery() as nursery:
            for timeout in (8, 3, 5, 1, 13, 2.5):
                nursery.start_soon(one, timeout)
                await trio.testing.wait_all_tasks_blocked()
        assert expired_after == {8: 8, 3: 3, 5: 5, 1: 1, 13: 13, 2.5: 2.5}
        assert station.pending_calls == 0
        # A later, shorter deadline than one already waiting moves the timer up.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, 30)
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(1)
            nursery.start_soon(one, 4)
        assert expired_after[30] == 30
        assert expired_after[4] == 4


async def test_an_infinite_timeout_never_expires(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_pair("ocpp1.6") as (station, csms):
        csms.handle("Heartbeat", lambda ctx: NOREPLY)
        with trio.move_on_after(10_000) as scope:
            await station.call("Heartbeat", {}, timeout=math.inf)
        assert scope.cancelled_caught
        assert station.pending_calls == 0


async def test_an_answer_racing_the_deadline_is_returned_or_reported_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_pair("ocpp1.6", call_timeout=5) as (station, csms):
        late = Recorder(station, "late_response")

        @csms.handle("Heartbeat")
        async def exactly_at_the_deadline(ctx: HandlerContext) -> dict[str, Any]:
            await trio.sleep(5)
            return NOW

        for _ in range(3):
            before = len(late["late_response"])
            try:
                result = await station.call("Heartbeat", {})
            except CallTimeout:
                await trio.testing.wait_all_tasks_blocked()
                assert len(late["late_response"]) == before + 1
            else:
                assert result == NOW
                await trio.testing.wait_all_tasks_blocked()
                assert len(late["late_response"]) == before
        assert station.pending_calls == 0
        assert station.bad_message_count == 0


@pytest.mark.parametrize("where", ["queued for the slot", "waiting for the answer"])
async def test_cancelled_calls_leave_nothing_behind(
    autojump_clock: trio.testing.MockClock, where: str
) -> None:
    release = trio.Event()
    async with open_memory_pair("ocpp1.6") as (station, csms):
        late = Recorder(station, "late_response")

        @csms.handle("Heartbeat")
        async def slow(ctx: HandlerContext) -> dict[str, Any]:
            await release.wait()
            return NOW

        async with trio.open_nursery() as nursery:
            if where == "queued for the slot":
                nursery.start_soon(station.call, "Heartbeat", {})
                await trio.testing.wait_all_tasks_blocked()
            with trio.move_on_after(1) as scope:
                await station.call("Heartbeat", {})
            assert scope.cancelled_caught
            release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert station.pending_calls == 0
        if where == "waiting for the answer":
            (event,) = late["late_response"]
            assert isinstance(event, LateResponseEvent)
        else:
            assert late["late_response"] == []  # the queued call never went out
        assert await station.call("Heartbeat", {}) == NOW


class Gate:
    """Holds back the station's writes while closed (``send_all`` blocks)."""

    def __init__(self) -> None:
        self.opened = trio.Event()
        self.opened.set()

    def close(self) -> None:
        self.opened = trio.Event()

    def open(self) -> None:
        self.opened.set()


def gated_stream_pair(
    gate: Gate,
) -> tuple[
    trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream],
    trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream],
]:
    """``(station, csms)`` streams; the station's ``send_all`` waits while ``gate`` is closed."""
    station_send, csms_receive = trio.testing.memory_stream_one_way_pair()
    csms_send, station_receive = trio.testing.memory_stream_one_way_pair()
    pump = station_send.send_all_hook
    assert pump is not None

    async def gated_pump() -> None:
        await gate.opened.wait()
        await pump()

    station_send.send_all_hook = gated_pump
    return (
        trio.StapledStream(station_send, station_receive),
        trio.StapledStream(csms_send, csms_receive),
    )


async def test_a_write_cut_by_the_deadline_aborts_and_one_behind_it_times_out_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No write is shielded: both calls end at their deadline; the half-written frame aborts."""
    gate = Gate()
    outcomes: dict[str, tuple[str, float]] = {}
    async with open_memory_pair(
        "ocpp1.6",
        stream_pair_factory=lambda: gated_stream_pair(gate),
        call_timeout=5,
        call_concurrency=2,
    ) as (station, csms):
        csms.handle("Heartbeat", lambda ctx: NOW)
        closes = Recorder(station, "close")
        assert await station.call("Heartbeat", {}) == NOW

        async def one(name: str) -> None:
            start = trio.current_time()
            with pytest.raises(CallTimeout):
                await station.call("Heartbeat", {})
            outcomes[name] = ("timeout", trio.current_time() - start)

        gate.close()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "writing")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(one, "behind it")
            await trio.sleep(7)
            gate.open()
        assert outcomes == {"behind it": ("timeout", 5), "writing": ("timeout", 5)}
        assert station.pending_calls == 0
        # The frame on its way was cut: the connection is aborted, and says why.
        await station.wait_closed()
        assert station.close_code == 1006
        assert "half-way" in station.close_reason
        assert closes["close"][0].reason == station.close_reason  # type: ignore[attr-defined]
        with pytest.raises(ConnectionClosed):
            await station.call("Heartbeat", {})


class BlockingTransport:
    """A transport that never delivers: ``send`` blocks until ``unblock`` is set."""

    subprotocol = "ocpp1.6"
    close_code: int | None = None
    close_reason = ""

    def __init__(self) -> None:
        self.unblock = trio.Event()
        self.sent: list[str] = []
        self._closed = trio.Event()

    async def send(self, text: str) -> None:
        await self.unblock.wait()
        self.sent.append(text)

    async def receive(self) -> str | bytes:
        await self._closed.wait()
        raise ConnectionClosed("closed", code=1006)

    async def ping(self, payload: bytes) -> None:
        await trio.sleep_forever()

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        self._closed.set()

    async def abort(self) -> None:
        self._closed.set()


async def test_a_blocked_write_on_another_transport_times_out_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = BlockingTransport()
    conn = OCPPConnection(
        transport,
        identity="CP1",
        protocol="ocpp1.6",
        role=Role.CLIENT,
        handshake=HandshakeInfo(subprotocol="ocpp1.6"),
    )
    conn.reconfigure(ping_interval=0, call_timeout=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_connection, conn)
        start = trio.current_time()
        with pytest.raises(CallTimeout):
            await conn.call("Heartbeat", {})
        assert trio.current_time() - start == 3
        assert conn.pending_calls == 0
        await conn.close(force=True)
