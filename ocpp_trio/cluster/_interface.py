"""What a cluster adapter offers, and what it asks of the node it serves.

A *cluster* is several CSMS processes (instances) that share one backend.
The adapter is the only part that knows the backend; the server knows only
the ``ClusterAdapter`` protocol below, and an adapter never knows the server:
it talks to a ``ClusterNode`` (the server's glue), which answers the requests
other instances route to it.

Primitives, each with the failure it may raise:

- broadcast: ``publish``/``subscribe``; best effort (an instance that is cut
  off from the backend misses what is published meanwhile).
- presence: ``claim``/``release``/``locate``; a claim is held by one
  connection (its ``token``) of one instance; only that holder removes or
  refreshes it, and it expires when its instance stops refreshing it.
- requests: ``request(instance, kind, body, timeout)`` reaches the node of
  another instance and returns its answer, at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import trio


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterMessage:
    """One broadcast, as a subscriber sees it.

    Attributes:
        channel: the channel it was published on.
        payload: the published value (JSON types).
        instance: the instance id of the publisher.
    """

    channel: str
    payload: Any
    instance: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """Who holds the presence of an identity: an instance and a connection token."""

    instance: str
    token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimResult:
    """The outcome of :meth:`ClusterAdapter.claim`.

    Attributes:
        taken: the claim is now ours.
        previous: who held it before (None when nobody did); when ``taken``
            is False, the holder that kept it.
    """

    taken: bool
    previous: Holder | None


Subscriber = Callable[[ClusterMessage], object]


class ClusterNode(Protocol):
    """What an adapter calls back into: the server side of one instance."""

    async def handle_request(
        self, kind: str, body: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Answer a request another instance routed here, within ``timeout`` seconds."""
        ...

    def presence_lost(self, identity: str, token: str) -> None:
        """Another holder took the presence of ``identity`` from connection ``token``.

        Must not block.
        """
        ...


class ClusterAdapter(Protocol):
    """The interface the server uses to reach the other instances.

    Every method is safe to call from any task; every wait is bounded (by the
    adapter's own operation timeout, or by the ``timeout`` argument).
    Backend failures raise :class:`ClusterUnavailable`.
    """

    @property
    def instance_id(self) -> str:
        """This instance's id, unique in the cluster."""
        ...

    @property
    def healthy(self) -> bool:
        """Whether the backend answered the last operation."""
        ...

    async def run(
        self, node: ClusterNode, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve ``node`` (subscriptions, inbound requests, presence refresh) until cancelled.

        Calls ``task_status.started()`` once ready, or once the first attempt
        to reach the backend failed (it keeps retrying in the background).
        """
        ...

    async def publish(self, channel: str, payload: Any) -> None:
        """Deliver ``payload`` (JSON types) to the subscribers of ``channel`` on every instance."""
        ...

    def subscribe(self, channel: str, callback: Subscriber) -> None:
        """Call ``callback(message)`` for every broadcast on ``channel``; it must not block."""
        ...

    def unsubscribe(self, channel: str, callback: Subscriber | None = None) -> None:
        """Remove ``callback`` (every callback of ``channel`` when None)."""
        ...

    async def claim(self, identity: str, token: str, *, replace: bool) -> ClaimResult:
        """Make connection ``token`` of this instance the holder of ``identity``.

        With ``replace`` the claim is taken whoever held it; without, a claim
        held by another instance is kept (``taken`` is False).  A claim held
        by this instance is always taken (the server decides between its own
        connections).  On :class:`ClusterUnavailable` the claim is kept
        pending and registered once the backend is back.
        """
        ...

    async def release(self, identity: str, token: str) -> None:
        """Drop the claim on ``identity`` if connection ``token`` still holds it."""
        ...

    async def locate(self, identity: str) -> Holder | None:
        """Who holds ``identity`` now, or None."""
        ...

    async def request(
        self, instance: str, kind: str, body: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Send a request to ``instance``'s node and return its answer.

        Raises:
            InstanceGone: the instance is not alive, or died while we waited.
            ClusterUnavailable: the backend failed.
            trio.TooSlowError: no answer within ``timeout`` seconds.
        """
        ...
