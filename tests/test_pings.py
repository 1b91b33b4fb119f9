"""The ping timer: one task for the due times of every connection of a run."""

from __future__ import annotations

import trio
import trio.testing

from ocpp_trio._rpc.pings import PingScheduler, ping_scheduler


class FakeConnection:
    def __init__(self, name: str, seen: list[tuple[str, float]]) -> None:
        self.name = name
        self.seen = seen

    def _ping_due(self) -> None:
        self.seen.append((self.name, trio.current_time()))


def timer_tasks() -> list[trio.lowlevel.Task]:
    found = []
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        if task.name == "ocpp_trio ping timer":
            found.append(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return found


async def test_entries_come_up_in_order_of_due_time(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[str, float]] = []
    timer = ping_scheduler()
    assert ping_scheduler() is timer  # one per run
    for name, due in (("c", 5.0), ("a", 1.0), ("b", 3.0), ("a2", 1.0)):
        timer.schedule(FakeConnection(name, seen), due)
    assert timer.scheduled == 4
    await trio.sleep(10)
    assert seen == [("a", 1), ("a2", 1), ("b", 3), ("c", 5)]
    assert timer.scheduled == 0
    assert timer_tasks() == []  # nothing scheduled: the timer task is gone


async def test_an_earlier_entry_wakes_the_timer(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[str, float]] = []
    timer = PingScheduler()
    timer.schedule(FakeConnection("late", seen), 100)
    await trio.sleep(1)
    timer.schedule(FakeConnection("early", seen), 5)
    await trio.sleep(10)
    assert seen == [("early", 5)]
    assert len(timer_tasks()) == 1


async def test_a_cancelled_entry_never_comes_up(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[str, float]] = []
    timer = PingScheduler()
    gone = timer.schedule(FakeConnection("gone", seen), 5)
    timer.schedule(FakeConnection("kept", seen), 7)
    gone.cancel()
    gone.cancel()  # idempotent
    assert gone.client is None  # the heap no longer holds the connection
    await trio.sleep(10)
    assert seen == [("kept", 7)]
    last = timer.schedule(FakeConnection("last", seen), 20)
    await trio.testing.wait_all_tasks_blocked()
    last.cancel()  # nothing left: the timer ends at once, not at 20
    await trio.testing.wait_all_tasks_blocked()
    assert timer_tasks() == []
    assert trio.current_time() == 10
