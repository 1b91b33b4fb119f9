"""The ping task of one connection: WebSocket pings, deferred on activity, a pong deadline.

RFC 6455 §5.5.2/§5.5.3: a ping must be answered by a pong; a peer that does
not answer within ``pong_timeout`` is gone (a half-open TCP connection, a
station that lost power), and the connection is aborted with 1006 ("pong
timeout").  The task lives in the connection's nursery, beside the reader and
the handler tasks, and ends with it.

It sleeps until the next ping is due: ``ping_interval`` after the last
ping, or, with ``defer_pings_on_activity``, after the last message received,
whichever is later (messages prove the peer alive).  The sleep is a cancel
scope ending at the due time; ``reconfigure`` (new interval, pings off or on)
wakes it by cancelling that scope, and it works the due time out again.  The
wait for the pong is a cancel scope ending at the pong deadline.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Awaitable, Callable

import trio

from .._core.errors import ConnectionClosed
from .._websocket.transport import CLOSE_ABNORMAL
from ..events import ErrorEvent, PingEvent, PongEvent
from .link import Link

log = logging.getLogger("ocpp_trio.connection")

_payloads = itertools.count(1)


async def _nothing() -> None:
    pass


class Pinger:
    """When the next ping is due, and the task that sends it (see the module docstring)."""

    __slots__ = ("_link", "_on_dead", "_sleep", "last_ping", "running")

    def __init__(self, link: Link, on_dead: Callable[[], Awaitable[object]]) -> None:
        self._link = link
        self._on_dead = on_dead
        self._sleep: trio.CancelScope | None = None
        #: Whether the task runs (it ends when pings are turned off).
        self.running = False
        #: When the last ping went out (or the count started).
        self.last_ping = 0.0

    def start(self, nursery: trio.Nursery) -> None:
        """Start the ping task in ``nursery`` (the connection's) if pings are on and it is not running."""
        if not self.running and self._link.options.pings_enabled:
            self.running = True
            self.last_ping = trio.current_time()
            nursery.start_soon(self.run)

    def wake(self, *, restart: bool = False) -> None:
        """The options changed: work the next due time out again.

        ``restart``: pings were off and are on again, so the interval counts from now.
        """
        if restart:
            self.last_ping = trio.current_time()
        if self._sleep is not None:
            self._sleep.cancel()

    def detach(self) -> None:
        """The connection has ended: forget its callback (no reference cycle)."""
        self._on_dead = _nothing

    def _due(self) -> float:
        options = self._link.options
        if not options.pings_enabled:
            return math.inf
        due = self.last_ping + options.ping_interval
        if options.defer_pings_on_activity:
            due = max(due, self._link.last_activity + options.ping_interval)
        return due

    async def run(self) -> None:
        """Ping until the connection ends (or pings are turned off)."""
        link = self._link
        try:
            while link.is_open:
                due = self._due()
                if due == math.inf:
                    return
                if trio.current_time() < due:
                    with trio.CancelScope(deadline=due) as self._sleep:
                        await trio.sleep_forever()
                    self._sleep = None
                    continue  # due now, or moved by activity or new options: look again
                self.last_ping = trio.current_time()
                if not await self._ping_once():
                    return
        finally:
            self._sleep = None
            self.running = False

    async def _ping_once(self) -> bool:
        """One ping; False when the connection is gone (closed, or aborted for want of a pong)."""
        link = self._link
        pong_timeout = link.options.pong_timeout
        payload = next(_payloads).to_bytes(8, "big")
        link.emitter.emit("ping", PingEvent(payload=payload))
        started = trio.current_time()
        with trio.move_on_after(pong_timeout) as scope:
            try:
                await link.transport.ping(payload)
            except ConnectionClosed:
                return False
        if scope.cancelled_caught:
            log.warning(
                "%s: no pong within %s s: the peer is gone, closing",
                link.quiet.prefix,
                pong_timeout,
            )
            error = ConnectionClosed(
                f"no pong within {pong_timeout} s", code=CLOSE_ABNORMAL, reason="pong timeout"
            )
            link.emitter.emit("error", ErrorEvent(error=error, context="ping"))
            await self._on_dead()
            return False
        now = trio.current_time()
        link.last_activity = now
        if link.rec is not None:
            link.rec.pong(now - started)
        link.emitter.emit("pong", PongEvent(payload=payload, rtt=now - started))
        return True
