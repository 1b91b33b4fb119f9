"""Graceful shutdown on a signal: serve until SIGTERM (or SIGINT), then close in bounded steps.

A CSMS is stopped by its supervisor (systemd, Kubernetes, a container
runtime) with SIGTERM, followed after a grace period by SIGKILL.  What should
happen in between (issue "graceful shutdown under load"):

1. stop accepting; drop handshakes not finished yet;
2. let the calls in flight finish, in both directions: the stations' CALLs
   being handled get their answers, the CSMS's own ``call()``s get theirs.
   A CALL arriving meanwhile is answered GenericError ("the connection is
   closing"): nothing is dropped without a word.  Each connection waits at
   most its ``call_timeout``;
3. close every station with 1001 (going away) within ``close_timeout``, then
   forcibly;
4. return, so that the process exits 0.

That is ``OCPPServer.close(await_pending=True)``; this module adds the signal
handling around it.  A second signal while closing skips the waiting: the
stations are closed at once.  ``trio.open_signal_receiver`` only works in the
main thread, so these helpers do too.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Final, Unpack

import trio

from ..server import OCPPServer, ServerKwargs
from .stream import Handler

log = logging.getLogger("ocpp_trio.server")

#: The signals a server stops on by default.
SHUTDOWN_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


async def serve_until_signal(
    server: OCPPServer,
    port: int,
    host: str | None = None,
    *,
    signals: Sequence[int] = SHUTDOWN_SIGNALS,
    await_pending: bool = True,
    reason: str = "server shutting down",
    on_signal: Callable[[int], object] | None = None,
    task_status: trio.TaskStatus[OCPPServer] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Serve ``server`` on TCP ``port`` until one of ``signals``; then shut it down gracefully.

    ``signum = await serve_until_signal(OCPPServer(handler), 9000)``, or
    ``await nursery.start(serve_until_signal, server, 0, "127.0.0.1")`` to get
    the server once it listens.

    Args:
        server: a server not serving yet.
        port: the TCP port (0: the OS picks one; see ``server.port``).
        host: the address to bind; None binds every interface.
        signals: the signals that stop the server.
        await_pending: let the calls in flight finish before closing (each
            connection waits at most its ``call_timeout``).
        reason: the close reason sent with 1001.
        on_signal: called with the signal number when the first signal
            arrives, before the shutdown starts (to tell the user that it
            started); a plain function that must not block.
        task_status: receives the server once it listens.

    Returns:
        the signal number that stopped the server.

    A second signal during the shutdown closes the stations at once.  If this
    call is cancelled, the stations are closed forcibly before it returns.
    """
    with trio.open_signal_receiver(*signals) as receiver:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(server.listen, port, host))
            task_status.started(server)
            signum = await _next(receiver)
            if on_signal is not None:
                on_signal(signum)
            log.info(
                "%s: closing %d station(s) with 1001%s",
                signal.Signals(signum).name,
                len(server.clients),
                ", after the calls in flight" if await_pending else "",
            )
            with trio.CancelScope() as graceful:
                nursery.start_soon(_force_on_next, receiver, graceful)
                # Cut short by a second signal, close() still closes every
                # station (forcibly) before it returns.
                await server.close(reason, await_pending=await_pending)
            nursery.cancel_scope.cancel()
    return signum


async def _next(receiver: AsyncIterator[int]) -> int:
    async for signum in receiver:
        return signum
    raise AssertionError("a signal receiver never ends")  # pragma: no cover


async def _force_on_next(receiver: AsyncIterator[int], graceful: trio.CancelScope) -> None:
    signum = await _next(receiver)
    log.warning("%s during the shutdown: closing the stations now", signal.Signals(signum).name)
    graceful.cancel()


def run_server(
    handler: Handler | None,
    port: int,
    *,
    host: str | None = None,
    signals: Sequence[int] = SHUTDOWN_SIGNALS,
    await_pending: bool = True,
    **server_options: Unpack[ServerKwargs],
) -> int:
    """Run a CSMS in this (main) thread until SIGTERM/SIGINT, then shut it down gracefully.

    ``run_server(on_station, 9000)`` is ``trio.run`` of
    :func:`serve_until_signal` with ``OCPPServer(handler, **server_options)``;
    when it returns the process can exit 0.

    Returns:
        the signal number that stopped the server.
    """
    server = OCPPServer(handler, **server_options)
    signum: int = trio.run(
        partial(
            serve_until_signal,
            server,
            port,
            host,
            signals=signals,
            await_pending=await_pending,
        )
    )
    return signum


__all__ = ["SHUTDOWN_SIGNALS", "run_server", "serve_until_signal"]
