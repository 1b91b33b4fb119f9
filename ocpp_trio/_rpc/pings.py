"""When connections are due a WebSocket ping: one timer task for all of them.

A task per connection that sleeps until its next ping costs an idle
connection about 2.7 KiB (the task, its stack of coroutines, its cancel
scope); a CSMS holding 10,000 stations with pings on (the default) would
spend some 27 MB on sleeping.  Instead, every connection of a Trio run with
pings enabled has one entry in a heap here, ``[due, seq, connection]``, and
one task sleeps until the earliest entry is due.  Then it tells the
connection (``PingClient._ping_due``), which either pings (in a short task of
its own nursery, for as long as the ping waits for its pong) and is
scheduled again after the pong, or, its due time having moved meanwhile
(``defer_pings_on_activity``), is scheduled again at once.

Removing an entry only forgets its connection (the heap keeps the small list
until it comes up): a closed connection is never kept alive by the heap.

The timer task is a Trio system task, started when the first entry comes
and ending when no connection is scheduled any more; it only keeps the heap
and calls ``_ping_due`` (which does not raise), so it has nothing to report
to anybody.  The pings themselves run in the connections' own nurseries.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from typing import Protocol

import trio

log = logging.getLogger("ocpp_trio.connection")


class PingClient(Protocol):
    """What a connection offers the scheduler."""

    def _ping_due(self) -> None:
        """The connection's entry came up: ping now, or schedule again."""
        ...


class PingEntry:
    """One scheduled connection: ``cancel()`` forgets it."""

    __slots__ = ("client", "due", "scheduler", "seq")

    def __init__(self, scheduler: PingScheduler, due: float, seq: int, client: PingClient) -> None:
        self.scheduler = scheduler
        self.due = due
        self.seq = seq
        self.client: PingClient | None = client

    def __lt__(self, other: PingEntry) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)

    def cancel(self) -> None:
        """Forget this entry (idempotent); the connection is not told."""
        self.scheduler.cancel(self)


class PingScheduler:
    """The heap of due times of one Trio run (see the module docstring)."""

    __slots__ = ("_heap", "_live", "_running", "_seq", "_sleep")

    def __init__(self) -> None:
        self._heap: list[PingEntry] = []
        self._seq = itertools.count()
        self._live = 0  # entries not cancelled
        self._running = False
        self._sleep: trio.CancelScope | None = None  # the timer's sleep, to wake it early

    def schedule(self, client: PingClient, due: float) -> PingEntry:
        """Call ``client._ping_due()`` at ``due`` (unless the entry is cancelled first)."""
        entry = PingEntry(self, due, next(self._seq), client)
        heap = self._heap
        heapq.heappush(heap, entry)
        self._live += 1
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name="ocpp_trio ping timer")
        elif heap[0] is entry and self._sleep is not None:
            self._sleep.cancel()  # earlier than the timer's wake-up
        return entry

    def cancel(self, entry: PingEntry) -> None:
        """Forget ``entry`` (idempotent); the timer ends when nothing is left."""
        if entry.client is None:
            return
        entry.client = None
        self._live -= 1
        if not self._live and self._sleep is not None:
            self._sleep.cancel()

    @property
    def scheduled(self) -> int:
        """Connections waiting for their next ping."""
        return self._live

    async def _run(self) -> None:
        heap = self._heap
        try:
            while self._live:
                while heap[0].client is None:
                    heapq.heappop(heap)
                now = trio.current_time()
                if heap[0].due > now:
                    with trio.CancelScope(deadline=heap[0].due) as self._sleep:
                        await trio.sleep_forever()
                    self._sleep = None
                    continue
                while heap and heap[0].due <= now:
                    entry = heapq.heappop(heap)
                    client = entry.client
                    if client is None:
                        continue
                    entry.client = None
                    self._live -= 1
                    try:
                        client._ping_due()
                    except Exception:  # pragma: no cover - ping_due does not raise
                        log.exception("ping timer: %r failed", client)
        finally:  # nothing is scheduled any more, or the run is ending
            self._running = False
            self._sleep = None
            for entry in heap:
                entry.client = None
            heap.clear()
            self._live = 0


_SCHEDULER: trio.lowlevel.RunVar[PingScheduler] = trio.lowlevel.RunVar("ocpp_trio_pings")


def ping_scheduler() -> PingScheduler:
    """The scheduler of the current Trio run."""
    try:
        return _SCHEDULER.get()
    except LookupError:
        scheduler = PingScheduler()
        _SCHEDULER.set(scheduler)
        return scheduler
