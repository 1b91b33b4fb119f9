"""The offline rules of OCPP, as pure functions (no I/O, no Trio).

OCPP 1.6 §4.10 (Transaction-related messages, "Offline behaviour"): the
transaction-related messages are StartTransaction, StopTransaction and the
MeterValues that belong to a transaction (they carry a ``transactionId``);
they are queued while offline and delivered in chronological order.  A
message the Central System failed to process is retried
``TransactionMessageAttempts`` times in all, waiting
``TransactionMessageRetryInterval`` x (the number of attempts so far) before
each retry.

OCPP 2.0.1 / 2.1 E13.FR.01-04 (the same for TransactionEventRequest with
``MessageAttemptsTransactionEvent`` / ``MessageAttemptIntervalTransactionEvent``);
E04.FR.03: a TransactionEvent generated while offline carries
``offline: true``; E04.FR.07-08: a station short of storage may drop
``Updated`` events, never ``Started`` or ``Ended``; ``QueueAllMessages``
queues the other messages too (BootNotification never: B02/B03 make it the
first message of every registration).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from enum import Enum
from typing import Any, Final

#: The subprotocols whose TransactionEvent has the ``offline`` flag.
V2X: Final = frozenset({"ocpp2.0.1", "ocpp2.1"})


class Kind(Enum):
    """What the drop policy may do with a queued message."""

    #: Starts or ends a transaction (1.6 Start/StopTransaction, 2.x Started/Ended): never dropped.
    KEEP = "keep"
    #: Transaction data in between (2.x ``Updated``, 1.6 transaction MeterValues):
    #: dropped, oldest first, when the queue is full.
    UPDATE = "update"
    #: Anything else (queued by ``queue_all_messages`` or by choice): dropped like updates.
    OTHER = "other"


def is_transaction_message(action: str, payload: Mapping[str, Any]) -> bool:
    """Whether OCPP (1.6 or 2.x) counts this as a transaction-related message."""
    if action in ("StartTransaction", "StopTransaction", "TransactionEvent"):
        return True
    return action == "MeterValues" and "transactionId" in payload


def kind_of(action: str, payload: Mapping[str, Any]) -> Kind:
    """The drop class of a message (see :class:`Kind`)."""
    if action in ("StartTransaction", "StopTransaction"):
        return Kind.KEEP
    if action == "TransactionEvent":
        return Kind.UPDATE if payload.get("eventType") == "Updated" else Kind.KEEP
    if action == "MeterValues" and "transactionId" in payload:
        return Kind.UPDATE
    return Kind.OTHER


def is_queued(
    action: str,
    payload: Mapping[str, Any],
    *,
    queue_all_messages: bool,
    queued_actions: Collection[str],
) -> bool:
    """Whether ``call()`` goes through the outbox for this message."""
    if action == "BootNotification":
        return False
    if queue_all_messages or action in queued_actions:
        return True
    return is_transaction_message(action, payload)


def retry_delay(interval: float, attempts_so_far: int) -> float:
    """Seconds to wait before the next attempt: ``interval`` x the attempts made so far."""
    return interval * attempts_so_far


def mark_offline(protocol: str | None, action: str, payload: dict[str, Any]) -> bool:
    """Set ``offline: true`` on a 2.x TransactionEvent made while offline; True when set.

    A payload that says ``offline`` already (either way) is left as it is.
    """
    if action != "TransactionEvent" or protocol not in V2X or "offline" in payload:
        return False
    payload["offline"] = True
    return True


def start_transaction_id(result: Mapping[str, Any]) -> int | None:
    """The ``transactionId`` of a 1.6 StartTransaction answer, when it has one."""
    value = result.get("transactionId")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def with_transaction_id(payload: Mapping[str, Any], transaction_id: int) -> dict[str, Any]:
    """A copy of a 1.6 StopTransaction / MeterValues payload with its ``transactionId`` set."""
    fixed = dict(payload)
    fixed["transactionId"] = transaction_id
    return fixed


def retry_backoff(
    wait_minimum: float,
    random_range: float,
    repeat_times: int,
    *,
    rng: random.Random | None = None,
) -> Callable[[int], float]:
    """OCPP 2.x's reconnect back-off, as ``open_ocpp_client(backoff=...)`` takes it.

    The first reconnect waits ``RetryBackOffWaitMinimum`` plus a random
    value of at most ``RetryBackOffRandomRange``; each later one doubles the
    minimum wait, ``RetryBackOffRepeatTimes`` times at most, and adds a new
    random value (the OCPPCommCtrlr variables of OCPP 2.0.1 and 2.1).
    ``attempt`` counts from 0 and restarts after a connection that lasted
    ``backoff_reset_after`` seconds.
    """
    if not (wait_minimum >= 0 and random_range >= 0):
        raise ValueError("wait_minimum and random_range must be >= 0 seconds")
    if not (isinstance(repeat_times, int) and repeat_times >= 0):
        raise ValueError(f"repeat_times must be an integer >= 0, got {repeat_times!r}")
    draw = rng.random if rng is not None else random.random

    def delay(attempt: int) -> float:
        return wait_minimum * 2.0 ** min(attempt, repeat_times) + random_range * draw()

    return delay
