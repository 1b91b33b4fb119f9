"""Property: any interleaving of enqueues, outages, answers, errors and restarts keeps the
order and loses nothing that ``enqueue()`` acknowledged as stored.

Each example is a program run in virtual time against the in-memory CSMS,
with one :class:`MemoryStore` surviving the station's restarts (a new client
on the same store, as a rebooted station reopens its file).  Attempts are
unbounded here (nothing may be dropped), so the property is exact: once the
CSMS is back and healthy, the ids it received, with immediate repeats
collapsed (a retry after an error, a timeout, a lost connection or a
restart), are exactly the acknowledged ids in the order they were queued.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocpp_trio import open_ocpp_client
from ocpp_trio.outbox import MemoryStore, Outbox, SQLiteStore
from ocpp_trio.testing._server import MEMORY_ENDPOINT

from .csms import FlakyCSMS, open_csms, station_options

OPS = st.one_of(
    st.tuples(st.just("enqueue"), st.integers(1, 4)),
    st.tuples(st.just("down"), st.none()),
    st.tuples(st.just("up"), st.none()),
    st.tuples(st.just("answers"), st.sampled_from(["ok", "error", "silent"])),
    st.tuples(st.just("wait"), st.sampled_from([0.5, 3.0, 20.0])),
    st.tuples(st.just("restart"), st.none()),
)
PROGRAMS = st.lists(OPS, max_size=25)


def collapse(ids: list[int]) -> list[int]:
    out: list[int] = []
    for i in ids:
        if not out or out[-1] != i:
            out.append(i)
    return out


async def play(program: list[tuple[str, Any]], db: Path | None = None) -> None:
    """Run ``program``; on the in-memory store, or on a SQLite file when ``db`` is given."""
    store = MemoryStore()
    acknowledged: list[int] = []
    mode = ["ok"]
    counter = iter(range(1, 10**6))

    async with open_csms() as csms:
        csms.faults["DataTransfer"] = lambda payload: None if mode[0] == "ok" else mode[0]

        async def session(
            ops: list[tuple[str, Any]], csms: FlakyCSMS, *, final: bool = False
        ) -> None:
            # a restart reopens the file (a new store); the memory store lives on
            outbox = Outbox(
                store if db is None else db,
                message_attempts=10**9,
                message_attempt_interval=1,
                call_timeout=5,
                hold_until_accepted=False,
            )
            async with open_ocpp_client(
                MEMORY_ENDPOINT,
                identity="CP1",
                protocols=["ocpp1.6"],
                outbox=outbox,
                **station_options(csms, backoff_max=4, wait_connected=False),
            ) as client:
                for op, arg in ops:
                    if op == "enqueue":
                        for _ in range(arg):
                            n = next(counter)
                            await client.enqueue("DataTransfer", {"vendorId": "v", "data": str(n)})
                            acknowledged.append(n)
                    elif op == "down":
                        await csms.go_down()
                    elif op == "up":
                        csms.come_back()
                    elif op == "answers":
                        mode[0] = arg
                    elif op == "wait":
                        await trio.sleep(arg)
                if final:  # the CSMS is back and healthy: everything goes
                    # Polled (a timer at most 1 s ahead), not one long deadline:
                    # a clock that jumps while a commit runs jumps 1 s at most.
                    for _ in range(36_000):
                        if not len(outbox):
                            break
                        await trio.sleep(1)
                    assert not len(outbox), outbox.pending()

        chunk: list[tuple[str, Any]] = []
        for op, arg in program:
            if op == "restart":
                await session(chunk, csms)
                chunk = []
            else:
                chunk.append((op, arg))
        await session(chunk, csms)
        csms.come_back()
        mode[0] = "ok"
        await session([], csms, final=True)

    received = [int(r.payload["data"]) for r in csms.of("DataTransfer")]
    assert collapse(received) == acknowledged
    if db is None:
        assert len(store) == 0
    else:
        left = SQLiteStore(db)
        assert await left.load("CP1") == []
        await left.aclose()


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(program=PROGRAMS)
def test_any_interleaving_keeps_order_and_loses_nothing_stored(
    program: list[tuple[str, Any]],
) -> None:
    trio.run(play, program, clock=trio.testing.MockClock(autojump_threshold=0))


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(program=PROGRAMS)
def test_the_same_on_the_sqlite_store(tmp_path: Path, program: list[tuple[str, Any]]) -> None:
    """On the default store, each restart reopening the file.

    Its commits run in worker threads: the clock jumps only after 20 ms of
    real idleness, so that a commit in progress does not look like a
    station waiting for its next timer (were one jumped over, a timeout
    would fire early: that changes when messages go, never the order or
    what arrives).
    """
    db = tmp_path / f"outbox-{uuid.uuid4().hex}.db"
    trio.run(play, program, db, clock=trio.testing.MockClock(autojump_threshold=0.02))
