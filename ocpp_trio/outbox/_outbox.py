"""The station's durable outbox: queue, drain loop, retries, registration gate.

Theory of operation.  An :class:`Outbox` belongs to one client
(``open_ocpp_client(..., outbox=...)``).  It keeps the queue in memory and
in its store (:class:`~ocpp_trio.outbox.OutboxStore`), write-ahead: every
change is committed to the store before the outbox acts on it.

- ``enqueue()`` appends the message to the store and returns its handle only
  once the store has committed it.  Appends that arrive while a commit runs
  go together into the next commit (group commit).
- The drain loop is a task in the client's nursery.  It sends the oldest
  message when the client has an open connection, the CSMS has accepted the
  station (``hold_until_accepted``), ``drain_delay`` has passed since the
  connection opened, and the message's retry time has come; one message is in
  flight at a time, so the queue reaches the CSMS in order.  Each attempt is
  a new CALL with a new message id (OCPP-J: ids are unique per CALL).
- An answer resolves the message's handle and emits ``outbox_delivered``;
  its deletion from the store rides along with the next commit (the next
  ``enqueue``'s, so a station that sends one message at a time commits once
  per message), and is committed, at the latest, before the next message is
  sent or ``FLUSH_GRACE`` after the queue ran empty.  A CALLERROR, or no answer within
  ``call_timeout`` on a connection that stayed open, is a failed attempt:
  after ``message_attempts`` of them the message is dropped
  (``outbox_dropped``), otherwise it waits ``message_attempt_interval`` x the
  attempts so far (``outbox_retry``) and blocks the queue behind it, which
  keeps the order.  A connection lost mid-attempt is not a failed attempt:
  the message goes again, first, after the reconnect.
- OCPP 1.6: a StopTransaction or MeterValues queued with
  ``transaction_of=<the StartTransaction's handle>`` gets the
  ``transactionId`` of its answer, rewritten in the store in the same step
  that deletes the StartTransaction.  If the StartTransaction is dropped,
  so are they (they could not name their transaction).
- The queue bound (``max_queue_size``) drops the oldest droppable message
  (2.x ``Updated`` events, 1.6 MeterValues, non-transaction messages), never
  a transaction's start or end; when nothing is droppable, a start or end is
  stored beyond the bound and any other new message is dropped.

Delivery guarantee: at least once, in order per station.  A message is
deleted from the store only after its answer has arrived, and that deletion
is committed before the next message goes out; if the process dies between
the CSMS's answer and that commit, the message is sent again after the
restart (with a new message id): at most one message (the last one sent) is
duplicated per crash.

Cancellation: cancelling ``enqueue()`` leaves the message either not stored
or stored and queued (when its commit had begun); ``pending()`` tells.
Cancelling ``handle.result()`` only stops waiting.  Closing the client stops
the drain loop; the queue stays in the store for the next run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Protocol, final

import trio

from .._core.errors import (
    CallErrorReceived,
    CallTimeout,
    ConnectionClosed,
    OCPPError,
    ProtocolMismatchError,
    ProtocolStateError,
    ValidationError,
)
from ..events import (
    EventEmitter,
    OutboxDeliveredEvent,
    OutboxDroppedEvent,
    OutboxRetryEvent,
)
from . import _rules
from ._handle import MessageDropped, OutboxHandle, PendingMessage
from ._sqlite import SQLiteStore
from ._store import NewMessage, OutboxStore, StoredMessage

if TYPE_CHECKING:
    from .._rpc.connection import OCPPConnection
    from .._rpc.link import Link
    from .._rpc.options import ConnectionOptions

log = logging.getLogger("ocpp_trio.outbox")

BOOT: Final = "BootNotification"
#: How long a delivered message's deletion may wait, with the queue empty, for
#: the next enqueue's commit to take it along (one commit instead of two).
FLUSH_GRACE: Final = 0.05


class OutboxHost(Protocol):
    """What an outbox needs of its client (``OCPPClient`` provides it)."""

    identity: str
    protocol: str | None

    @property
    def options(self) -> ConnectionOptions: ...

    @property
    def connection(self) -> OCPPConnection | None: ...

    @property
    def offered_protocols(self) -> Sequence[str]: ...

    def open_link(self) -> Link | None: ...

    async def wait_link(self) -> Link: ...

    async def call_direct(
        self, protocol: str | None, method: str, params: Mapping[str, Any], timeout: float | None
    ) -> dict[str, Any]: ...


@dataclass(slots=True)
class _Entry:
    message: StoredMessage
    handle: OutboxHandle
    kind: _rules.Kind
    not_before: float = 0.0


@dataclass(slots=True)
class _Waiting:
    """An ``enqueue()`` waiting for its commit."""

    message: NewMessage
    kind: _rules.Kind
    entry: _Entry | None = None


@final
class Outbox:
    """A station's durable queue of outbound messages, with OCPP's offline rules.

    Pass one to ``open_ocpp_client(..., outbox=...)`` (or just a file path,
    which means ``Outbox(path)``); the client then has it as
    ``client.outbox``.  An outbox serves one client at a time.

    Args:
        store: where the queue lives: a file path (a :class:`SQLiteStore`
            the outbox opens and closes) or an :class:`OutboxStore` of yours
            (which you close).
        message_attempts: attempts per message before it is dropped (1.6
            ``TransactionMessageAttempts``, 2.x
            ``MessageAttemptsTransactionEvent``); at least 1.
        message_attempt_interval: seconds; a retry waits this x the attempts
            made so far (1.6 ``TransactionMessageRetryInterval``, 2.x
            ``MessageAttemptIntervalTransactionEvent``).
        queue_all_messages: ``call()`` queues every action but
            BootNotification, not only the transaction messages (2.x
            ``QueueAllMessages``).
        queued_actions: further actions ``call()`` queues.
        max_queue_size: the queue bound (messages); beyond it the drop policy
            applies (see the module docs).  ``math.inf``: no bound.
        drain_delay: seconds to wait after a connection opens before
            sending from the queue (lets the station's own BootNotification
            and StatusNotifications go first).
        hold_until_accepted: send nothing but BootNotification, neither from
            the queue nor by ``call()``, until a BootNotification was answered
            ``Accepted`` (B02/B03; 1.6 §4.2); a ``Pending`` or ``Rejected``
            answer also holds the next BootNotification until its
            ``interval`` has passed.
        call_timeout: how long one attempt waits for its answer (default:
            the client's ``call_timeout``).
        station: the identity the queue is kept under in the store (default:
            the client's identity).
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | OutboxStore,
        *,
        message_attempts: int = 3,
        message_attempt_interval: float = 60.0,
        queue_all_messages: bool = False,
        queued_actions: Collection[str] = (),
        max_queue_size: float = math.inf,
        drain_delay: float = 0.0,
        hold_until_accepted: bool = True,
        call_timeout: float | None = None,
        station: str | None = None,
    ) -> None:
        if not (isinstance(message_attempts, int) and message_attempts >= 1):
            raise ValueError(f"message_attempts must be an integer >= 1, got {message_attempts!r}")
        if not message_attempt_interval >= 0:
            raise ValueError(
                f"message_attempt_interval must be >= 0 seconds, got {message_attempt_interval!r}"
            )
        if not (
            max_queue_size == math.inf or (isinstance(max_queue_size, int) and max_queue_size >= 1)
        ):
            raise ValueError(
                f"max_queue_size must be an integer >= 1 or math.inf, got {max_queue_size!r}"
            )
        if not drain_delay >= 0:
            raise ValueError(f"drain_delay must be >= 0 seconds, got {drain_delay!r}")
        if call_timeout is not None and not call_timeout > 0:
            raise ValueError(f"call_timeout must be > 0 seconds, got {call_timeout!r}")
        if isinstance(queued_actions, str):
            raise TypeError("queued_actions takes a collection of action names, not a string")
        if isinstance(store, str | os.PathLike):
            self.store: OutboxStore = SQLiteStore(store)
            self._owns_store = True
        elif isinstance(store, OutboxStore):
            self.store = store
            self._owns_store = False
        else:
            raise TypeError(
                f"store must be a file path or an OutboxStore, got {type(store).__name__}"
            )
        self.message_attempts = message_attempts
        self.message_attempt_interval = float(message_attempt_interval)
        self.queue_all_messages = queue_all_messages
        self.queued_actions = frozenset(queued_actions)
        self.max_queue_size = max_queue_size
        self.drain_delay = float(drain_delay)
        self.hold_until_accepted = hold_until_accepted
        self.call_timeout = call_timeout
        self.station = station
        self._host: OutboxHost | None = None
        self._emitter = EventEmitter()
        self._queue: list[_Entry] = []  # in seq order
        self._waiting: list[_Waiting] = []  # enqueued, not committed yet
        self._append_lock = trio.Lock()
        self._in_flight: _Entry | None = None
        # Answered, deletion not committed yet: it rides along with the next
        # commit, and is committed before the next message is sent.
        self._unflushed: list[int] = []
        self._changed = trio.Event()
        self._txids: dict[int, int] = {}  # 1.6: StartTransaction seq -> transactionId
        self._dropped_starts: set[int] = set()
        self._ready = False
        # Registration (B02/B03): the last BootNotification status, and until
        # when a Pending/Rejected answer holds the next one.
        self.registration_status: str | None = None
        self._boot_not_before = -math.inf

    def __repr__(self) -> str:
        return f"<Outbox {self.store!r} queued={len(self._queue)}>"

    # --- state ------------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        """Whether the CSMS answered the last BootNotification ``Accepted``."""
        return self.registration_status == "Accepted"

    def __len__(self) -> int:
        return len(self._queue)

    def backlog(self) -> tuple[int, float]:
        """How many messages wait, and the age in seconds of the oldest (0 when none)."""
        queue = self._queue
        if not queue:
            return 0, 0.0
        return len(queue), max(0.0, time.time() - queue[0].message.created)

    def pending(self) -> list[PendingMessage]:
        """The queued messages, oldest first (delivered and dropped ones are gone)."""
        flying = self._in_flight
        return [
            PendingMessage(
                seq=e.message.seq,
                action=e.message.action,
                protocol=e.message.protocol,
                payload=json.loads(json.dumps(e.message.payload)),
                created=e.message.created,
                attempts=e.message.attempts,
                transaction_of=e.message.transaction_of,
                in_flight=e is flying,
                next_attempt=e.not_before,
            )
            for e in self._queue
        ]

    def handle(self, seq: int) -> OutboxHandle:
        """The handle of queued message ``seq`` (e.g. one loaded from the store after a restart).

        Raises:
            KeyError: no such message is queued.
        """
        for e in self._queue:
            if e.message.seq == seq:
                return e.handle
        raise KeyError(f"no message with seq {seq} is queued")

    def transaction_id(self, start_seq: int) -> int | None:
        """1.6: the ``transactionId`` the CSMS gave StartTransaction ``start_seq``, when known."""
        return self._txids.get(start_seq)

    def routes(self, action: str, params: Mapping[str, Any]) -> bool:
        """Whether ``call()`` of this message goes through the outbox."""
        return _rules.is_queued(
            action,
            params,
            queue_all_messages=self.queue_all_messages,
            queued_actions=self.queued_actions,
        )

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _online(self) -> bool:
        host = self._host
        try:
            return host is not None and host.open_link() is not None
        except (ConnectionClosed, trio.ClosedResourceError):
            return False

    # --- enqueue ----------------------------------------------------------------

    async def enqueue(
        self,
        protocol: str | None,
        action: str,
        params: Mapping[str, Any],
        *,
        transaction_of: OutboxHandle | int | None = None,
    ) -> OutboxHandle:
        """Store a message and return its handle (the client's ``enqueue`` calls this).

        Raises:
            trio.ClosedResourceError: the outbox is not running (its client is closed).
            TypeError: the payload is not JSON-ready.
            ValueError: ``transaction_of`` names no StartTransaction this outbox knows.
        """
        host = self._running()
        payload = json.loads(json.dumps(params))  # a private copy, JSON-ready or TypeError
        if not self._online():
            msg_protocol = protocol or host.protocol or host.offered_protocols[0]
            _rules.mark_offline(msg_protocol, action, payload)
        ref: int | None = None
        if transaction_of is not None:
            ref = transaction_of.seq if isinstance(transaction_of, OutboxHandle) else transaction_of
            if ref in self._txids:
                payload = _rules.with_transaction_id(payload, self._txids[ref])
                ref = None
            elif ref in self._dropped_starts:
                return self._refused(0, action, "start_dropped")
            elif not any(
                e.message.seq == ref and e.message.action == "StartTransaction" for e in self._queue
            ):
                raise ValueError(
                    f"transaction_of={ref}: no StartTransaction with that seq is queued"
                )
        kind = _rules.kind_of(action, payload)
        if len(self._queue) + len(self._waiting) >= self.max_queue_size:
            victim = self._victim()
            if victim is not None:
                await self._drop([victim], "queue_full", None)
            elif kind is not _rules.Kind.KEEP:
                return self._refused(0, action, "queue_full")
        await trio.lowlevel.checkpoint_if_cancelled()
        new = NewMessage(
            protocol=protocol,
            action=action,
            payload=payload,
            created=time.time(),
            transaction_of=ref,
        )
        item = _Waiting(new, kind)
        self._waiting.append(item)
        try:
            async with self._append_lock:
                if item.entry is None:
                    await self._commit_waiting(host)
        except BaseException:
            if item in self._waiting:
                self._waiting.remove(item)
            raise
        assert item.entry is not None
        return item.entry.handle

    async def _commit_waiting(self, host: OutboxHost) -> None:
        batch, self._waiting = self._waiting, []
        deletes, self._unflushed = self._unflushed, []
        try:
            stored = await self.store.append(
                self._station(host), [w.message for w in batch], delete=deletes
            )
        except BaseException:
            self._waiting[:0] = batch  # each retries on its own (or gives up, if cancelled)
            self._unflushed[:0] = deletes
            raise
        # No checkpoint from here on: the memory queue follows the store at once.
        for item, message in zip(batch, stored, strict=True):
            item.entry = _Entry(message, OutboxHandle(message.seq, message.action), item.kind)
            self._queue.append(item.entry)
        self._wake()

    def _refused(self, seq: int, action: str, reason: str) -> OutboxHandle:
        """A handle for a message dropped before it was stored."""
        handle = OutboxHandle(seq, action)
        error = MessageDropped(seq=seq, action=action, reason=reason)
        handle._drop(error)
        self._emit_dropped(handle, reason, None, 0)
        return handle

    def _victim(self) -> _Entry | None:
        for e in self._queue:
            if e.kind is not _rules.Kind.KEEP and e is not self._in_flight:
                return e
        return None

    def _station(self, host: OutboxHost) -> str:
        return self.station if self.station is not None else host.identity

    def _running(self) -> OutboxHost:
        if self._host is None or not self._ready:
            raise trio.ClosedResourceError("the outbox is not running (its client is closed)")
        return self._host

    async def remove(self, seq: int) -> None:
        """Drop queued message ``seq`` (not the one in flight); its handle raises ``MessageDropped``.

        Raises:
            KeyError: no such message is queued.
            ProtocolStateError-like ``RuntimeError``: the message is being sent.
        """
        self._running()
        for e in self._queue:
            if e.message.seq == seq:
                if e is self._in_flight:
                    raise RuntimeError(f"message {seq} is being sent; it cannot be removed now")
                await self._drop([e], "removed", None)
                return
        raise KeyError(f"no message with seq {seq} is queued")

    # --- the drain loop ------------------------------------------------------------

    async def run(
        self,
        host: OutboxHost,
        emitter: EventEmitter,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Load the queue and drain it for ``host`` until cancelled (the client runs this).

        ``emitter`` gets the ``outbox_*`` events.  When the client closes for
        good the loop ends and the queue stays in the store.
        """
        if self._host is not None:
            raise RuntimeError("this outbox already serves a client")
        self._host = host
        self._emitter = emitter
        try:
            for message in await self.store.load(self._station(host)):
                self._queue.append(
                    _Entry(
                        message,
                        OutboxHandle(message.seq, message.action),
                        _rules.kind_of(message.action, message.payload),
                    )
                )
            if self._queue:
                log.info(
                    "%s: %d queued messages loaded from the outbox",
                    self._station(host),
                    len(self._queue),
                )
            self._ready = True
            task_status.started()
            await self._drain(host)
        finally:
            self._ready = False
            self._host = None
            self._in_flight = None
            # bounded cleanup: the deletions still deferred, then the store
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                if self._unflushed:
                    await self._apply()
                if self._owns_store:
                    await self.store.aclose()

    async def _apply(
        self, *, delete: Sequence[int] = (), update: Sequence[StoredMessage] = ()
    ) -> None:
        """One store step, taking the deferred deletions along."""
        async with self._append_lock:
            deletes, self._unflushed = self._unflushed, []
            try:
                await self.store.apply(delete=[*deletes, *delete], update=update)
            except BaseException:
                self._unflushed[:0] = deletes
                raise

    async def _drain(self, host: OutboxHost) -> None:
        seen: OCPPConnection | None = None
        while True:
            await trio.lowlevel.checkpoint()
            entry = self._queue[0] if self._queue else None
            if entry is None:
                if self._unflushed:
                    with trio.move_on_after(FLUSH_GRACE):
                        await self._changed.wait()
                    if not self._queue and self._unflushed:  # nobody took them along
                        await self._apply()
                    continue
                await self._changed.wait()
                continue
            try:
                link = host.open_link()
            except (ConnectionClosed, trio.ClosedResourceError):
                return  # closed for good; the queue stays in the store
            if link is None:
                try:
                    await host.wait_link()
                except (ConnectionClosed, trio.ClosedResourceError):
                    return
                continue
            conn = host.connection
            if conn is not seen:
                seen = conn
                if self.drain_delay > 0:
                    await trio.sleep(self.drain_delay)
                    continue
            if self.hold_until_accepted and not self.accepted:
                await self._changed.wait()
                continue
            if entry.not_before > trio.current_time():
                with trio.move_on_at(entry.not_before):
                    await self._changed.wait()
                continue
            if self._unflushed:
                # Committed before the next send: a crash duplicates at most
                # the one message in flight.
                await self._apply()
                continue
            await self._attempt(host, entry, conn)

    async def _attempt(self, host: OutboxHost, entry: _Entry, conn: OCPPConnection | None) -> None:
        message = entry.message
        self._in_flight = entry
        try:
            result = await host.call_direct(
                message.protocol, message.action, message.payload, self.call_timeout
            )
        except CallErrorReceived as exc:
            await self._failed(entry, exc)
        except CallTimeout as exc:
            if host.connection is conn and self._online():
                await self._failed(entry, exc)
            # else the connection went away: not the CSMS's failure; again after the reconnect
        except (ValidationError, ProtocolMismatchError) as exc:
            await self._drop([entry], "invalid", exc)
        except (ConnectionClosed, trio.ClosedResourceError):
            # Lost mid-attempt (or closing): not the CSMS's failure.  Again,
            # first, after the reconnect (or restart); until this connection
            # has closed, the client may still call it open.
            if conn is not None:
                with trio.move_on_after(host.options.close_timeout + 1):
                    await conn.wait_closed()
        except ProtocolStateError:
            # the client's own call limits are full (max_queued_calls...): wait a little
            with trio.move_on_after(1.0):
                await self._changed.wait()
        else:
            await self._delivered(entry, result)
        finally:
            self._in_flight = None

    async def _delivered(self, entry: _Entry, result: dict[str, Any]) -> None:
        seq = entry.message.seq
        updates: list[tuple[_Entry, StoredMessage]] = []
        tid: int | None = None
        if entry.message.action == "StartTransaction":
            tid = _rules.start_transaction_id(result)
            if tid is not None:
                for e in self._queue:
                    if e.message.transaction_of == seq:
                        fixed = replace(
                            e.message,
                            payload=_rules.with_transaction_id(e.message.payload, tid),
                            transaction_of=None,
                        )
                        updates.append((e, fixed))
        if updates:  # the fix-ups are committed before anything else happens
            await self._apply(delete=[seq], update=[m for _, m in updates])
        else:
            self._unflushed.append(seq)
        for e, fixed in updates:
            e.message = fixed
        if tid is not None:
            self._txids[seq] = tid
            entry.handle._transaction_id = tid
        self._queue.remove(entry)
        entry.handle._deliver(result)
        if self._emitter.has("outbox_delivered"):
            self._emitter.emit(
                "outbox_delivered",
                OutboxDeliveredEvent(
                    seq=seq,
                    action=entry.message.action,
                    payload=entry.message.payload,
                    result=result,
                    attempts=entry.message.attempts + 1,
                ),
            )
        self._wake()
        if entry.message.action == "StartTransaction" and tid is None:
            # answered without a transactionId: what waits for one cannot name its transaction
            self._dropped_starts.add(seq)
            orphans = [e for e in self._queue if e.message.transaction_of == seq]
            if orphans:
                await self._drop(orphans, "start_dropped", None)

    async def _failed(self, entry: _Entry, error: OCPPError) -> None:
        attempts = entry.message.attempts + 1
        if attempts >= self.message_attempts:
            await self._drop([entry], "attempts", error, attempts=attempts)
            return
        updated = replace(entry.message, attempts=attempts)
        await self._apply(update=[updated])
        entry.message = updated
        delay = _rules.retry_delay(self.message_attempt_interval, attempts)
        entry.not_before = trio.current_time() + delay
        log.info(
            "%s (outbox seq %d) failed (attempt %d of %d), retry in %g s: %s",
            updated.action,
            updated.seq,
            attempts,
            self.message_attempts,
            delay,
            error,
        )
        self._emitter.emit(
            "outbox_retry",
            OutboxRetryEvent(
                seq=updated.seq,
                action=updated.action,
                attempt=attempts,
                delay=delay,
                error=error,
            ),
        )

    async def _drop(
        self,
        entries: list[_Entry],
        reason: str,
        error: BaseException | None,
        *,
        attempts: int | None = None,
    ) -> None:
        # 1.6: what waits for a dropped StartTransaction's transactionId goes with it.
        starts = {e.message.seq for e in entries if e.message.action == "StartTransaction"}
        dependents = [e for e in self._queue if e.message.transaction_of in starts]
        doomed = entries + [e for e in dependents if e not in entries]
        for e in doomed:  # out of the memory queue first: nobody picks them meanwhile
            if e in self._queue:
                self._queue.remove(e)
        try:
            await self._apply(delete=[e.message.seq for e in doomed])
        except BaseException:
            # not deleted: back into the queue, in order
            self._queue = sorted(self._queue + doomed, key=lambda e: e.message.seq)
            raise
        self._dropped_starts |= starts
        for e in doomed:
            own = e in entries  # else it waited for a dropped start
            why = reason if own else "start_dropped"
            cause = error if own else None
            tries = attempts if (attempts is not None and own) else e.message.attempts
            log.warning(
                "%s (outbox seq %d) dropped: %s%s",
                e.message.action,
                e.message.seq,
                why,
                f" ({cause})" if cause is not None else "",
            )
            e.handle._drop(
                MessageDropped(
                    seq=e.message.seq,
                    action=e.message.action,
                    reason=why,
                    error=cause,
                    attempts=tries,
                )
            )
            self._emit_dropped(e.handle, why, cause, tries)
        self._wake()

    def _emit_dropped(
        self, handle: OutboxHandle, reason: str, error: BaseException | None, attempts: int
    ) -> None:
        self._emitter.emit(
            "outbox_dropped",
            OutboxDroppedEvent(
                seq=handle.seq,
                action=handle.action,
                reason=reason,
                error=error,
                attempts=attempts,
            ),
        )

    # --- call() and the registration gate -----------------------------------------

    def observe_boot(self, result: Mapping[str, Any]) -> None:
        """Take note of a BootNotification answer (the client calls this)."""
        status = result.get("status")
        self.registration_status = status if isinstance(status, str) else None
        interval = result.get("interval")
        if status in ("Pending", "Rejected") and isinstance(interval, int | float) and interval > 0:
            self._boot_not_before = trio.current_time() + float(interval)
        else:
            self._boot_not_before = -math.inf
        self._wake()

    async def wait_registered(self, action: str) -> None:
        """Wait until ``action`` may be sent under ``hold_until_accepted`` (no wait when off)."""
        if not self.hold_until_accepted:
            await trio.lowlevel.checkpoint()
            return
        if action == BOOT:
            await trio.sleep_until(self._boot_not_before)  # a Pending/Rejected interval
            return
        while not self.accepted:
            await self._changed.wait()
        await trio.lowlevel.checkpoint()

    async def call(
        self,
        protocol: str | None,
        action: str,
        params: Mapping[str, Any],
        timeout: float | None,
    ) -> dict[str, Any]:
        """The client's ``call()`` with an outbox: queued actions go through the queue.

        A queued action is stored, then awaited within ``timeout``; when the
        timeout passes the message stays queued (``CallTimeout`` says so).  A
        dropped one raises :class:`MessageDropped`.  Other actions wait for
        the registration gate within ``timeout``, then go directly.
        """
        host = self._running()
        if timeout is None:
            timeout = (
                self.call_timeout if self.call_timeout is not None else host.options.call_timeout
            )
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if self.routes(action, params):
            handle = await self.enqueue(protocol, action, params)
            with trio.move_on_after(timeout):
                return await handle.result()
            raise CallTimeout(
                f"{action}: not delivered within {timeout:g} s; it stays queued in the outbox "
                f"(seq {handle.seq})"
            ) from None
        deadline = trio.current_time() + timeout
        with trio.move_on_at(deadline):
            await self.wait_registered(action)
        if trio.current_time() >= deadline:
            raise CallTimeout(
                f"{action}: held for {timeout:g} s"
                + (
                    " (the CSMS has not accepted the station)"
                    if action != BOOT
                    else " (the last BootNotification answer's interval)"
                )
            ) from None
        return await host.call_direct(protocol, action, params, deadline - trio.current_time())
