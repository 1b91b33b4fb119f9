"""Flag: a one-shot event that costs a trio.Event only while somebody waits for it.

A server holds thousands of idle connections, and each of them has a few
things that happen once (closed, tasks done) and that almost nobody waits
for.  A ``trio.Event`` is about 280 bytes (its set of waiting tasks
included); a :class:`Flag` is two slots, and makes its ``trio.Event`` on
the first :meth:`Flag.wait` only.
"""

from __future__ import annotations

from typing import Final, final

import trio


@final
class Flag:
    """Like ``trio.Event`` (``set``, ``is_set``, ``wait``), but lazy."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: trio.Event | None = None

    def set(self) -> None:
        """Set the flag and wake every waiter; idempotent."""
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        """Return once the flag is set (a checkpoint, as ``trio.Event.wait`` is)."""
        if self._set:
            await trio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = trio.Event()
        await self._event.wait()


def _set_event() -> trio.Event:
    event = trio.Event()
    event.set()
    return event


#: A ``trio.Event`` that is set already: the initial value of "reset on
#: demand" events (``x = trio.Event() if x.is_set() else x``), shared by all,
#: so that an object that never waits never has one of its own.  Setting it
#: again does nothing, and nothing ever waits on it for long.
SET_EVENT: Final = _set_event()
