"""A closed connection is freed by reference counting, not left to the cyclic collector.

Objects in reference cycles wait for the garbage collector; a server that
opens and closes thousands of connections then keeps their buffers and zlib
contexts until a full collection, and full collections over a large heap stall
the event loop for hundreds of milliseconds (found by the soak: stalls of
seconds, hung handshakes dropped late).  Each scenario here runs with the
collector off and then checks that nothing of ours was left in a cycle.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
import trio

from ocpp_trio import NOREPLY, OCPPConnection, open_ocpp_client
from ocpp_trio._core.errors import CallTimeout
from ocpp_trio.server import OCPPServer

OURS = (
    "OCPPConnection",
    "OCPPClient",
    "WSTransport",
    "ServerProtocol",
    "ClientProtocol",
    "RPCProtocol",
    "EventEmitter",
    "Router",
    "StreamReader",
)


@contextmanager
def no_collector() -> Iterator[Counter[str]]:
    """Collector off inside; afterwards the counter holds what was left in cycles."""
    gc.collect()
    found: Counter[str] = Counter()
    gc.disable()
    try:
        yield found
    finally:
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            found.update(type(o).__name__ for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()


def ours(found: Counter[str]) -> dict[str, int]:
    return {name: n for name, n in found.items() if name in OURS}


@asynccontextmanager
async def serving(on_station: Callable[[OCPPConnection], Awaitable[None]]) -> AsyncIterator[str]:
    server = OCPPServer(on_station, ping_interval=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.listen, 0, "127.0.0.1")
        yield f"ws://127.0.0.1:{server.port}/ocpp"
        nursery.cancel_scope.cancel()


async def idle_station(conn: OCPPConnection) -> None:
    conn.handle("Heartbeat", lambda ctx: {"currentTime": "2026-01-01T00:00:00Z"})
    conn.handle("Authorize", lambda ctx: NOREPLY)
    conn.handle("StatusNotification", lambda ctx: 1 / 0)
    await trio.sleep_forever()


async def _warm_up(url: str) -> None:
    async with open_ocpp_client(url, identity="WARM", protocols=["ocpp1.6"], ping_interval=0) as c:
        await c.call("Heartbeat", {})


Scenario = Callable[[str], Awaitable[None]]


async def call_and_close(url: str) -> None:
    async with open_ocpp_client(url, identity="CP1", protocols=["ocpp1.6"], ping_interval=0) as c:
        await c.call("Heartbeat", {})


async def call_times_out_and_handler_fails(url: str) -> None:
    async with open_ocpp_client(url, identity="CP2", protocols=["ocpp1.6"], ping_interval=0) as c:
        with pytest.raises(CallTimeout):
            await c.call("Authorize", {"idTag": "x"}, timeout=0.05)
        with pytest.raises(Exception, match="failed"):
            await c.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
            )


async def forced_close(url: str) -> None:
    async with open_ocpp_client(url, identity="CP3", protocols=["ocpp1.6"], ping_interval=0) as c:
        await c.call("Heartbeat", {})
        await c.close(force=True)


async def refused_handshake(url: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the refusal's type is another test's matter
        async with open_ocpp_client(
            url, identity="CP4", protocols=["ocpp9"], ping_interval=0, reconnect=False
        ):
            pass


async def bad_upgrade_request(url: str) -> None:
    port = int(url.split(":")[2].split("/")[0])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /ocpp/CP5 HTTP/1.1\r\nHost: x\r\n\r\n")  # no upgrade
        assert (await stream.receive_some(100)).startswith(b"HTTP/1.1 4")


async def station_vanishes(url: str) -> None:
    port = int(url.split(":")[2].split("/")[0])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        b"GET /ocpp/CP6 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    )
    assert (await stream.receive_some(1000)).startswith(b"HTTP/1.1 101")
    await trio.aclose_forcefully(stream)  # no close frame: the TCP connection just ends


async def garbage_frame(url: str) -> None:
    async with open_ocpp_client(url, identity="CP7", protocols=["ocpp1.6"], ping_interval=0) as c:
        await c.send_raw("not json")
        await c.send_raw("[2,]")
        await c.call("Heartbeat", {})


@pytest.mark.parametrize(
    "scenario",
    [
        call_and_close,
        call_times_out_and_handler_fails,
        forced_close,
        refused_handshake,
        bad_upgrade_request,
        station_vanishes,
        garbage_frame,
    ],
)
async def test_nothing_of_a_closed_connection_is_left_in_a_reference_cycle(
    scenario: Scenario,
) -> None:
    async with serving(idle_station) as url:
        await _warm_up(url)  # lazy imports, caches
        with no_collector() as found:
            for _ in range(3):
                await scenario(url)
            await trio.sleep(0.2)  # the server side notices and finishes
    assert ours(found) == {}, found.most_common(15)
