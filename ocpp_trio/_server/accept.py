"""The server's accept loops: every connection waiting in the backlog is taken at once.

``trio.serve_listeners`` accepts one connection per scheduling round: each
``accept()`` ends with a schedule point.  On a loaded server a round is long
(hundreds of connections each handle a message in it), so a backlog of N
connections (stations reconnecting together after an outage, or a flood of
hostile reconnects) takes N rounds to drain, and a new station waits behind
all of them: under 500 flooding connections it did not get in within 5 s.

Here a wake-up of the listener takes the whole backlog (up to
:data:`ACCEPT_BATCH` connections), each handed to the server's ``handle``
(which decides at once whether it is counted, displaces a silent one, or is
closed) and to a task of its own; then the loop waits for the listener
again.  A plain ``trio.SocketListener`` is drained with non-blocking
``accept(2)`` calls on a duplicate of its socket; other listeners (TLS
listeners, user-made ones) are served one connection per round, as trio does.

Accept errors that mean the process is out of descriptors or memory
(``EMFILE`` and the like) pause the loop 100 ms, as trio does, and are
logged at most once a second with a count, not with a traceback per
attempt: under a descriptor exhaustion attack that log was the larger cost.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Sequence
from contextlib import ExitStack
from typing import Any, Final

import trio

log = logging.getLogger("ocpp_trio.server")

#: Connections taken from the backlog per wake-up of a listener, at most.
ACCEPT_BATCH: Final = 256
#: ``accept(2)`` errors that mean the process or system is out of resources.
CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
#: How long the loop pauses after such an error.
CAPACITY_PAUSE: Final = 0.1
#: Errors of a connection that went away before it was accepted: skipped.
_SKIPPED_ERRNOS: Final = frozenset(
    getattr(errno, name)
    for name in ("EPERM", "ECONNABORTED", "EPROTO", "ECONNRESET", "ETIMEDOUT")
    if hasattr(errno, name)
)

Handle = Callable[[trio.abc.Stream], Coroutine[Any, Any, None]]


class _CapacityLog:
    """At most one line a second about accept errors, with how many there were."""

    __slots__ = ("_count", "_next")

    def __init__(self) -> None:
        self._count = 0
        self._next = -float("inf")

    def report(self, exc: OSError) -> None:
        self._count += 1
        now = trio.current_time()
        if now < self._next:
            return
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        log.error(
            "accept failed %d time(s) in the last second, last with %s (%s); pausing %.1f s each",
            self._count,
            name,
            os.strerror(exc.errno or 0),
            CAPACITY_PAUSE,
        )
        self._count = 0
        self._next = now + 1.0


async def serve_listeners(
    handle: Handle,
    listeners: Sequence[trio.abc.Listener[Any]],
    tasks: trio.Nursery,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on every listener until cancelled; each stream is ``handle(stream)`` in ``tasks``.

    The listeners are closed when this returns.
    """
    with ExitStack() as stack:
        async with trio.open_nursery() as nursery:
            capacity = _CapacityLog()
            for listener in listeners:
                drain: socket.socket | None = None
                if type(listener) is trio.SocketListener:
                    sock = listener.socket
                    drain = stack.enter_context(
                        socket.socket(sock.family, sock.type, sock.proto, os.dup(sock.fileno()))
                    )
                    drain.setblocking(False)
                nursery.start_soon(_accept_loop, handle, listener, drain, tasks, capacity)
            task_status.started()


async def _accept_loop(
    handle: Handle,
    listener: trio.abc.Listener[Any],
    drain: socket.socket | None,
    tasks: trio.Nursery,
    capacity: _CapacityLog,
) -> None:
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in CAPACITY_ERRNOS:
                    raise
                capacity.report(exc)
                await trio.sleep(CAPACITY_PAUSE)
                continue
            tasks.start_soon(handle, stream)
            if drain is not None:
                _drain(handle, drain, tasks, capacity)


def _drain(
    handle: Handle, drain: socket.socket, tasks: trio.Nursery, capacity: _CapacityLog
) -> None:
    """Take what else waits in the backlog, without a schedule point (bounded)."""
    for _ in range(ACCEPT_BATCH - 1):
        try:
            sock, _ = drain.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in _SKIPPED_ERRNOS:
                continue
            if exc.errno in CAPACITY_ERRNOS:
                capacity.report(exc)
                return  # the awaited accept() pauses
            raise
        sock.setblocking(False)
        tasks.start_soon(handle, trio.SocketStream(trio.socket.from_stdlib_socket(sock)))
