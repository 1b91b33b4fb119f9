"""The outbox's storage interface, its records, and an in-memory store.

A store keeps the messages a station has queued and not yet finished with
(delivered or dropped), per station, in the order they were queued.  The
outbox keeps a copy of the queue in memory and tells the store every change
*before* it acts on it (write-ahead): a message is appended before
``enqueue()`` returns its handle, deleted after its answer arrived (or it was
dropped), and updated when its attempt count or its payload (the OCPP 1.6
``transactionId`` fix-up) changes.  Each method is one atomic step: after a
crash a store holds either the state before the call or the state after it.

Write a store of your own (a key-value store, a firmware's flash journal...)
by implementing :class:`OutboxStore`; :class:`MemoryStore` is the reference
(and keeps nothing across restarts); :class:`~ocpp_trio.outbox.SQLiteStore`
is the default.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, final, runtime_checkable

import trio


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMessage:
    """A message about to be stored (it gets its ``seq`` from the store).

    Attributes:
        protocol: the subprotocol the message was made for (a typed message
            names it), or None for "whatever the connection speaks".
        action: the OCPP action, e.g. ``"StopTransaction"``.
        payload: the request payload (JSON-ready: dicts, lists, str, int,
            float, bool, None).
        created: wall-clock time (``time.time()``) when it was queued.
        transaction_of: for OCPP 1.6, the ``seq`` of the StartTransaction
            whose ``transactionId`` this message still needs, or None.
    """

    protocol: str | None
    action: str
    payload: dict[str, Any]
    created: float
    transaction_of: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """A queued message as a store holds it.

    Attributes:
        seq: its position: assigned by the store, increasing, never reused
            (per store; the queue is delivered in ``seq`` order).
        station: the station identity it belongs to.
        attempts: delivery attempts that failed so far (CALLERROR or no answer
            on an open connection).
        protocol, action, payload, created, transaction_of: as in
            :class:`NewMessage`.
    """

    seq: int
    station: str
    protocol: str | None
    action: str
    payload: dict[str, Any]
    created: float
    attempts: int = 0
    transaction_of: int | None = None


@runtime_checkable
class OutboxStore(Protocol):
    """Where an outbox keeps its queue.  Every method is atomic (all or nothing).

    Methods may be called from one task at a time or concurrently (an
    ``enqueue()`` while the drain loop deletes); a store serializes them as it
    needs.  A method cancelled while it runs must either finish its step or
    leave no trace of it.
    """

    async def load(self, station: str) -> list[StoredMessage]:
        """Every message of ``station`` still queued, in ``seq`` order."""
        ...

    async def append(
        self, station: str, messages: Sequence[NewMessage], *, delete: Collection[int] = ()
    ) -> list[StoredMessage]:
        """Store ``messages`` at the end of ``station``'s queue, in order, in one atomic step.

        In the same step, delete the messages ``delete`` (by seq: delivered
        messages whose deletion the outbox let ride along with this commit).
        Returns the new messages with their ``seq``; durable when this returns.
        """
        ...

    async def apply(
        self, *, delete: Collection[int] = (), update: Sequence[StoredMessage] = ()
    ) -> None:
        """In one atomic step, delete the messages ``delete`` (by seq) and rewrite ``update``.

        ``update`` replaces a stored message's ``payload``, ``attempts`` and
        ``transaction_of`` (found by ``seq``); a seq that is not stored is ignored.
        """
        ...

    async def aclose(self) -> None:
        """Release the store's resources; idempotent."""
        ...


@final
@dataclass(slots=True)
class MemoryStore:
    """An :class:`OutboxStore` in memory: ordering and retries, no durability.

    For tests and for stations that queue across outages but not across
    restarts.  One ``MemoryStore`` may outlive the clients that use it (a
    test's "restart": a new client on the same store).
    """

    _rows: dict[int, StoredMessage] = field(default_factory=dict)
    _next: int = 1

    async def load(self, station: str) -> list[StoredMessage]:
        await trio.lowlevel.checkpoint()
        return [m for _, m in sorted(self._rows.items()) if m.station == station]

    async def append(
        self, station: str, messages: Sequence[NewMessage], *, delete: Collection[int] = ()
    ) -> list[StoredMessage]:
        await trio.lowlevel.checkpoint_if_cancelled()
        for seq in delete:
            self._rows.pop(seq, None)
        out: list[StoredMessage] = []
        for message in messages:
            stored = StoredMessage(
                seq=self._next,
                station=station,
                protocol=message.protocol,
                action=message.action,
                payload=copy.deepcopy(message.payload),
                created=message.created,
                transaction_of=message.transaction_of,
            )
            self._rows[stored.seq] = stored
            self._next += 1
            out.append(stored)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return out

    async def apply(
        self, *, delete: Collection[int] = (), update: Sequence[StoredMessage] = ()
    ) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        for seq in delete:
            self._rows.pop(seq, None)
        for message in update:
            if message.seq in self._rows:
                self._rows[message.seq] = message
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def __len__(self) -> int:
        return len(self._rows)
