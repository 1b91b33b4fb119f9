"""open_ocpp_client: connecting, negotiating, reconnecting with backoff, in virtual time.

The CSMS side here is scripted per connection over in-memory streams (the
client's ``open_stream`` hook), so every timing rule is checked at exact
virtual times under the autojump clock.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket

from ocpp_trio import (
    CallTimeout,
    ConnectError,
    ConnectionClosed,
    ConnectionState,
    ConnectTimeout,
    HandlerContext,
    HandshakeRejected,
    OCPPConnection,
    ProtocolNegotiationError,
    open_ocpp_client,
)
from ocpp_trio._core.protocol import Role
from ocpp_trio._rpc.connection import run_connection
from ocpp_trio._websocket.trio_websocket import GuardedNursery, TrioWebsocketTransport
from ocpp_trio.client import build_url

from .helpers import Recorder, Valve, freezable_stream_pair

NOW = {"currentTime": "2024-01-01T00:00:00Z"}

Behaviour = Callable[[trio.abc.Stream, "ScriptedCSMS"], Awaitable[None]]


class ScriptedCSMS:
    """Hands each connection attempt to the next behaviour (the last one repeats)."""

    def __init__(self, nursery: trio.Nursery, *behaviours: Behaviour) -> None:
        self.nursery = nursery
        self.behaviours = list(behaviours)
        self.attempts: list[float] = []
        self.offered: list[list[str]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.connections: list[OCPPConnection] = []
        self.valves: list[Valve] = []  # per attempt: the station -> CSMS direction

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        self.attempts.append(trio.current_time())
        behaviour = self.behaviours.pop(0) if len(self.behaviours) > 1 else self.behaviours[0]
        (client_side, server_side), to_csms, _ = freezable_stream_pair()
        self.valves.append(to_csms)
        self.nursery.start_soon(self._run, behaviour, server_side)
        return client_side

    async def _run(self, behaviour: Behaviour, stream: trio.abc.Stream) -> None:
        try:
            await behaviour(stream, self)
        finally:
            await trio.aclose_forcefully(stream)

    async def request(self, stream: trio.abc.Stream, nursery: trio.Nursery) -> Any:
        request = await trio_websocket.wrap_server_stream(
            GuardedNursery(nursery, lambda exc: None),  # type: ignore[arg-type]
            stream,
        )
        self.offered.append(list(request.proposed_subprotocols))
        self.headers.append({k.decode().lower(): v.decode() for k, v in request.headers})
        self.paths.append(request.path)
        return request


def accept(
    *,
    stay_open: float = float("inf"),
    choose: str | None = None,
    handlers: dict[str, Any] | None = None,
) -> Behaviour:
    async def behaviour(stream: trio.abc.Stream, csms: ScriptedCSMS) -> None:
        async with trio.open_nursery() as nursery:
            request = await csms.request(stream, nursery)
            sub = request.proposed_subprotocols[0] if choose is None else (choose or None)
            ws = await request.accept(subprotocol=sub)
            conn = OCPPConnection(
                TrioWebsocketTransport(ws, stream),
                identity="CP1",
                protocol=sub or "",
                role=Role.SERVER,
            )
            conn.reconfigure(ping_interval=0)
            conn.handle("Heartbeat", lambda ctx: NOW)
            for name, fn in (handlers or {}).items():
                conn.handle(name, fn)
            csms.connections.append(conn)
            await nursery.start(run_connection, conn)
            with trio.move_on_after(stay_open):
                await conn.wait_closed()
            await conn.close(1001, "going away")
            nursery.cancel_scope.cancel()

    return behaviour


def reject(status: int) -> Behaviour:
    async def behaviour(stream: trio.abc.Stream, csms: ScriptedCSMS) -> None:
        async with trio.open_nursery() as nursery:
            request = await csms.request(stream, nursery)
            await request.reject(status)
            nursery.cancel_scope.cancel()

    return behaviour


async def silent(stream: trio.abc.Stream, csms: ScriptedCSMS) -> None:
    while await stream.receive_some():
        pass


async def hang_up(stream: trio.abc.Stream, csms: ScriptedCSMS) -> None:
    await stream.receive_some()


def client_options(csms: ScriptedCSMS, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "open_stream": csms.open_stream,
        "ping_interval": 0,
        "backoff_jitter": 0,
        "backoff_min": 1,
        "backoff_max": 8,
    }
    base.update(kw)
    return base


def test_build_url_percent_encodes_the_identity() -> None:
    assert build_url("ws://h/ocpp/", "CP 1/ä") == "ws://h/ocpp/CP%201%2F%C3%A4"
    assert build_url("ws://h/ocpp", "CP1", {"a": "b c"}) == "ws://h/ocpp/CP1?a=b+c"
    with pytest.raises(ValueError):
        build_url("ws://h", "")


async def test_connects_negotiates_and_calls(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept())
        async with open_ocpp_client(
            "ws://csms.example:9000/ocpp",
            identity="CP 1",
            protocols=["ocpp2.0.1", "ocpp1.6"],
            headers={"X-Test": "yes"},
            **client_options(csms),
        ) as client:
            assert client.state is ConnectionState.OPEN
            assert client.protocol == "ocpp2.0.1"
            assert await client.call("Heartbeat", {}) == NOW
        assert client.state is ConnectionState.CLOSED
        assert csms.offered == [["ocpp2.0.1", "ocpp1.6"]]
        assert csms.paths == ["/ocpp/CP%201"]
        assert csms.headers[0]["x-test"] == "yes"
        assert csms.headers[0]["user-agent"].startswith("ocpp-trio/")
        nursery.cancel_scope.cancel()


async def test_server_calls_the_station_and_handlers_survive_reconnects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept(stay_open=40), accept())
        async with open_ocpp_client(
            "ws://h/ocpp", identity="CP1", protocols=["ocpp1.6"], **client_options(csms)
        ) as client:

            @client.handle("Reset")
            def reset(ctx: HandlerContext) -> dict[str, Any]:
                return {"status": "Accepted"}

            opens = Recorder(client, "open", "close", "reconnect")
            assert await csms.connections[0].call("Reset", {"type": "Soft"}) == {
                "status": "Accepted"
            }
            await trio.sleep(45)  # the CSMS drops us at t=40; we come back after 1 s
            assert len(csms.connections) == 2
            assert await csms.connections[1].call("Reset", {"type": "Hard"}) == {
                "status": "Accepted"
            }
            assert client.reconnects == 1
            assert len(opens["open"]) == 1
            assert opens["open"][0].reconnected  # type: ignore[attr-defined]
            assert opens["close"][0].code == 1001  # type: ignore[attr-defined]
        assert csms.offered == [["ocpp1.6"], ["ocpp1.6"]]
        nursery.cancel_scope.cancel()


async def test_reconnect_offers_only_the_negotiated_protocol(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept(stay_open=1, choose="ocpp1.6"), accept())
        async with open_ocpp_client(
            "ws://h/ocpp",
            identity="CP1",
            protocols=["ocpp2.0.1", "ocpp1.6"],
            **client_options(csms),
        ) as client:
            await trio.sleep(5)
            assert client.protocol == "ocpp1.6"
        assert csms.offered == [["ocpp2.0.1", "ocpp1.6"], ["ocpp1.6"]]
        nursery.cancel_scope.cancel()


async def test_backoff_sequence_is_exponential_and_capped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept(stay_open=0.5), reject(503))
        async with open_ocpp_client(
            "ws://h/ocpp", identity="CP1", **client_options(csms)
        ) as client:
            delays = Recorder(client, "reconnect")
            await trio.sleep(60)
        assert [e.delay for e in delays["reconnect"]][:7] == [1, 2, 4, 8, 8, 8, 8]  # type: ignore[attr-defined]
        assert csms.attempts[:6] == [0, 1.5, 3.5, 7.5, 15.5, 23.5]
        nursery.cancel_scope.cancel()


async def test_accept_and_drop_does_not_reset_the_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A server that accepts and drops at once must not cause a tight reconnect loop."""
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept(stay_open=0))
        async with open_ocpp_client("ws://h/ocpp", identity="CP1", **client_options(csms)):
            await trio.sleep(30)
        assert csms.attempts[:5] == [0, 1, 3, 7, 15]
        assert len(csms.attempts) <= 6
        nursery.cancel_scope.cancel()


async def test_backoff_resets_after_a_stable_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(
            nursery,
            accept(stay_open=0),
            accept(stay_open=0),
            accept(stay_open=100),
            accept(stay_open=0),
        )
        async with open_ocpp_client(
            "ws://h/ocpp", identity="CP1", backoff_reset_after=50, **client_options(csms)
        ):
            await trio.sleep(110)
        # 0 -> +1 -> +2 (then up 100 s: reset) -> +1
        assert csms.attempts[:4] == [0, 1, 3, 104]
        nursery.cancel_scope.cancel()


async def test_jitter_stays_within_bounds() -> None:
    from ocpp_trio._rpc.options import ConnectionOptions
    from ocpp_trio.client import OCPPClient

    client = OCPPClient(
        "ws://h/ocpp",
        identity="CP1",
        protocols=["ocpp1.6"],
        options=ConnectionOptions(),
        backoff_min=1,
        backoff_max=30,
        backoff_jitter=0.5,
        rng=random.Random(7),
    )
    for attempt in range(12):
        base = min(30, 2**attempt)
        for _ in range(20):
            delay = client._next_delay(attempt)
            assert base / 2 <= delay <= base <= 30


async def test_calls_wait_for_the_reconnect_within_their_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept(stay_open=1), reject(503), accept())
        async with open_ocpp_client(
            "ws://h/ocpp", identity="CP1", **client_options(csms)
        ) as client:
            await trio.sleep(1.5)  # dropped at 1, rejected at 2, back at 4
            assert client.state is ConnectionState.CONNECTING
            with pytest.raises(CallTimeout):
                await client.call("Heartbeat", {}, timeout=1)
            assert trio.current_time() == 2.5
            assert await client.call("Heartbeat", {}) == NOW
            assert trio.current_time() == 4
        nursery.cancel_scope.cancel()


async def test_max_reconnects_gives_up(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept(stay_open=1), reject(503))
        async with open_ocpp_client(
            "ws://h/ocpp", identity="CP1", max_reconnects=3, **client_options(csms)
        ) as client:
            with trio.fail_after(100):
                await client.wait_closed()
            assert client.state is ConnectionState.CLOSED
            assert len(csms.attempts) == 4
            with pytest.raises(ConnectionClosed, match="gave up"):
                await client.call("Heartbeat", {})
        nursery.cancel_scope.cancel()


async def test_reconnect_false_closes_on_drop(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept(stay_open=1))
        async with open_ocpp_client(
            "ws://h/ocpp", identity="CP1", reconnect=False, **client_options(csms)
        ) as client:
            await client.wait_closed()
            assert trio.current_time() == 1
        assert len(csms.attempts) == 1
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("behaviour", "error", "match"),
    [
        (reject(401), HandshakeRejected, "401"),
        (accept(choose=""), ProtocolNegotiationError, "none of the offered"),
        (hang_up, ConnectError, "closed the connection"),
    ],
)
async def test_first_connect_failures_raise_plainly(
    behaviour: Behaviour, error: type[Exception], match: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, behaviour)
        with pytest.raises(error, match=match):
            async with open_ocpp_client("ws://h/ocpp", identity="CP1", **client_options(csms)):
                pytest.fail("must not connect")  # pragma: no cover
        assert trio.current_time() == 0
        nursery.cancel_scope.cancel()


async def test_handshake_never_answered_times_out(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, silent)
        with pytest.raises(ConnectTimeout):
            async with open_ocpp_client(
                "ws://h/ocpp", identity="CP1", connect_timeout=7, **client_options(csms)
            ):
                pytest.fail("must not connect")  # pragma: no cover
        assert trio.current_time() == 7
        nursery.cancel_scope.cancel()


async def test_retry_initial_connect(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, reject(503), reject(503), accept())
        async with open_ocpp_client(
            "ws://h/ocpp", identity="CP1", retry_initial_connect=True, **client_options(csms)
        ) as client:
            assert trio.current_time() == 3
            assert await client.call("Heartbeat", {}) == NOW
        nursery.cancel_scope.cancel()


async def test_an_exception_in_the_body_propagates_as_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept())
        with pytest.raises(KeyError, match="mine"):
            async with open_ocpp_client("ws://h/ocpp", identity="CP1", **client_options(csms)):
                raise KeyError("mine")
        nursery.cancel_scope.cancel()


async def test_basic_auth_header_and_profile_checks(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept())
        async with open_ocpp_client(
            "ws://h/ocpp",
            identity="CP1",
            security_profile=1,
            password="s3cret-password",
            **client_options(csms),
        ) as client:
            assert "s3cret" not in repr(client)
        assert csms.headers[0]["authorization"] == "Basic Q1AxOnMzY3JldC1wYXNzd29yZA=="
        nursery.cancel_scope.cancel()
    with pytest.raises(ValueError, match="wss"):
        async with open_ocpp_client(
            "ws://h/ocpp", identity="CP1", security_profile=2, password="x"
        ):
            pass  # pragma: no cover
    with pytest.raises(ValueError, match="password"):
        async with open_ocpp_client("ws://h/ocpp", identity="CP1", security_profile=1):
            pass  # pragma: no cover


async def test_close_while_reconnecting_fails_waiting_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept(stay_open=1), reject(503))
        async with open_ocpp_client(
            "ws://h/ocpp", identity="CP1", **client_options(csms, backoff_min=5)
        ) as client:
            await trio.sleep(2)

            async def close_soon() -> None:
                await trio.sleep(1)
                await client.close()

            nursery.start_soon(close_soon)
            with pytest.raises(trio.ClosedResourceError):
                await client.call("Heartbeat", {})
            assert trio.current_time() == 3
        nursery.cancel_scope.cancel()


async def test_real_socket_smoke() -> None:
    """One real TCP connection on port 0 (the server side scripted with trio-websocket)."""

    async def handler(stream: trio.SocketStream) -> None:
        csms = ScriptedCSMS(nursery, accept())
        await csms._run(accept(), stream)

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        with trio.fail_after(10):
            async with open_ocpp_client(
                f"ws://127.0.0.1:{port}/ocpp", identity="CP1", ping_interval=0
            ) as client:
                assert await client.call("Heartbeat", {}) == NOW
        nursery.cancel_scope.cancel()


async def test_a_dead_peer_is_detected_by_ping_and_the_client_reconnects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        csms = ScriptedCSMS(nursery, accept())
        async with open_ocpp_client(
            "ws://h/ocpp",
            identity="CP1",
            **client_options(csms, ping_interval=10, pong_timeout=5),
        ) as client:
            closes = Recorder(client, "close")
            await trio.sleep(12)
            csms.valves[0].frozen = True  # the network swallows everything we send
            await trio.sleep(20)
            # ping at 20 gets no pong by 25: dead; reconnect after 1 s backoff
            assert [e.code for e in closes["close"]] == [1006]  # type: ignore[attr-defined]
            assert csms.attempts == [0, 26]
            assert client.state is ConnectionState.OPEN
            assert await client.call("Heartbeat", {}) == NOW
        nursery.cancel_scope.cancel()
