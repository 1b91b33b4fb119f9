"""What a caller holds of a queued message: its handle, its snapshot, the error of a drop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, final

import trio

from .._core.errors import OCPPError


class MessageDropped(OCPPError):
    """A queued message was given up; raised by ``OutboxHandle.result()``.

    Attributes:
        seq: the message's position in the outbox.
        action: its action.
        reason: ``"attempts"`` (``message_attempts`` failed attempts),
            ``"queue_full"`` (the queue bound's drop policy), ``"start_dropped"``
            (1.6: its StartTransaction was dropped, or answered without a
            transactionId, so it cannot name its transaction),
            ``"invalid"`` (strict mode refused the payload, or it names
            another protocol than the connection's) or ``"removed"``
            (``Outbox.remove()``).
        error: the last failure (``CallErrorReceived``, ``CallTimeout``,
            ``ValidationError``...), when there was one.
        attempts: the failed attempts made.
    """

    def __init__(
        self,
        *,
        seq: int,
        action: str,
        reason: str,
        error: BaseException | None = None,
        attempts: int = 0,
    ) -> None:
        text = f"{action} (outbox seq {seq}) dropped: {reason}"
        if error is not None:
            text += f" (last error: {error})"
        super().__init__(text)
        self.seq = seq
        self.action = action
        self.reason = reason
        self.error = error
        self.attempts = attempts


@final
class OutboxHandle:
    """A queued message: await ``result()`` for its answer, or let it go.

    Attributes:
        seq: its position in the outbox (increasing; the delivery order).
        action: its action.
    """

    __slots__ = ("_done", "_error", "_result", "_transaction_id", "action", "seq")

    def __init__(self, seq: int, action: str) -> None:
        self.seq = seq
        self.action = action
        self._done = trio.Event()
        self._result: dict[str, Any] | None = None
        self._error: MessageDropped | None = None
        self._transaction_id: int | None = None

    def __repr__(self) -> str:
        state = "pending" if not self.done else ("dropped" if self._error else "delivered")
        return f"<OutboxHandle seq={self.seq} {self.action} {state}>"

    @property
    def done(self) -> bool:
        """Whether the message was delivered or dropped."""
        return self._done.is_set()

    @property
    def delivered(self) -> bool:
        """Whether the CSMS answered the message (with a CALLRESULT)."""
        return self._result is not None

    @property
    def transaction_id(self) -> int | None:
        """OCPP 1.6 StartTransaction: the ``transactionId`` the CSMS assigned, once answered."""
        return self._transaction_id

    async def result(self) -> dict[str, Any]:
        """Wait for the CSMS's answer and return it.

        Raises:
            MessageDropped: the message was given up (see its ``reason``).

        Cancelling this only stops waiting: the message stays queued.
        """
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def _deliver(self, result: dict[str, Any]) -> None:
        self._result = result
        self._done.set()

    def _drop(self, error: MessageDropped) -> None:
        self._error = error
        self._done.set()


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingMessage:
    """A snapshot of one queued message (``Outbox.pending()``).

    Attributes:
        seq, action, protocol, payload, created, attempts, transaction_of:
            as stored (see :class:`~ocpp_trio.outbox.StoredMessage`).
        in_flight: whether it is being sent right now.
        next_attempt: the ``trio.current_time()`` before which it is not
            retried (0 when it may go at once).
    """

    seq: int
    action: str
    protocol: str | None
    payload: dict[str, Any]
    created: float
    attempts: int
    transaction_of: int | None
    in_flight: bool
    next_attempt: float
