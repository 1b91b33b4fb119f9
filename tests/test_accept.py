"""The server's accept loops (``_server/accept.py``): a backlog is taken in one wake-up.

Under load a scheduling round is long; accepting one connection per round
(as ``trio.serve_listeners`` does) made a new station wait behind every
queued connection.  Here the whole backlog is taken at once, and running out
of descriptors pauses the loop with one log line a second instead of a
traceback per attempt.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

import pytest
import trio
import trio.testing

from ocpp_trio._server.accept import serve_listeners


async def test_a_backlog_is_accepted_in_one_wake_up() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    clients = []
    for _ in range(50):  # connected by the kernel, waiting in the backlog
        client = socket.create_connection(("127.0.0.1", port))
        clients.append(client)
    accepted: list[int] = []
    rounds = 0

    def handle(stream: trio.abc.Stream) -> Any:
        accepted.append(rounds)
        return trio.aclose_forcefully(stream)  # noqa: ASYNC105 - the coroutine to run

    async def ticker() -> None:
        nonlocal rounds
        while True:
            await trio.lowlevel.checkpoint()
            rounds += 1

    try:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ticker)
                await nursery.start(serve_listeners, handle, [listener], nursery)
                while len(accepted) < 50:
                    await trio.lowlevel.checkpoint()
                nursery.cancel_scope.cancel()
    finally:
        for client in clients:
            client.close()
    assert len(accepted) == 50
    # One accept() (a schedule point), then the rest of the backlog at once.
    assert max(accepted) - min(accepted) <= 1


class _Exhausted(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose accept() fails with EMFILE ``failures`` times, then gives a stream."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.given = 0

    async def accept(self) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        if self.given:
            await trio.sleep_forever()
        self.given += 1
        return trio.testing.memory_stream_pair()[0]

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_running_out_of_descriptors_pauses_and_logs_once_a_second(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    listener = _Exhausted(failures=25)  # 25 x 0.1 s: 2.5 s of exhaustion
    accepted: list[float] = []
    first = trio.Event()

    def handle(stream: trio.abc.Stream) -> Any:
        accepted.append(trio.current_time())
        if len(accepted) == 1:
            first.set()
        return trio.aclose_forcefully(stream)  # noqa: ASYNC105 - the coroutine to run

    start = trio.current_time()
    with caplog.at_level(logging.ERROR, logger="ocpp_trio.server"):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_listeners, handle, [listener], nursery)
            await first.wait()
            nursery.cancel_scope.cancel()
    assert accepted[0] - start == pytest.approx(2.5, abs=0.2)  # paused 0.1 s per failure
    lines = [r.getMessage() for r in caplog.records]
    assert 2 <= len(lines) <= 4  # not 25
    assert all("EMFILE" in line for line in lines)
    assert all(r.exc_info is None for r in caplog.records)


async def test_the_listeners_are_closed_when_it_ends() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_listeners, trio.aclose_forcefully, [listener], nursery)
        nursery.cancel_scope.cancel()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # nothing listens on the port (the duplicate descriptor is closed too)
