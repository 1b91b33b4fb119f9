"""The server's side of a cluster: presence of its stations, routed calls, broadcasts.

The server's stream runner (``_server/stream.py``) calls into
:class:`ClusterGlue` at a few points and knows the adapter only through
``ClusterAdapter``; the glue knows the runner only through what it offers
the package (``settings``, ``clients``, ``evict``):

- ``claim`` (handshake, after the local duplicate check): registers the
  connection's presence.  ``duplicate_policy="reject"``: a station held by a
  live other instance gets 409.  ``"replace"``: the claim is taken and the
  other instance is asked to close its connection (4000) and answer, within
  ``close_timeout + 1`` s; should that request be lost, the other instance's
  refresher finds its claim gone and closes the connection within
  ``presence_ttl / 3``.  Backend down: the station is let in (local service
  goes on), its claim is registered once the backend is back.
- ``released`` (the stream's task ends): queues the compare-and-delete of the
  claim; nothing waits on the backend there.
- ``call_station``: a station of this instance is called directly (the very
  ``OCPPConnection.call``); another instance's is reached with
  ``adapter.request`` and its outcome raised as a local call would raise it.

The glue's own tasks (the adapter, the release queue, closes asked for by
other instances) run in its nursery, started by ``serve_listeners``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import trio

from .._core.errors import CallTimeout
from .._rpc.outbound import parse_call_args
from .._server.admission import station_key
from ._errors import ClusterError, ClusterUnavailable, StationOffline
from ._interface import ClusterAdapter, Subscriber
from ._wire import decode, encode_error, ok

if TYPE_CHECKING:
    from .._server.stream import Peer, StreamRunner
    from ..observability.telemetry import Telemetry

log = logging.getLogger("ocpp_trio.cluster")

_tokens = itertools.count(1)
#: Releases queued while the backend is slow; past this they expire on their own.
_RELEASE_QUEUE: Final = 100_000


class ClusterGlue:
    """Cluster features of one ``OCPPServer`` (its stream runner) over one adapter."""

    def __init__(self, streams: StreamRunner, adapter: ClusterAdapter) -> None:
        self._streams = streams
        self.adapter = adapter
        self._held: dict[str, tuple[Peer, str]] = {}  # identity -> (peer, token)
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        self._release_send, self._release_receive = trio.open_memory_channel[tuple[str, str]](
            _RELEASE_QUEUE
        )
        self._released_all = trio.Event()

    @property
    def running(self) -> bool:
        return self._nursery is not None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the adapter and the release queue until :meth:`aclose` (or cancellation)."""
        with self._scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.adapter.run, self)
                nursery.start_soon(self._releaser)
                self._nursery = nursery
                task_status.started()
        self._nursery = None

    async def aclose(self) -> None:
        """Flush the queued releases (within a bound), then stop."""
        self._release_send.close()
        if self.running:  # a glue made after the server started never ran: nothing to flush
            with trio.move_on_after(2.0):
                await self._released_all.wait()
        self._scope.cancel()

    # --- presence -------------------------------------------------------------

    async def claim(self, identity: str, peer: Peer) -> str | None:
        """Register ``peer`` as ``identity``'s connection; a refusal reason, or None."""
        token = str(next(_tokens))
        replace = self._streams.settings.duplicate_policy == "replace"
        self._held[identity] = (peer, token)
        try:
            result = await self.adapter.claim(identity, token, replace=replace)
        except ClusterUnavailable as exc:
            log.warning("%s: accepted without cluster presence: %s", identity, exc)
            return None
        me = self.adapter.instance_id
        previous = result.previous
        if not result.taken:
            if self._held.get(identity, (None, ""))[1] == token:
                del self._held[identity]
            where = previous.instance if previous is not None else "?"
            return f"a connection with this identity is open on instance {where!r}"
        if previous is not None and previous.instance != me:
            log.info("%s: replacing its connection on instance %s", identity, previous.instance)
            bound = self._streams.settings.options.close_timeout + 1.0
            try:
                with trio.move_on_after(bound):
                    await self.adapter.request(
                        previous.instance,
                        "evict",
                        {"identity": identity, "token": previous.token},
                        bound,
                    )
            except (ClusterError, trio.TooSlowError) as exc:
                log.info("%s: instance %s did not confirm the close: %s", identity, previous, exc)
        return None

    def released(self, identity: str, peer: Peer) -> None:
        """``peer``'s stream is gone: queue the release of its claim (never blocks)."""
        entry = self._held.get(identity)
        if entry is None or entry[0] is not peer:
            return
        del self._held[identity]
        try:
            self._release_send.send_nowait((identity, entry[1]))
        except trio.ClosedResourceError:
            pass  # closing: the claim expires on its own
        except trio.WouldBlock:  # pragma: no cover - 100,000 releases behind
            log.warning("%s: release queue full; its presence expires on its own", identity)

    async def _releaser(self) -> None:
        async for identity, token in self._release_receive:
            try:
                await self.adapter.release(identity, token)
            except ClusterUnavailable as exc:
                log.info("%s: presence not released (expires on its own): %s", identity, exc)
        self._released_all.set()

    def presence_lost(self, identity: str, token: str) -> None:
        """Another instance took ``identity``: close our connection (ClusterNode)."""
        entry = self._held.get(identity)
        if entry is None or entry[1] != token or self._nursery is None:
            return
        del self._held[identity]
        log.info("%s: its presence moved to another instance; closing here", identity)
        self._nursery.start_soon(self._streams.evict, entry[0])

    # --- requests from other instances (ClusterNode) --------------------------

    async def handle_request(
        self, kind: str, body: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        identity = str(body.get("identity", ""))
        if kind == "evict":
            entry = self._held.get(identity)
            if entry is None or entry[1] != body.get("token"):
                return ok(False)
            del self._held[identity]
            await self._streams.evict(entry[0])
            return ok(True)
        if kind != "call":
            return {"error": {"type": "remote", "kind": "ValueError", "message": f"kind {kind!r}"}}
        conn = self._streams.clients.get(identity)
        if conn is None:
            return encode_error(StationOffline(identity))
        protocol = body.get("protocol")
        method: str = body.get("method") or ""
        params: dict[str, Any] = body.get("params") or {}
        telemetry = self._telemetry()
        carrier = body.get("trace")
        token = None
        if telemetry is not None and isinstance(carrier, dict):
            # The caller's trace: this instance's call span is its child.
            token = telemetry.extract({str(k): str(v) for k, v in carrier.items()})
        try:
            if protocol is None:
                return ok(await conn.call(method, params, timeout=timeout))
            return ok(await conn.call(protocol, method, params, timeout=timeout))
        except Exception as exc:
            return encode_error(exc)
        finally:
            if token is not None:
                telemetry.exit_span(token)  # type: ignore[union-attr]

    def _telemetry(self) -> Telemetry | None:
        observer = self._streams.settings.observer
        return None if observer is None else observer.telemetry

    # --- the public surface ---------------------------------------------------

    async def call_station(
        self, identity: str, args: tuple[Any, ...], timeout: float | None
    ) -> Any:
        conn = self._streams.clients.get(identity)
        if conn is not None:
            return await conn.call(*args, timeout=timeout)
        protocol, method, params = parse_call_args(args)
        if timeout is None:
            timeout = self._streams.settings.options.call_timeout
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        body: dict[str, Any] = {
            "identity": identity,
            "protocol": protocol,
            "method": method,
            "params": dict(params),
        }
        telemetry = self._telemetry()
        if telemetry is not None and telemetry.traces:
            return await telemetry.cluster_call(
                identity, method, body, lambda: self._call_remote(identity, args, body, timeout)
            )
        return await self._call_remote(identity, args, body, timeout)

    async def _call_remote(
        self, identity: str, args: tuple[Any, ...], body: dict[str, Any], timeout: float
    ) -> Any:
        """``call_station`` for a station this instance does not hold (as far as it knows)."""
        method = body["method"]
        deadline = trio.current_time() + timeout
        tried: set[str] = set()
        try:
            with trio.fail_after(timeout):
                while True:
                    holder = await self.adapter.locate(station_key(identity))
                    if holder is None or holder.instance in tried:
                        raise StationOffline(identity)
                    if holder.instance == self.adapter.instance_id:
                        conn = self._streams.clients.get(identity)
                        if conn is None:
                            raise StationOffline(identity)
                        remaining = max(deadline - trio.current_time(), 1e-3)
                        return await conn.call(*args, timeout=remaining)
                    tried.add(holder.instance)
                    remaining = deadline - trio.current_time()
                    answer = await self.adapter.request(holder.instance, "call", body, remaining)
                    try:
                        return decode(answer)
                    except StationOffline:
                        # It moved between our lookup and its instance: look once more.
                        continue
        except trio.TooSlowError:
            raise CallTimeout(f"{method}: no answer within {timeout:g} s") from None

    async def publish(self, channel: str, payload: Any) -> None:
        await self.adapter.publish(channel, payload)

    def subscribe(self, channel: str, callback: Subscriber) -> None:
        self.adapter.subscribe(channel, callback)

    def unsubscribe(self, channel: str, callback: Subscriber | None = None) -> None:
        self.adapter.unsubscribe(channel, callback)

    async def locate(self, identity: str) -> str | None:
        if identity in self._streams.clients:
            return self.adapter.instance_id
        holder = await self.adapter.locate(station_key(identity))
        return None if holder is None else holder.instance
