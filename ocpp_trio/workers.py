"""Several server processes on one port: ``serve_workers``.

One Python process runs on one core.  ``serve_workers(handler, port,
workers=N)`` starts N worker processes, each running :func:`serve_ocpp` on
its own listening socket bound to the same port with ``SO_REUSEPORT``; the
kernel spreads incoming connections over them (Linux, and the BSDs).  Each
station lives in exactly one worker, so per-station state stays in one
process; code that must reach a station held by another worker uses the
cluster adapter (``ocpp_trio.cluster.RedisAdapter``), exactly as it would
across machines.

Workers are started with the ``spawn`` method (a fresh interpreter: no
inherited Trio state), so ``handler`` and the options must be picklable:
a module-level function, plain option values.  The parent reserves the port
before starting them (so ``port=0`` works and the chosen port is returned
through ``on_ready``), waits for every worker to listen, then only supervises:
SIGINT or SIGTERM to the parent is passed on as SIGTERM to every worker, which
closes its stations with 1001 (``server.close(await_pending=True)``, bounded)
and exits; a worker that dies takes the others down with it and the call
raises, so a process supervisor (systemd, Kubernetes) restarts the whole set.
Each worker also watches a pipe from the parent: if the parent is killed
outright, the workers close their stations and exit instead of living on.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import sys
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from types import FrameType
from typing import TYPE_CHECKING, Any, Unpack

import trio

from ._server.stream import Handler

if TYPE_CHECKING:
    from .server import ServerKwargs

__all__ = ["serve_workers"]


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def _worker(
    handler: Handler | None,
    host: str,
    port: int,
    ready: Connection,
    server_options: dict[str, Any],
) -> None:
    from .server import OCPPServer  # imported here: the parent never needs it

    raw = _reuseport_socket(host, port)
    raw.listen(1024)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(raw))
    server = OCPPServer(handler, **server_options)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(server.serve_listeners, [listener]))
            ready.send(os.getpid())
            stop = trio.Event()

            async def on_signal() -> None:
                async for _ in signals:
                    stop.set()
                    return

            async def on_parent_gone() -> None:
                # The parent holds the other end of ``ready``: when it dies,
                # however it dies, the pipe reads EOF and this worker stops.
                await trio.lowlevel.wait_readable(ready.fileno())
                stop.set()

            nursery.start_soon(on_signal)
            nursery.start_soon(on_parent_gone)
            await stop.wait()
            await server.close(await_pending=True)
            nursery.cancel_scope.cancel()
    ready.close()


def _worker_main(
    handler: Handler | None,
    host: str,
    port: int,
    ready: Connection,
    server_options: dict[str, Any],
) -> None:
    trio.run(_worker, handler, host, port, ready, server_options)


def serve_workers(
    handler: Handler | None,
    port: int,
    *,
    workers: int | None = None,
    host: str = "0.0.0.0",
    on_ready: Callable[[int, list[int]], object] | None = None,
    start_timeout: float = 30.0,
    **server_options: Unpack[ServerKwargs],
) -> None:
    """Serve ``handler`` from ``workers`` processes sharing ``port``; blocks until stopped.

    Args:
        handler: as for :func:`serve_ocpp`; must be picklable (module level).
        port: the TCP port; 0 picks a free one.
        workers: number of processes (default: the number of CPUs).
        host: the address to bind (IPv4 or IPv6 literal).
        on_ready: called in the parent with ``(port, worker_pids)`` once every
            worker listens.
        start_timeout: bound on the workers' start.
        **server_options: ``OCPPServer`` options (picklable: no ``ssl_context``
            objects; build TLS in a handler module if needed).

    Returns when SIGINT/SIGTERM stopped the workers cleanly.

    Raises:
        RuntimeError: a worker failed to start or died; the others are stopped.
    """
    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Linux and the BSDs have it
        raise RuntimeError("serve_workers needs SO_REUSEPORT, which this platform lacks")
    count = workers or os.cpu_count() or 1
    reservation = _reuseport_socket(host, port)  # holds the port; never listens
    port = reservation.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    procs: list[multiprocessing.process.BaseProcess] = []
    ends: list[Connection] = []  # kept open: a worker stops when its end reads EOF
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    old_handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        pids: list[int] = []
        for _ in range(count):
            parent_end, child_end = ctx.Pipe(duplex=True)
            ends.append(parent_end)
            worker = ctx.Process(
                target=_worker_main,
                args=(handler, host, port, child_end, dict(server_options)),
                daemon=True,
            )
            worker.start()
            child_end.close()
            procs.append(worker)
            if not parent_end.poll(start_timeout):
                raise RuntimeError(f"a worker did not start within {start_timeout:g} s")
            try:
                pids.append(parent_end.recv())
            except EOFError:
                raise RuntimeError("a worker failed to start (see its traceback above)") from None
        reservation.close()
        if on_ready is not None:
            on_ready(port, pids)
        while True:
            for proc in procs:
                proc.join(0.2)
                if not proc.is_alive():
                    if stopping or proc.exitcode == 0:
                        for other in procs:
                            other.join(30)
                        return
                    raise RuntimeError(f"worker {proc.pid} died with exit code {proc.exitcode}")
    finally:
        reservation.close()
        for end in ends:
            end.close()
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join(10)
        for sig, old in old_handlers.items():
            signal.signal(sig, old)
        sys.stdout.flush()
