"""The life-cycle states of a connection (and of a client across reconnects), and their moves.

A connection is CONNECTING until its nursery runs, OPEN while calls may be
made, CLOSING from the moment our ``close()`` starts (new calls are refused,
calls in flight may finish), and CLOSED for good.  The peer or the network
can close it from any state but CLOSED.  Every change goes through
:func:`transition`, which refuses a move the table does not have.
"""

from __future__ import annotations

import enum
from typing import Final


class ConnectionState(enum.Enum):
    """The state of a connection (or of a client across its reconnects)."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_CONNECTING, _OPEN, _CLOSING, _CLOSED = (
    ConnectionState.CONNECTING,
    ConnectionState.OPEN,
    ConnectionState.CLOSING,
    ConnectionState.CLOSED,
)

#: The moves a connection can make, from each state.
TRANSITIONS: Final[dict[ConnectionState, frozenset[ConnectionState]]] = {
    _CONNECTING: frozenset({_OPEN, _CLOSING, _CLOSED}),
    _OPEN: frozenset({_CLOSING, _CLOSED}),
    _CLOSING: frozenset({_CLOSED}),
    _CLOSED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A connection was asked to make a move its state table does not have (a bug)."""


def transition(state: ConnectionState, new: ConnectionState) -> ConnectionState:
    """Return ``new`` if a connection in ``state`` may move there; else raise IllegalTransition."""
    if new not in TRANSITIONS[state]:
        allowed = ", ".join(sorted(s.name for s in TRANSITIONS[state])) or "none"
        raise IllegalTransition(
            f"a connection in state {state.name} cannot move to {new.name} (allowed: {allowed})"
        )
    return new
