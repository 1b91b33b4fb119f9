"""The pieces of an outbound call that the connection and the client share.

``call_with_limit`` is the whole life of one ``call()``: a FIFO slot from the
``call_concurrency`` limiter, an open connection (a client may wait for its
reconnect here, still holding its place in the queue), the exchange itself;
all of it within ``timeout`` seconds of the start.  When the time is up the
call is forgotten by the core (a late answer becomes a ``late_response``
event) and ``CallTimeout`` is raised.

Theory of operation.  Most calls find a free slot and an open connection:
the slot is taken without waiting (``acquire_on_behalf_of_nowait`` refuses
while anyone is queued, so the queue stays FIFO), the frame is written, and
the task parks in a :class:`Waiter` until the reader hands it the answer.
The deadline of a parked call is kept by :class:`CallTimer`, one system task
per Trio run that sleeps until the earliest deadline of all calls and expires
what is due, rather than by a cancel scope per call: entering and leaving a
cancel scope cost more than all the rest of the call's own work (see
``benchmarks/``).  The waits off that path, for a queued slot and for a
reconnect, are cancel scopes ending at the same deadline; so is a write that
has to wait for another one, or on a transport that does not bound its own
writes (the default one finishes or fails a write it started within its grace
period, see ``_ws.py``: a deadline passing meanwhile is raised once it is
done).  A call always waits for its answer, so it is always a checkpoint.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from .._core.errors import CallTimeout
from .._core.validation import Validator, get_validator
from ..types import Message, SendAction
from .options import ConnectionOptions

if TYPE_CHECKING:
    from .connection import OCPPConnection

#: Known OCPP protocols with official schemas.
BUILTIN_PROTOCOLS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")


class DeadlineExpired(Exception):
    """The call's deadline passed (``call_with_limit`` raises ``CallTimeout`` for it)."""


class Waiter:
    """One outbound call waiting for its answer.

    The calling task parks itself in :meth:`wait`; :meth:`resolve` (from the
    reader, or from ``_finish`` on close) stores the outcome and reschedules
    it; :meth:`expire` (from the :class:`CallTimer`) also forgets the call on
    its connection first, so that an answer arriving now is reported as late.
    A cancelled wait unparks the task and leaves the outcome to nobody: the
    caller forgets the call in the core, so a late answer is reported.
    """

    __slots__ = ("action", "conn", "entry", "message_id", "outcome", "task")

    def __init__(self, action: str, conn: OCPPConnection, message_id: str) -> None:
        self.action = action
        self.conn = conn
        self.message_id = message_id
        self.outcome: dict[str, Any] | BaseException | None = None
        self.task: trio.lowlevel.Task | None = None
        self.entry: list[Any] | None = None  # its entry in the CallTimer, while in there

    def resolve(self, outcome: dict[str, Any] | BaseException) -> None:
        """Store the first outcome and wake the waiting task; later ones are ignored."""
        if self.outcome is None:
            self.outcome = outcome
            task = self.task
            if task is not None:
                self.task = None
                trio.lowlevel.reschedule(task)

    def expire(self) -> None:
        """The deadline passed: forget the call on its connection and wake the task."""
        self.conn._forget_call(self.message_id)
        self.resolve(DeadlineExpired())

    async def wait(self) -> None:
        """Return once resolved; a checkpoint either way (raises Cancelled like any)."""
        if self.outcome is not None:
            await trio.lowlevel.checkpoint()
            return
        self.task = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _abort(self, raise_cancel: object) -> trio.lowlevel.Abort:
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED


class CallTimer:
    """The deadlines of the calls in flight, kept by one system task per Trio run.

    A heap of ``[deadline, sequence, waiter]`` entries.  A call that ends
    first clears the waiter out of its entry, which stays in the heap until
    it comes to the top or the heap is compacted (when more than half of it
    is such entries), so adding and removing cost a few list operations.  The
    task sleeps until the earliest deadline; a new earlier one moves its
    scope's deadline up.  Expiring a call never raises (a system task must not).
    """

    __slots__ = ("_cleared", "_heap", "_scope", "_sequence", "_wake_at")

    def __init__(self) -> None:
        self._heap: list[list[Any]] = []
        self._cleared = 0
        self._sequence = itertools.count()
        self._wake_at = math.inf
        self._scope: trio.CancelScope | None = None

    def __len__(self) -> int:
        """The calls waiting for their deadline."""
        return len(self._heap) - self._cleared

    def add(self, waiter: Waiter, deadline: float) -> None:
        """Expire ``waiter`` at ``deadline`` unless :meth:`discard` comes first."""
        entry = [deadline, next(self._sequence), waiter]
        waiter.entry = entry
        heapq.heappush(self._heap, entry)
        if deadline < self._wake_at:
            self._wake_at = deadline
            if self._scope is not None:
                self._scope.deadline = deadline

    def discard(self, waiter: Waiter) -> None:
        """Forget ``waiter``'s deadline (no-op when it expired or was never added)."""
        entry = waiter.entry
        if entry is None:
            return
        waiter.entry = None
        entry[2] = None
        self._cleared += 1
        heap = self._heap
        if self._cleared > 64 and 2 * self._cleared > len(heap):
            heap[:] = [e for e in heap if e[2] is not None]
            heapq.heapify(heap)
            self._cleared = 0

    async def run(self) -> None:
        """Sleep until the earliest deadline, expire what is due, again (a system task)."""
        heap = self._heap
        while True:
            with trio.CancelScope(deadline=self._wake_at) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            while heap and (heap[0][2] is None or heap[0][0] <= now):
                waiter = heapq.heappop(heap)[2]
                if waiter is None:
                    self._cleared -= 1
                else:
                    waiter.entry = None
                    waiter.expire()
            self._wake_at = heap[0][0] if heap else math.inf


_call_timer: trio.lowlevel.RunVar[CallTimer] = trio.lowlevel.RunVar("ocpp_trio.call_timer")


def call_timer() -> CallTimer:
    """This Trio run's :class:`CallTimer`, started on first use."""
    try:
        return _call_timer.get()
    except LookupError:
        timer = CallTimer()
        _call_timer.set(timer)
        trio.lowlevel.spawn_system_task(timer.run, name="ocpp_trio call timer")
        return timer


def parse_call_args(
    args: tuple[Any, ...], *, send: bool = False
) -> tuple[str | None, str, Mapping[str, Any]]:
    """Split ``call(...)`` (or ``send(...)``) arguments into ``(protocol, method, params)``.

    Accepted: a typed message (``v16.BootNotification({...})``, which names its
    protocol), ``(method)`` (empty params), ``(method, params)`` and
    ``(protocol, method, params)``.  ``call()`` refuses a SEND-only message.
    """
    if len(args) == 1 and isinstance(args[0], Message):
        message = args[0]
        if not send and isinstance(message, SendAction):
            raise TypeError(
                f"{message.action} is a SEND message of {message.protocol}: "
                "it has no response; use send()"
            )
        protocol, method, params = message.protocol, message.action, message.params
    elif len(args) == 2:
        protocol, (method, params) = None, args
    elif len(args) == 3:
        protocol, method, params = args
        if not isinstance(protocol, str):
            raise TypeError(f"protocol must be a string, got {type(protocol).__name__}")
    elif len(args) == 1:
        method, params = args[0], {}
        protocol = None
        if isinstance(method, type) and issubclass(method, Message):
            raise TypeError(f"pass a message, not the action class: {method.__qualname__}({{...}})")
        if not isinstance(method, str):
            raise TypeError(
                "call() takes a typed action (v16.Heartbeat({})), (method, params) or "
                f"(protocol, method, params), got {type(method).__name__}"
            )
    else:
        raise TypeError(
            f"call() takes (method, params) or (protocol, method, params), got {len(args)} arguments"
        )
    if not isinstance(method, str) or not method:
        raise TypeError("method must be a non-empty string")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    return protocol, method, params


def resolve_validator(options: ConnectionOptions, protocol: str) -> Validator | None:
    """The validator strict mode uses on ``protocol``, or None when it does not validate."""
    for validator in options.strict_mode_validators:
        if validator.protocol == protocol:
            return validator
    strict = options.strict_mode
    if strict is True or (not isinstance(strict, bool) and protocol in strict):
        return get_validator(protocol) if protocol in BUILTIN_PROTOCOLS else None
    return None


def cap_reason(reason: str) -> str:
    data = reason.encode("utf-8")
    if len(data) <= 123:
        return reason
    return data[:123].decode("utf-8", "ignore")


async def call_with_limit(
    target: Any,
    limiter: trio.CapacityLimiter,
    protocol: str | None,
    method: str,
    params: Mapping[str, Any],
    timeout: float | None,
) -> dict[str, Any]:
    """Run one call: FIFO slot, an open connection, the exchange, all within ``timeout``.

    ``target._open_connection()`` returns the open connection, or None while
    a client reconnects; ``target._wait_ready()`` then waits for one.  The
    slot is held across that wait, so FIFO order holds across reconnects.
    """
    if timeout is None:
        timeout = float(target.options.call_timeout)
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    await trio.lowlevel.checkpoint_if_cancelled()
    deadline = trio.current_time() + timeout
    token = object()
    try:
        limiter.acquire_on_behalf_of_nowait(token)
    except trio.WouldBlock:
        with trio.move_on_at(deadline) as scope:
            await limiter.acquire_on_behalf_of(token)
        if scope.cancelled_caught:
            raise _timed_out(method, timeout) from None
    try:
        conn: OCPPConnection | None = target._open_connection()
        if conn is None:
            with trio.move_on_at(deadline) as scope:
                conn = await target._wait_ready()
            if conn is None or scope.cancelled_caught:
                raise _timed_out(method, timeout) from None
        return await conn._call_open(protocol, method, params, deadline)
    except DeadlineExpired:
        raise _timed_out(method, timeout) from None
    finally:
        limiter.release_on_behalf_of(token)


def _timed_out(method: str, timeout: float) -> CallTimeout:
    return CallTimeout(f"{method}: no answer within {timeout:g} s")
