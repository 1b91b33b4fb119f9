"""Helpers for the runtime tests: streams that hold back or watch the station's writes,
a transport that records the deadline its writer runs under, and walks of Trio's task tree."""

from __future__ import annotations

from collections.abc import Iterator

import trio
import trio.testing

from ocpp_trio import ConnectionClosed

NOW = {"currentTime": "2024-01-01T00:00:00Z"}

StreamPair = tuple[
    trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream],
    trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream],
]


class Gate:
    """Holds back the station's writes while closed (its ``send_all`` blocks)."""

    def __init__(self) -> None:
        self.opened = trio.Event()
        self.opened.set()

    def close(self) -> None:
        self.opened = trio.Event()

    def open(self) -> None:
        self.opened.set()


class Watch:
    """What the station's writer saw: the effective deadline of each ``send_all`` while armed."""

    def __init__(self) -> None:
        self.armed = False
        self.deadlines: list[float] = []


def station_stream_pair(gate: Gate | None = None, watch: Watch | None = None) -> StreamPair:
    """``(station, csms)`` memory streams; the station's ``send_all`` waits while ``gate`` is
    closed and, while ``watch`` is armed, records ``trio.current_effective_deadline()``
    (it runs in the writing task, so that is the writer's deadline)."""
    station_send, csms_receive = trio.testing.memory_stream_one_way_pair()
    csms_send, station_receive = trio.testing.memory_stream_one_way_pair()
    pump = station_send.send_all_hook
    assert pump is not None

    async def hook() -> None:
        if watch is not None and watch.armed:
            watch.deadlines.append(trio.current_effective_deadline())
        if gate is not None:
            await gate.opened.wait()
        await pump()

    station_send.send_all_hook = hook
    return (
        trio.StapledStream(station_send, station_receive),
        trio.StapledStream(csms_send, csms_receive),
    )


class SilentTransport:
    """A transport whose peer never answers; ``send`` records the writer's deadline."""

    subprotocol = "ocpp1.6"
    close_code: int | None = None
    close_reason = ""

    def __init__(self) -> None:
        self.sent: list[tuple[float, float, str]] = []  # (time, deadline, text)
        self._closed = trio.Event()

    async def send(self, text: str) -> None:
        self.sent.append((trio.current_time(), trio.current_effective_deadline(), text))
        await trio.lowlevel.checkpoint()

    async def receive(self) -> str | bytes:
        await self._closed.wait()
        raise ConnectionClosed("closed", code=1006)

    async def ping(self, payload: bytes) -> None:
        await trio.sleep_forever()

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        self._closed.set()

    async def abort(self) -> None:
        self._closed.set()


# --- the task tree ----------------------------------------------------------------


def walk(task: trio.lowlevel.Task) -> Iterator[trio.lowlevel.Task]:
    """``task`` and all its descendants (iterative, depth first)."""
    stack = [task]
    while stack:
        current = stack.pop()
        yield current
        for nursery in current.child_nurseries:
            stack.extend(nursery.child_tasks)


def all_tasks() -> set[trio.lowlevel.Task]:
    """Every task of the run, from the root task down."""
    return set(walk(trio.lowlevel.current_root_task()))


def tasks_below(task: trio.lowlevel.Task | None = None) -> set[trio.lowlevel.Task]:
    """The descendants of ``task`` (default: the current task), itself excluded."""
    top = task or trio.lowlevel.current_task()
    return set(walk(top)) - {top}


def library_tasks(tasks: set[trio.lowlevel.Task]) -> list[str]:
    """Names of the tasks in ``tasks`` that run ocpp_trio's own code (not its test helpers)."""
    return sorted(
        t.name
        for t in tasks
        if t.name.startswith("ocpp_trio.") and not t.name.startswith("ocpp_trio.testing.")
    )


def names(tasks: set[trio.lowlevel.Task]) -> list[str]:
    return sorted(t.name for t in tasks)
