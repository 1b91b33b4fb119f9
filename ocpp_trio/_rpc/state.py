"""The life-cycle states of a connection (and of a client across reconnects)."""

from __future__ import annotations

import enum


class ConnectionState(enum.Enum):
    """The state of a connection (or of a client across its reconnects)."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
