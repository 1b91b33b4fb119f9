"""Graceful shutdown: SIGTERM to a server process with calls in flight in both directions.

The server runs ``serve_until_signal`` in a subprocess.  When SIGTERM comes
the station's slow call is still being handled and the CSMS's own call is
still waiting for the station: both finish, then the station is closed with
1001 and the process exits 0.  Real time (a subprocess), a few seconds.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

from ocpp_trio import OCPPConnection, open_ocpp_client
from ocpp_trio._server.signals import SHUTDOWN_SIGNALS, serve_until_signal
from ocpp_trio.events import CloseEvent
from ocpp_trio.server import OCPPServer

from .helpers import Lines

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parent.parent

SERVER = textwrap.dedent(
    """
    import sys
    import trio
    from ocpp_trio.server import OCPPServer
    from ocpp_trio._server.signals import serve_until_signal

    async def on_station(conn):
        async def ask():
            print("calling", flush=True)
            result = await conn.call("GetConfiguration", {})
            print("answered", len(result["configurationKey"]), flush=True)

        @conn.handle("DataTransfer")
        async def slow(ctx):
            print("handling", flush=True)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask)  # a call of ours in flight as well
                await trio.sleep(float(ctx.params["data"]))
            return {"status": "Accepted", "data": "done"}

    async def main():
        server = OCPPServer(on_station, ping_interval=0, call_timeout=10)
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_until_signal, server, 0, "127.0.0.1")
            print("port", server.port, flush=True)
        print("stopped", flush=True)

    trio.run(main)
    """
)


async def test_sigterm_finishes_calls_in_flight_closes_1001_and_exits_0(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    closes: list[CloseEvent] = []
    with trio.fail_after(30):
        proc = await trio.lowlevel.open_process(
            [sys.executable, str(script)], stdout=subprocess.PIPE, cwd=ROOT
        )
        try:
            assert proc.stdout is not None
            lines = Lines(proc.stdout)
            port = int((await lines.until("port ")).split()[1])
            async with open_ocpp_client(
                f"ws://127.0.0.1:{port}/ocpp",
                identity="CP1",
                protocols=["ocpp1.6"],
                reconnect=False,
                ping_interval=0,
                call_timeout=10,
            ) as client:
                client.on("close", closes.append)

                @client.handle("GetConfiguration")
                async def get_configuration(ctx: Any) -> dict[str, Any]:
                    await trio.sleep(1.0)
                    return {"configurationKey": [{"key": "K", "readonly": True}]}

                results: list[dict[str, Any]] = []

                async def slow_call() -> None:
                    results.append(
                        await client.call("DataTransfer", {"vendorId": "v", "data": "1.0"})
                    )

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(slow_call)
                    await lines.until("handling")
                    await lines.until("calling")
                    proc.send_signal(signal.SIGTERM)
                assert results == [{"status": "Accepted", "data": "done"}]
                await lines.until("answered 1")
                with trio.fail_after(10):
                    while not closes:  # noqa: ASYNC110 - a callback list, no event to wait on
                        await trio.sleep(0.01)
            assert await proc.wait() == 0
            await lines.until("stopped")
        finally:
            if proc.returncode is None:  # pragma: no cover - the test failed
                proc.kill()
                await proc.wait()
    assert [(c.code, c.by_peer) for c in closes] == [(1001, True)]


async def test_serve_until_signal_returns_the_signal_in_process() -> None:
    """The same in-process: a second signal during the wait closes at once."""
    release = trio.Event()

    async def on_station(conn: OCPPConnection) -> None:
        @conn.handle("Heartbeat")
        async def stuck(ctx: Any) -> dict[str, str]:
            await release.wait()  # never set: only a forced close ends this call
            return {"currentTime": "2026-01-01T00:00:00Z"}

    server = OCPPServer(on_station, ping_interval=0, call_timeout=30)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            signums: list[int] = []

            async def serve(task_status: trio.TaskStatus[OCPPServer]) -> None:
                signums.append(
                    await serve_until_signal(
                        server, 0, "127.0.0.1", signals=(signal.SIGUSR1,), task_status=task_status
                    )
                )

            await nursery.start(serve)
            async with open_ocpp_client(
                f"ws://127.0.0.1:{server.port}/ocpp",
                identity="CP2",
                protocols=["ocpp1.6"],
                reconnect=False,
                ping_interval=0,
            ) as client:
                errors: list[BaseException] = []

                async def call() -> None:
                    try:
                        await client.call("Heartbeat", {})
                    except Exception as exc:
                        errors.append(exc)

                nursery.start_soon(call)
                await trio.sleep(0.2)
                signal.raise_signal(signal.SIGUSR1)
                await trio.sleep(0.2)  # waiting for the stuck call (call_timeout=30)...
                assert server.clients
                signal.raise_signal(signal.SIGUSR1)  # ...until the second signal
                await client.wait_closed()
        assert signums == [signal.SIGUSR1]
        assert [type(e).__name__ for e in errors] == ["ConnectionClosed"]
        assert server.clients == {}
        assert SHUTDOWN_SIGNALS == (signal.SIGTERM, signal.SIGINT)


async def _ws_pair() -> tuple[Any, Any]:
    """A client and a server ``WSTransport`` over a memory stream pair."""
    from trio.testing import memory_stream_pair

    from ocpp_trio._websocket.handshake import client_handshake, server_handshake

    client_stream, server_stream = memory_stream_pair()
    accepted: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def serve() -> None:
            request = await server_handshake(server_stream, max_message_size=2**20)
            accepted.append(await request.accept("ocpp1.6"))

        nursery.start_soon(serve)
        client, _ = await client_handshake(
            client_stream,
            "ws://127.0.0.1/ocpp/CP1",
            subprotocols=["ocpp1.6"],
            headers=[],
            max_message_size=2**20,
        )
    return client, accepted[0]


async def test_receive_while_aclose_reads_waits_instead_of_racing(autojump_clock: Any) -> None:
    """Found by the soak: a client closing with ``await_pending`` read the stream in
    ``aclose()`` while its reader task came back to ``receive()``: two readers on one
    stream (trio.BusyResourceError) crashed the station process."""
    from ocpp_trio._core.errors import ConnectionClosed

    client, server = await _ws_pair()
    errors: list[BaseException] = []

    async def receive() -> None:
        try:
            await server.receive()
        except ConnectionClosed as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.aclose, 1001, "bye")  # reads, waiting for the peer's close
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(receive)  # the reader task comes back meanwhile
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(ConnectionClosed):
            await client.receive()  # sees the close, answers it
    assert [type(e) for e in errors] == [ConnectionClosed]


async def test_a_ping_after_the_peer_closed_raises_connection_closed(autojump_clock: Any) -> None:
    """Found by the 10-minute soak: the pinger pinged while the reader was still
    flushing after the peer's close; websockets' InvalidState killed the connection
    (and, on a client, the whole ``open_ocpp_client`` block)."""
    from ocpp_trio._core.errors import ConnectionClosed

    _client, server = await _ws_pair()
    server._proto.receive_eof()  # what the reader does on EOF, before it flushes
    with pytest.raises(ConnectionClosed):
        await server.ping(b"12345678")
