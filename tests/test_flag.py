"""Flag: a one-shot event that makes its trio.Event only for a waiter."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ocpp_trio._rpc.flag import SET_EVENT, Flag


async def test_a_flag_wakes_every_waiter_once_set() -> None:
    flag = Flag()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        await flag.wait()
        woken.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(waiter, i)
        await trio.testing.wait_all_tasks_blocked()
        assert not flag.is_set()
        assert woken == []
        flag.set()
        flag.set()  # idempotent
    assert flag.is_set()
    assert sorted(woken) == [0, 1, 2]


async def test_waiting_on_a_set_flag_returns_at_once_but_is_a_checkpoint() -> None:
    flag = Flag()
    flag.set()
    await flag.wait()
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await flag.wait()


async def test_a_cancelled_waiter_leaves_the_flag_usable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flag = Flag()
    with trio.move_on_after(1):
        await flag.wait()
    assert trio.current_time() == 1
    assert not flag.is_set()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flag.wait)
        await trio.testing.wait_all_tasks_blocked()
        flag.set()


async def test_the_shared_set_event_is_set_and_stays_set() -> None:
    assert SET_EVENT.is_set()
    SET_EVENT.set()
    await SET_EVENT.wait()
    assert SET_EVENT.is_set()
