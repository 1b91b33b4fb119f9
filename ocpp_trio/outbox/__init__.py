"""The station's durable outbox: messages that survive an offline CSMS and a restart.

``open_ocpp_client(url, identity="CP1", outbox="station.db")`` (or
``outbox=Outbox(store, message_attempts=..., ...)``) gives the client an
outbox: ``await client.enqueue(...)`` stores a message and returns its
:class:`OutboxHandle`; ``call()`` of a transaction message goes through it.
See :class:`Outbox` for the rules and the delivery guarantee.
"""

from ._handle import MessageDropped as MessageDropped
from ._handle import OutboxHandle as OutboxHandle
from ._handle import PendingMessage as PendingMessage
from ._outbox import Outbox as Outbox
from ._rules import retry_backoff as retry_backoff
from ._sqlite import SQLiteStore as SQLiteStore
from ._store import MemoryStore as MemoryStore
from ._store import NewMessage as NewMessage
from ._store import OutboxStore as OutboxStore
from ._store import StoredMessage as StoredMessage

__all__ = [
    "MemoryStore",
    "MessageDropped",
    "NewMessage",
    "Outbox",
    "OutboxHandle",
    "OutboxStore",
    "PendingMessage",
    "SQLiteStore",
    "StoredMessage",
    "retry_backoff",
]
