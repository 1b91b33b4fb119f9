"""A random program against one real connection, checked against a model, in virtual time.

Hypothesis draws a setup and a program of up to 30 steps; one ``trio.run`` under a
``MockClock(autojump_threshold=0)`` plays it against a real ``OCPPConnection`` (station or
CSMS) facing the public raw peer, and the model is checked after every step (settled with
``wait_all_tasks_blocked``) and at the end.  One ``trio.run`` per example rather than a
``RuleBasedStateMachine`` whose rules would each need the running loop: the whole program
runs in one loop, so Trio's scheduling and virtual time are exactly reproducible, and the
program (a list) shrinks well.

Steps: our calls (with their own timeout, or ``call_timeout``), the peer's answers (result
or CALLERROR; to a pending call, a late one, or a repeated one), the peer's calls (a sync
and a slow async handler), malformed frames (the public ``malformed_frames`` strategy),
cancellations of our calls, time passing (pings run when enabled), our close and the
peer's close.

Invariants: every call ends exactly once, and how (result, CALLERROR, ``CallTimeout`` at
exactly start + timeout, ``Cancelled`` when cancelled, the close's error after a close);
``pending_calls`` is the number of our CALLs on the wire and unanswered (0 at the end);
late answers are ``late_response`` events; the peer's calls get one answer each; bad frames
are counted as ``_core/protocol.py`` says (consecutive; any good frame resets; a late answer
neither counts nor resets) and the connection closes with 1002 exactly when the count goes
past ``max_bad_messages``; no task of the library outlives the connection.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ocpp_trio import HandlerContext, OCPPConnection
from ocpp_trio.testing import RawPeer, open_raw_peer
from ocpp_trio.testing.strategies import malformed_frames

from .helpers import Recorder
from .runtime_helpers import NOW, library_tasks, tasks_below

PROTOCOL = "ocpp1.6"
CALL_TIMEOUT = 3.0
SLOW_HANDLER = 2.0


@dataclass(frozen=True)
class Call:
    timeout: float | None


@dataclass(frozen=True)
class Answer:
    pick: int
    error: bool


@dataclass(frozen=True)
class PeerCall:
    slow: bool


@dataclass(frozen=True)
class Bad:
    text: str


@dataclass(frozen=True)
class Cancel:
    pick: int


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Close:
    pass


@dataclass(frozen=True)
class PeerClose:
    code: int


CALLS = st.builds(Call, st.sampled_from([None, 1.5, 4.0]))
ANSWERS = st.builds(Answer, st.integers(0, 7), st.booleans())
STEPS = st.one_of(
    CALLS,
    CALLS,
    ANSWERS,
    ANSWERS,
    st.builds(PeerCall, st.booleans()),
    st.builds(Bad, malformed_frames(PROTOCOL).map(lambda frame: frame.text)),
    st.builds(Cancel, st.integers(0, 7)),
    st.builds(Sleep, st.sampled_from([0.5, 1.0, 2.0, 5.0])),
)
CLOSES = st.sampled_from([Close(), PeerClose(1000), PeerClose(4000)])
# A close (at most one; the steps after it see a closed connection) comes late, so that
# most programs have time to interleave first.
PROGRAMS = st.tuples(
    st.lists(STEPS, min_size=4, max_size=26),
    st.lists(CLOSES, max_size=1),
    st.lists(STEPS, max_size=3),
).map(lambda parts: [*parts[0], *parts[1], *parts[2]])
SETUPS = st.fixed_dictionaries(
    {
        "under_test": st.sampled_from(["station", "csms"]),
        "max_bad_messages": st.sampled_from([0, 1, 2, 3, math.inf]),
        "call_concurrency": st.sampled_from([1, 2]),
        "ping_interval": st.sampled_from([0, 3]),
    }
)


@dataclass
class OurCall:
    """One of our calls, and what the model knows of it."""

    k: int
    start: float
    timeout: float
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    outcomes: list[tuple[str, float]] = field(default_factory=list)
    mid: str | None = None  # set once the peer has seen the CALL
    answer: str | None = None  # "result"/"error", given while the call was pending
    late: bool = False  # answered once after it ended (a late answer)
    cancelled_at: float | None = None
    answered_at: float | None = None


class World:
    """The connection under test, the raw peer, and the model of both."""

    def __init__(
        self, peer: RawPeer, conn: OCPPConnection, nursery: trio.Nursery, max_bad: float
    ) -> None:
        self.peer = peer
        self.conn = conn
        self.nursery = nursery
        self.max_bad = max_bad
        self.events = Recorder(conn, "late_response", "bad_message", "ping")
        self.calls: list[OurCall] = []
        self.streak = 0  # consecutive bad frames the connection received
        self.bad = 0
        self.late = 0
        self.closed: str | None = None  # "us", "peer" or "bad"
        self.closed_at: float | None = None
        self.peer_calls: dict[str, tuple[bool, float]] = {}  # id -> (slow, sent at)
        self.peer_answers: dict[str, int] = {}

    async def read_peer(self) -> None:
        """Everything the connection sends, as the peer sees it."""
        while True:
            try:
                frame = await self.peer.receive_json(timeout=math.inf)
            except Exception:  # the connection closed
                return
            if frame[0] == 2:  # one of our calls
                k = frame[3]["k"]
                assert self.calls[k].mid is None, f"call {k} sent twice"
                self.calls[k].mid = frame[1]
            elif frame[1] in self.peer_calls:
                self.peer_answers[frame[1]] = self.peer_answers.get(frame[1], 0) + 1

    async def run_call(self, call: OurCall, timeout: float | None) -> None:
        with call.scope:
            try:
                result = await self.conn.call("Heartbeat", {"k": call.k}, timeout=timeout)
            except trio.Cancelled:
                call.outcomes.append(("Cancelled", trio.current_time()))
                raise
            except Exception as exc:
                call.outcomes.append((type(exc).__name__, trio.current_time()))
            else:
                assert result == NOW
                call.outcomes.append(("result", trio.current_time()))

    def _bad_frame(self) -> None:
        self.streak += 1
        self.bad += 1
        if self.streak > self.max_bad:
            self._close("bad")

    def _close(self, how: str) -> None:
        self.closed = how
        self.closed_at = trio.current_time()

    async def step(self, step: object) -> None:
        now = trio.current_time()
        match step:
            case Call(timeout=timeout):
                call = OurCall(len(self.calls), now, timeout or CALL_TIMEOUT)
                self.calls.append(call)
                self.nursery.start_soon(self.run_call, call, timeout)
            case Cancel(pick=pick):
                running = [c for c in self.calls if not c.outcomes]
                if running:
                    call = running[pick % len(running)]
                    call.cancelled_at = now
                    call.scope.cancel()
            case Sleep(seconds=seconds):
                await trio.sleep(seconds)
            case _ if self.closed is not None:
                return  # the peer cannot send any more; closing twice is a no-op
            case Answer(pick=pick, error=error):
                seen = [c for c in self.calls if c.mid is not None]
                if not seen:
                    return
                call = seen[pick % len(seen)]
                if not call.outcomes:
                    self.streak = 0  # an answer to a pending call: a good frame
                    call.answer, call.answered_at = ("error" if error else "result"), now
                elif call.answer is None and not call.late:
                    call.late = True  # neither counts nor resets
                    self.late += 1
                else:
                    self._bad_frame()  # the id is no call of the connection's any more
                frame = [4, call.mid, "GenericError", "no", {}] if error else [3, call.mid, NOW]
                await self.peer.send(json.dumps(frame))
            case PeerCall(slow=slow):
                mid = f"peer-call-{len(self.peer_calls)}"
                self.peer_calls[mid] = (slow, now)
                self.streak = 0
                action, params = ("DataTransfer", {"vendorId": "V"}) if slow else ("Heartbeat", {})
                await self.peer.send(json.dumps([2, mid, action, params]))
            case Bad(text=text):
                self._bad_frame()
                await self.peer.send(text)
            case Close():
                self._close("us")
                await self.conn.close()
            case PeerClose(code=code):
                self._close("peer")
                await self.peer.aclose(code)
            case _:  # pragma: no cover
                raise AssertionError(step)

    def check(self) -> None:
        """The invariants that hold after every step (all tasks settled)."""
        conn = self.conn
        for call in self.calls:
            assert len(call.outcomes) <= 1, (call.k, call.outcomes)
        on_the_wire = [c.k for c in self.calls if c.mid is not None and not c.outcomes]
        assert conn.pending_calls == len(on_the_wire), on_the_wire
        assert len(self.events["late_response"]) == self.late
        assert len(self.events["bad_message"]) == self.bad
        assert (conn.close_code == 1002) == (self.closed == "bad"), (conn.close_code, self.closed)
        if self.closed is None:
            assert conn.close_code is None
            assert conn.bad_message_count == self.streak
        else:
            assert conn.close_code is not None
        now = trio.current_time()
        for mid, (slow, sent) in self.peer_calls.items():
            answers = self.peer_answers.get(mid, 0)
            assert answers <= 1, mid
            due = sent + (SLOW_HANDLER if slow else 0)
            if due <= now and (self.closed_at is None or due < self.closed_at):
                assert answers == 1, (mid, slow, sent, now)

    def check_outcomes(self) -> None:
        """How each call ended, once all have."""
        for call in self.calls:
            assert len(call.outcomes) == 1, (call.k, call.outcomes)
            ((what, when),) = call.outcomes
            if call.answer is not None:
                expected = "result" if call.answer == "result" else "CallErrorReceived"
                assert (what, when) == (expected, call.answered_at), call
            elif what == "CallTimeout":
                assert when == call.start + call.timeout, call
            elif what == "Cancelled":
                assert when == call.cancelled_at, call
            else:
                assert self.closed_at is not None, call
                assert when >= self.closed_at, call
                expected = "ConnectionClosed" if self.closed == "peer" else "ClosedResourceError"
                assert what == expected, (call, self.closed)
            if call.cancelled_at is not None and call.cancelled_at < when:
                raise AssertionError(f"cancelled at {call.cancelled_at}, still ran: {call}")


async def play(setup: dict[str, Any], program: list[object]) -> None:
    async def slow(ctx: HandlerContext) -> dict[str, Any]:
        await trio.sleep(SLOW_HANDLER)
        return {"status": "Accepted"}

    async with open_raw_peer(
        PROTOCOL,
        under_test=setup["under_test"],
        max_bad_messages=setup["max_bad_messages"],
        call_concurrency=setup["call_concurrency"],
        ping_interval=setup["ping_interval"],
        call_timeout=CALL_TIMEOUT,
    ) as (peer, conn):
        conn.handle("Heartbeat", lambda ctx: NOW)
        conn.handle("DataTransfer", slow)
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as nursery:
            world = World(peer, conn, nursery, setup["max_bad_messages"])
            nursery.start_soon(world.read_peer)
            for step in program:
                await world.step(step)
                await trio.testing.wait_all_tasks_blocked()
                world.check()
            if world.closed is None:
                world._close("us")
                await conn.close()
            with trio.fail_after(2 * CALL_TIMEOUT):
                await conn.wait_closed()
            await trio.testing.wait_all_tasks_blocked()
            world.check()
            world.check_outcomes()
            event(f"closed by {world.closed}")
            for call in world.calls:
                event(f"a call ended with {call.outcomes[0][0]}")
            if world.late:
                event("a late answer")
            if world.events["ping"]:
                event("pinged")
            assert conn.pending_calls == 0
            # No task of the library outlives the connection (our call tasks are done too).
            assert library_tasks(tasks_below()) == []
            nursery.cancel_scope.cancel()  # the peer's reader, if its side is still open


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(setup=SETUPS, program=PROGRAMS)
def test_random_programs_keep_the_runtime_invariants(
    setup: dict[str, Any], program: list[object]
) -> None:
    trio.run(play, setup, program, clock=trio.testing.MockClock(autojump_threshold=0))
