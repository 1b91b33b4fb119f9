"""open_memory_pair and open_raw_peer: real connections in memory, in virtual time."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from ocpp_trio import (
    CallErrorReceived,
    CallTimeout,
    ConnectionClosed,
    ConnectionState,
    HandlerContext,
    OCPPConnection,
)
from ocpp_trio.events import LimitEvent
from ocpp_trio.testing import MemoryPair, RawPair, open_memory_pair, open_raw_peer

NOW = {"currentTime": "2024-01-01T00:00:00Z"}
BOOT_16 = {"chargePointVendor": "V", "chargePointModel": "M"}


async def test_pair_is_a_named_tuple_of_real_connections() -> None:
    async with open_memory_pair("ocpp2.0.1", identity="CP-9") as pair:
        assert isinstance(pair, MemoryPair)
        station, csms = pair
        assert (pair.station, pair.csms) == (station, csms)
        for conn in pair:
            assert isinstance(conn, OCPPConnection)
            assert conn.state is ConnectionState.OPEN
            assert (conn.protocol, conn.identity) == ("ocpp2.0.1", "CP-9")
        assert (station.role.value, csms.role.value) == ("client", "server")
    assert station.state is csms.state is ConnectionState.CLOSED


async def test_pair_runs_on_the_default_transport() -> None:
    """What only the client's and the server's WebSocket layer does is seen on a pair."""
    async with open_memory_pair("ocpp1.6", csms_options={"max_message_size": 1000}) as (
        station,
        csms,
    ):
        limits: list[LimitEvent] = []
        csms.on("limit", limits.append)
        with pytest.raises(ConnectionClosed) as info:
            await station.call("DataTransfer", {"vendorId": "v", "data": "x" * 2000})
        assert info.value.code == 1009
        await csms.wait_closed()
    assert [(e.limit, e.value) for e in limits] == [("max_message_size", 1000)]


async def test_csms_handler_runs_like_a_server_handler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asked: list[dict[str, Any]] = []

    async def on_station(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)
        await trio.sleep(5)
        asked.append(await conn.call("GetConfiguration", {"key": ["HeartbeatInterval"]}))

    def station_setup(conn: OCPPConnection) -> None:  # a sync handler works too
        conn.handle("GetConfiguration", lambda ctx: {"configurationKey": []})

    async with open_memory_pair(
        "ocpp1.6", csms_handler=on_station, station_handler=station_setup, strict_mode=True
    ) as (station, _csms):
        assert await station.call("Heartbeat", {}) == NOW
        await trio.sleep(10)
    assert asked == [{"configurationKey": []}]


async def test_a_raising_handler_closes_with_1011(autojump_clock: trio.testing.MockClock) -> None:
    async def on_station(conn: OCPPConnection) -> None:
        await trio.sleep(1)
        raise RuntimeError("boom")

    async with open_memory_pair("ocpp1.6", csms_handler=on_station) as (station, csms):
        with trio.fail_after(10):
            await station.wait_closed()
            await csms.wait_closed()
        assert csms.close_code == station.close_code == 1011


async def test_exact_virtual_times(autojump_clock: trio.testing.MockClock) -> None:
    async def slow(ctx: HandlerContext) -> dict[str, Any]:
        await trio.sleep(7)
        return NOW

    async with open_memory_pair("ocpp1.6", call_timeout=5, csms_options={"call_timeout": 30}) as (
        station,
        csms,
    ):
        csms.handle("Heartbeat", slow)
        with pytest.raises(CallTimeout):
            await station.call("Heartbeat", {})
        assert trio.current_time() == 5
        assert station.options.call_timeout == 5
        assert csms.options.call_timeout == 30


async def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="bogus"):
        async with open_memory_pair("ocpp1.6", bogus=1):
            pass  # pragma: no cover


async def test_raw_peer_faces_a_real_csms(autojump_clock: trio.testing.MockClock) -> None:
    def setup(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)

    async with open_raw_peer("ocpp1.6", handler=setup, strict_mode=True) as pair:
        assert isinstance(pair, RawPair)
        peer, csms = pair
        assert csms.role.value == "server"
        assert await peer.call("Heartbeat", {}) == [3, "raw-1", NOW]
        reply = await peer.call("Heartbeat", {"x": 1}, message_id="m")
        assert reply[:3] == [4, "m", "FormationViolation"]
        await peer.send('[3,"nobody","x"]')  # a bad answer is never answered
        await peer.expect_silence(2)
        assert trio.current_time() == 2


async def test_raw_peer_sees_the_close_after_too_many_bad_messages() -> None:
    async with open_raw_peer("ocpp2.0.1", max_bad_messages=1) as (peer, csms):
        await peer.send("not json")
        assert json.loads(await peer.receive())[2] == "RpcFrameworkError"
        await peer.send("[]")
        assert json.loads(await peer.receive())[2] == "RpcFrameworkError"
        with pytest.raises(ConnectionClosed) as info:
            await peer.receive()
        assert info.value.code == 1002
        assert peer.close_code == 1002
        with pytest.raises(ConnectionClosed):
            await peer.send("[]")
    assert csms.state is ConnectionState.CLOSED


async def test_raw_peer_can_play_the_csms(autojump_clock: trio.testing.MockClock) -> None:
    async with open_raw_peer("ocpp2.1", under_test="station") as (peer, station):
        assert station.role.value == "client"
        assert peer.role.value == "server"
        async with trio.open_nursery() as nursery:
            results: list[dict[str, Any]] = []

            async def boot() -> None:
                results.append(
                    await station.call(
                        "BootNotification",
                        {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"},
                    )
                )

            nursery.start_soon(boot)
            frame = await peer.receive_json()
            assert frame[:3] == [2, frame[1], "BootNotification"]
            await peer.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
        assert results == [{"status": "Accepted"}]
        with pytest.raises(trio.TooSlowError):
            await peer.receive(timeout=3)
        assert trio.current_time() == 3


async def test_raw_peer_expect_silence_fails_when_something_comes() -> None:
    async with open_raw_peer("ocpp1.6") as (peer, _csms):
        await peer.send("[2,")
        with pytest.raises(AssertionError, match="FormationViolation"):
            await peer.expect_silence(1)


async def test_raw_peer_call_error_from_the_handler(autojump_clock: trio.testing.MockClock) -> None:
    def setup(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: {"currentTime": "not a time"})

    async with open_raw_peer("ocpp2.0.1", handler=setup, strict_mode=True) as (peer, _):
        reply = await peer.call("Heartbeat", {})
        assert reply[:3] == [4, "raw-1", "InternalError"]


def test_under_test_must_be_a_role() -> None:
    async def main() -> None:
        async with open_raw_peer("ocpp1.6", under_test="cp"):  # type: ignore[arg-type]
            pass  # pragma: no cover

    with pytest.raises(ValueError, match="under_test"):
        trio.run(main)


async def test_call_error_received_from_a_pair() -> None:
    async with open_memory_pair("ocpp1.6") as (station, _csms):
        with pytest.raises(CallErrorReceived) as info:
            await station.call("Heartbeat", {})
        assert info.value.code == "NotSupported"


@pytest.mark.parametrize("identity", ["CP 1", "CP\n1", "CP/1", "Ladesäule"])
async def test_open_raw_peer_takes_any_identity(identity: str) -> None:
    """The identity is percent-encoded in the in-memory request (a newline in it
    used to leave the handshake waiting forever)."""
    with trio.fail_after(5):
        async with open_raw_peer("ocpp1.6", identity=identity) as (_, conn):
            assert conn.identity == identity
