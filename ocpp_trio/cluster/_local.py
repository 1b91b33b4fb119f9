"""The in-process adapter: the default, and a cluster of servers in one process.

``LocalAdapter()`` alone is a cluster of one: broadcasts reach this
instance's subscribers, presence is a dict.  Adapters sharing a
:class:`LocalHub` form a cluster inside one process (useful in tests and for
several servers on several ports in one program): a request to another
instance runs its node's handler in the caller's task.  An instance whose
``run`` ends is gone: its claims vanish at once, as if they had expired.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Mapping
from typing import Any, final

import trio

from ._errors import InstanceGone
from ._interface import ClaimResult, ClusterMessage, ClusterNode, Holder, Subscriber

log = logging.getLogger("ocpp_trio.cluster")

_numbers = itertools.count(1)


@final
class LocalHub:
    """What the :class:`LocalAdapter` instances of one process share."""

    def __init__(self) -> None:
        self.adapters: dict[str, LocalAdapter] = {}
        self.presence: dict[str, Holder] = {}


@final
class LocalAdapter:
    """A cluster adapter inside one process (no backend, never unavailable).

    Args:
        hub: shared with the other instances of an in-process cluster; None:
            a cluster of one.
        instance_id: unique within the hub (default: ``"local-<n>"``).
    """

    def __init__(self, hub: LocalHub | None = None, *, instance_id: str | None = None) -> None:
        self._hub = hub if hub is not None else LocalHub()
        self._id = instance_id or f"local-{next(_numbers)}"
        self._node: ClusterNode | None = None
        self._subscribers: dict[str, list[Subscriber]] = {}

    def __repr__(self) -> str:
        return f"<LocalAdapter instance={self._id!r} running={self._node is not None}>"

    @property
    def instance_id(self) -> str:
        return self._id

    @property
    def healthy(self) -> bool:
        return True

    async def run(
        self, node: ClusterNode, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self._hub.adapters.get(self._id, self) is not self:
            raise RuntimeError(f"instance id {self._id!r} is already running in this hub")
        self._node = node
        self._hub.adapters[self._id] = self
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            self._node = None
            del self._hub.adapters[self._id]
            for identity, holder in list(self._hub.presence.items()):
                if holder.instance == self._id:
                    del self._hub.presence[identity]

    async def publish(self, channel: str, payload: Any) -> None:
        payload = json.loads(json.dumps(payload))  # the same types as over a backend
        await trio.lowlevel.checkpoint()
        message = ClusterMessage(channel=channel, payload=payload, instance=self._id)
        targets = [a for a in self._hub.adapters.values() if a is not self] + [self]
        for adapter in targets:
            adapter._deliver(message)

    def _deliver(self, message: ClusterMessage) -> None:
        for callback in tuple(self._subscribers.get(message.channel, ())):
            try:
                callback(message)
            except Exception:
                log.exception("cluster subscriber %r of %r raised", callback, message.channel)

    def subscribe(self, channel: str, callback: Subscriber) -> None:
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._subscribers.setdefault(channel, []).append(callback)

    def unsubscribe(self, channel: str, callback: Subscriber | None = None) -> None:
        if callback is None:
            self._subscribers.pop(channel, None)
        elif callback in self._subscribers.get(channel, ()):
            self._subscribers[channel].remove(callback)

    async def claim(self, identity: str, token: str, *, replace: bool) -> ClaimResult:
        await trio.lowlevel.checkpoint()
        previous = self._hub.presence.get(identity)
        if previous is not None and previous.instance != self._id and not replace:
            return ClaimResult(taken=False, previous=previous)
        self._hub.presence[identity] = Holder(instance=self._id, token=token)
        return ClaimResult(taken=True, previous=previous)

    async def release(self, identity: str, token: str) -> None:
        await trio.lowlevel.checkpoint()
        if self._hub.presence.get(identity) == Holder(instance=self._id, token=token):
            del self._hub.presence[identity]

    async def locate(self, identity: str) -> Holder | None:
        await trio.lowlevel.checkpoint()
        return self._hub.presence.get(identity)

    async def request(
        self, instance: str, kind: str, body: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        target = self._hub.adapters.get(instance)
        node = target._node if target is not None else None
        if node is None:
            raise InstanceGone(instance, str(body.get("identity", "")))
        with trio.fail_after(timeout):
            answer = await node.handle_request(kind, json.loads(json.dumps(body)), timeout)
        result: dict[str, Any] = json.loads(json.dumps(answer))
        return result
