"""The Redis adapter, on coredis (a Redis client that runs natively under Trio, via anyio).

Theory of operation.  Keys, under ``key_prefix`` (``P``, default ``ocpp_trio:``):

``P station:<identity>`` -> ``"<instance>|<token>"``, with a TTL
    The presence of one station: which instance holds it, and which of its
    connections (the token).  Taken by a Lua script (``_CLAIM``) that keeps
    a claim of another instance under the reject policy; refreshed by its
    owner every ``presence_ttl / 3`` by a script (``_REFRESH``) that extends
    it only while it still names that connection (and re-creates it when it
    vanished, e.g. after a Redis restart); deleted only by its owner
    (``_RELEASE``: compare and delete).  A dead instance stops refreshing,
    so its stations are offline within ``presence_ttl``.
``P {<instance>}:alive``, with the same TTL
    The instance is alive; refreshed with the presence.
``P {<instance>}:inbox``, a list
    Requests to the instance and answers to its requests, JSON.  A sender
    pushes with a script (``_SEND``) that refuses when the target's ``alive``
    key is gone (so a request to a dead instance fails at once) and keeps the
    list's TTL at ``presence_ttl`` (an inbox nobody reads vanishes).  The
    hash tag puts both keys of an instance in one Redis Cluster slot.  An
    answer refused that way (or not sent, Redis unreachable) is pushed again
    until the request's deadline: after Redis restarted empty, the
    requester's ``alive`` key is back only at its next heartbeat, and the
    requester, alive all along, would otherwise wait for its timeout.
``P broadcast``, a pub/sub channel
    Broadcasts, ``{"c": channel, "p": payload, "i": instance}``.

Why a list popped with BLMPOP for requests, not pub/sub or a stream: a
request must not be lost while the target's connection to Redis is being
re-established (pub/sub drops what is published during that gap, a list
keeps it until it is popped or its TTL ends), and it must run at most once
(an OCPP call such as RemoteStartTransaction must not be repeated after a
crash, which a stream's consumer group with re-delivery of unacknowledged
entries would do).  Each request carries an absolute deadline: one popped
after its caller gave up is dropped.  While waiting for an answer the caller
checks every ``presence_ttl / 3`` that the target is still alive, so a
request to an instance that dies fails within ``presence_ttl`` +
``presence_ttl / 3``, not only at its timeout.

Broadcasts use pub/sub: best effort, as documented.  After a pub/sub
connection drop coredis's context can end without an error under Trio, so
the subscriber runs in a loop that re-subscribes and logs each gap.

Failures: every Redis operation is bounded by ``op_timeout``; a failure marks
the adapter unhealthy and raises :class:`ClusterUnavailable`.  The loops
(subscriber, inbox, refresher) retry with a capped backoff and the adapter is
healthy again once Redis answers; then the instance's liveness is set and its
claims (made meanwhile, or lost with Redis's data) are registered again at
once, not at the next refresh.  coredis retries nothing by itself here (a
retried RPUSH could deliver a request twice).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar, final
from urllib.parse import urlsplit, urlunsplit

import trio

from ._errors import ClusterUnavailable, InstanceGone
from ._interface import ClaimResult, ClusterMessage, ClusterNode, Holder, Subscriber
from ._wire import encode_error

if TYPE_CHECKING:
    from coredis.client import Client
    from coredis.commands.script import Script

log = logging.getLogger("ocpp_trio.cluster")

T = TypeVar("T")

_CLAIM: Final = """
local v = redis.call('get', KEYS[1])
if v and ARGV[3] ~= '1' and string.sub(v, 1, #ARGV[4]) ~= ARGV[4] then
  return {0, v}
end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, v or ''}
"""
_REFRESH: Final = """
local v = redis.call('get', KEYS[1])
if v == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_RELEASE: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
_SEND: Final = """
if redis.call('exists', KEYS[1]) == 0 then
  return 0
end
redis.call('rpush', KEYS[2], ARGV[1])
redis.call('pexpire', KEYS[2], ARGV[2])
return 1
"""

#: Inbox messages popped at once.
_BATCH: Final = 64
#: Seconds a BLMPOP blocks on the server before it is issued again.
_BLOCK: Final = 1.0
_BACKOFF_MIN: Final = 0.1
_BACKOFF_MAX: Final = 2.0


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class _Waiter:
    __slots__ = ("answer", "event")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.answer: dict[str, Any] | None = None


@final
class RedisAdapter:
    """A cluster adapter over a real Redis (standalone or Redis Cluster), with coredis.

    Args:
        url: ``redis://[[user]:password@]host:port/db``, ``rediss://...`` for
            TLS, or ``unix:///path/to.sock``.
        cluster: connect to a Redis Cluster (``url`` names one of its nodes).
        username: ACL user (overrides the URL's).
        password: the password (overrides the URL's); never logged.
        ssl_context: TLS for ``rediss://`` (default: the system CAs).
        key_prefix: prepended to every key and channel; instances of one
            cluster share it.  No ``{`` or ``}`` (they would break the hash tags).
        instance_id: this instance's id (default: host-pid-random); no ``|``.
        presence_ttl: seconds a presence claim (and the instance's liveness)
            lives without a refresh; refreshed every third of it.  A dead
            instance's stations are offline within this bound.
        op_timeout: bound on each Redis operation, in seconds.
        max_inbound_requests: requests from other instances handled at
            once; more are answered at once with a "busy" error.

    Raises:
        ImportError: coredis is not installed (``pip install ocpp-trio[redis]``).
        ValueError: a bad option.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        cluster: bool = False,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        key_prefix: str = "ocpp_trio:",
        instance_id: str | None = None,
        presence_ttl: float = 15.0,
        op_timeout: float = 2.0,
        max_inbound_requests: int = 1000,
    ) -> None:
        try:
            import coredis
            from coredis.retry import NoRetryPolicy
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("RedisAdapter needs coredis: pip install 'ocpp-trio[redis]'") from exc
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError(f"key_prefix must not contain braces, got {key_prefix!r}")
        instance = instance_id or _default_instance_id()
        if not instance or "|" in instance:
            raise ValueError(f"instance_id must be non-empty and without '|', got {instance!r}")
        if not (presence_ttl >= 0.1 and math.isfinite(presence_ttl)):
            raise ValueError(f"presence_ttl must be finite and >= 0.1 s, got {presence_ttl!r}")
        if not op_timeout > 0:
            raise ValueError(f"op_timeout must be > 0 seconds, got {op_timeout!r}")
        if max_inbound_requests < 1:
            raise ValueError(f"max_inbound_requests must be >= 1, got {max_inbound_requests!r}")
        self._id = instance
        self._where = _redacted(url)
        self._prefix = key_prefix
        self._ttl_ms = max(1, int(presence_ttl * 1000))
        self._ttl = presence_ttl
        self._refresh_every = presence_ttl / 3
        self._op_timeout = op_timeout
        options: dict[str, Any] = {
            "decode_responses": True,
            "connect_timeout": op_timeout,
            "stream_timeout": op_timeout + _BLOCK,
            "retry_policy": NoRetryPolicy(),
        }
        if username is not None:
            options["username"] = username
        if password is not None:
            options["password"] = password
        if ssl_context is not None:
            options["ssl_context"] = ssl_context
        factory = coredis.RedisCluster if cluster else coredis.Redis
        self._client: Client[str] = factory.from_url(url, **options)
        self._claim_script: Script[str] = self._client.register_script(_CLAIM)
        self._refresh_script: Script[str] = self._client.register_script(_REFRESH)
        self._release_script: Script[str] = self._client.register_script(_RELEASE)
        self._send_script: Script[str] = self._client.register_script(_SEND)
        self._alive_key = self._instance_key(instance, "alive")
        self._inbox_key = self._instance_key(instance, "inbox")
        self._channel = f"{key_prefix}broadcast"
        self._node: ClusterNode | None = None
        self._nursery: trio.Nursery | None = None
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._held: dict[str, str] = {}  # identity -> token: claims we refresh
        self._waiters: dict[str, _Waiter] = {}
        self._alive_cache: dict[str, float] = {}  # instance -> when last seen alive
        self._inbound = trio.Semaphore(max_inbound_requests)
        self._healthy = False
        self._refresh_now = trio.Event()
        self._heartbeat_now = trio.Event()

    def __repr__(self) -> str:
        return (
            f"<RedisAdapter instance={self._id!r} redis={self._where!r} "
            f"healthy={self._healthy} stations={len(self._held)}>"
        )

    # --- keys -------------------------------------------------------------------

    def _instance_key(self, instance: str, what: str) -> str:
        return f"{self._prefix}{{{instance}}}:{what}"

    def _station_key(self, identity: str) -> str:
        return f"{self._prefix}station:{identity}"

    def _value(self, token: str) -> str:
        return f"{self._id}|{token}"

    @staticmethod
    def _holder(value: str) -> Holder:
        instance, _, token = value.partition("|")
        return Holder(instance=instance, token=token)

    # --- health -----------------------------------------------------------------

    @property
    def instance_id(self) -> str:
        return self._id

    @property
    def healthy(self) -> bool:
        return self._healthy

    def _set_healthy(self, healthy: bool, why: object = None) -> None:
        if healthy and not self._healthy:
            log.info("cluster %s: redis at %s is reachable", self._id, self._where)
            # Redis may have come back empty: liveness and claims at once.
            self._heartbeat_now.set()
            self._refresh_now.set()
        elif not healthy and self._healthy:
            log.warning("cluster %s: redis at %s unreachable: %s", self._id, self._where, why)
        self._healthy = healthy

    async def _op(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis operation within ``op_timeout``; failures become ClusterUnavailable."""
        from coredis.exceptions import RedisError

        try:
            with trio.fail_after(self._op_timeout):
                result = await fn()
        except (RedisError, OSError, TimeoutError, trio.TooSlowError) as exc:
            reason = "no answer within op_timeout" if isinstance(exc, trio.TooSlowError) else exc
            self._set_healthy(False, reason)
            raise ClusterUnavailable(
                f"{what}: redis at {self._where} unavailable: {reason}"
            ) from None
        self._set_healthy(True)
        return result

    # --- lifecycle --------------------------------------------------------------

    async def run(
        self, node: ClusterNode, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self._node is not None:
            raise RuntimeError("this adapter is already running")
        self._node = node
        try:
            async with self._client, trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._heartbeat()
                except ClusterUnavailable as exc:
                    log.warning("cluster %s: starting without redis: %s", self._id, exc)
                nursery.start_soon(self._heartbeat_loop)
                nursery.start_soon(self._refresher)
                nursery.start_soon(self._inbox_loop)
                nursery.start_soon(self._subscriber_loop)
                task_status.started()
        finally:
            self._node = None
            self._nursery = None
            self._healthy = False
            for waiter in self._waiters.values():
                waiter.event.set()

    # --- broadcast --------------------------------------------------------------

    async def publish(self, channel: str, payload: Any) -> None:
        text = json.dumps({"c": channel, "p": payload, "i": self._id}, separators=(",", ":"))
        await self._op(f"publish to {channel!r}", lambda: self._client.publish(self._channel, text))

    def subscribe(self, channel: str, callback: Subscriber) -> None:
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._subscribers.setdefault(channel, []).append(callback)

    def unsubscribe(self, channel: str, callback: Subscriber | None = None) -> None:
        if callback is None:
            self._subscribers.pop(channel, None)
        elif callback in self._subscribers.get(channel, ()):
            self._subscribers[channel].remove(callback)

    def _deliver(self, data: object) -> None:
        try:
            decoded: Any = json.loads(data) if isinstance(data, str) else None
            channel, payload, instance = decoded["c"], decoded["p"], decoded["i"]
        except (ValueError, TypeError, KeyError):
            log.warning("cluster %s: malformed broadcast dropped: %.100r", self._id, data)
            return
        message = ClusterMessage(channel=str(channel), payload=payload, instance=str(instance))
        for callback in tuple(self._subscribers.get(message.channel, ())):
            try:
                callback(message)
            except Exception:
                log.exception("cluster subscriber %r of %r raised", callback, message.channel)

    async def _subscriber_loop(self) -> None:
        from anyio import BrokenResourceError, ClosedResourceError
        from coredis.exceptions import RedisError
        from coredis.retry import NoRetryPolicy

        # coredis's clean-up after a lost connection may raise anyio's
        # Closed/BrokenResourceError: a gap like any other.
        lost = (RedisError, OSError, TimeoutError, ClosedResourceError, BrokenResourceError)
        delay = _BACKOFF_MIN
        pubsub = getattr(self._client, "pubsub")  # noqa: B009 - both client types have one
        while True:
            try:
                async with pubsub(
                    channels=[self._channel],
                    ignore_subscribe_messages=True,
                    retry_policy=NoRetryPolicy(),
                ) as subscription:
                    log.debug("cluster %s: subscribed to %s", self._id, self._channel)
                    delay = _BACKOFF_MIN
                    async for message in subscription:
                        if message["type"] == "message":
                            self._deliver(message["data"])
                log.warning("cluster %s: broadcast subscription ended; re-subscribing", self._id)
            except* lost as group:
                if trio.current_effective_deadline() != -math.inf:  # not while stopping
                    log.warning(
                        "cluster %s: broadcast subscription lost (%r); re-subscribing in %.1f s",
                        self._id,
                        group.exceptions[0],
                        delay,
                    )
            await trio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    # --- presence ---------------------------------------------------------------

    async def claim(self, identity: str, token: str, *, replace: bool) -> ClaimResult:
        self._held[identity] = token
        if not self._healthy:
            raise ClusterUnavailable(
                f"claim {identity!r}: redis at {self._where} unavailable; "
                "the claim is registered when it is back"
            )
        reply: Any = await self._op(
            f"claim {identity!r}",
            lambda: self._claim_script(
                keys=[self._station_key(identity)],
                args=[self._value(token), self._ttl_ms, "1" if replace else "0", f"{self._id}|"],
            ),
        )
        assert isinstance(reply, list)
        taken, previous = bool(reply[0]), str(reply[1])
        holder = self._holder(previous) if previous else None
        if not taken and self._held.get(identity) == token:
            del self._held[identity]
        return ClaimResult(taken=taken, previous=holder)

    async def release(self, identity: str, token: str) -> None:
        if self._held.get(identity) == token:
            del self._held[identity]
        await self._op(
            f"release {identity!r}",
            lambda: self._release_script(
                keys=[self._station_key(identity)], args=[self._value(token)]
            ),
        )

    async def locate(self, identity: str) -> Holder | None:
        value = await self._op(
            f"locate {identity!r}", lambda: self._client.get(self._station_key(identity))
        )
        return self._holder(value) if value else None

    async def _heartbeat(self) -> None:
        await self._op(
            "heartbeat",
            lambda: self._client.set(self._alive_key, str(time.time()), px=self._ttl_ms),
        )

    async def _heartbeat_loop(self) -> None:
        """Every ``presence_ttl / 3`` (and once Redis is back): this instance is alive
        (apart from the claims, so that many claims never delay it)."""
        while True:
            with trio.move_on_after(self._refresh_every):
                await self._heartbeat_now.wait()
            self._heartbeat_now = trio.Event()
            try:
                await self._heartbeat()
            except ClusterUnavailable as exc:
                log.debug("cluster %s: heartbeat failed: %s", self._id, exc)

    async def _refresher(self) -> None:
        """Every ``presence_ttl / 3`` (and once Redis is back): every claim we hold."""
        limiter = trio.Semaphore(64)
        while True:
            with trio.move_on_after(self._refresh_every):
                await self._refresh_now.wait()
            self._refresh_now = trio.Event()
            async with trio.open_nursery() as nursery:
                for identity, token in list(self._held.items()):
                    await limiter.acquire()
                    nursery.start_soon(self._refresh_one, limiter, identity, token)

    async def _refresh_one(self, limiter: trio.Semaphore, identity: str, token: str) -> None:
        try:
            if self._held.get(identity) != token:
                return
            state: Any = await self._op(
                f"refresh {identity!r}",
                lambda: self._refresh_script(
                    keys=[self._station_key(identity)], args=[self._value(token), self._ttl_ms]
                ),
            )
            if state == 0 and self._held.get(identity) == token:
                del self._held[identity]
                log.info("cluster %s: %s is now held by another connection", self._id, identity)
                if self._node is not None:
                    self._node.presence_lost(identity, token)
            elif state == 2:
                log.info("cluster %s: presence of %s registered again", self._id, identity)
        except ClusterUnavailable:
            pass
        finally:
            limiter.release()

    # --- requests ---------------------------------------------------------------

    async def _send(self, instance: str, message: dict[str, Any]) -> bool:
        text = json.dumps(message, separators=(",", ":"))
        sent: Any = await self._op(
            f"send to {instance!r}",
            lambda: self._send_script(
                keys=[self._instance_key(instance, "alive"), self._instance_key(instance, "inbox")],
                args=[text, self._ttl_ms],
            ),
        )
        return bool(sent)

    async def _alive(self, instance: str) -> bool:
        seen = self._alive_cache.get(instance)
        if seen is not None and trio.current_time() - seen < self._refresh_every:
            return True
        exists = await self._op(
            f"check {instance!r}",
            lambda: self._client.exists([self._instance_key(instance, "alive")]),
        )
        if exists:
            self._alive_cache[instance] = trio.current_time()
        else:
            self._alive_cache.pop(instance, None)
        return bool(exists)

    async def request(
        self, instance: str, kind: str, body: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        identity = str(body.get("identity", ""))
        request_id = uuid.uuid4().hex
        waiter = _Waiter()
        self._waiters[request_id] = waiter
        try:
            with trio.fail_after(timeout):
                message = {
                    "t": "req",
                    "id": request_id,
                    "from": self._id,
                    "kind": kind,
                    "body": dict(body),
                    "deadline": time.time() + timeout,
                }
                if not await self._send(instance, message):
                    raise InstanceGone(instance, identity)
                while True:
                    with trio.move_on_after(self._refresh_every):
                        await waiter.event.wait()
                    if waiter.answer is not None:
                        return waiter.answer
                    if self._node is None:
                        raise ClusterUnavailable("the cluster adapter stopped")
                    if not await self._alive(instance):
                        raise InstanceGone(instance, identity)
        finally:
            del self._waiters[request_id]

    async def _inbox_loop(self) -> None:
        from coredis.exceptions import RedisError
        from coredis.tokens import PureToken

        delay = _BACKOFF_MIN
        while True:
            popped: Any = None
            try:
                # Bounded even if a connection hangs without an error (seen
                # after a Redis restart): the pop is simply issued again.
                with trio.move_on_after(_BLOCK + self._op_timeout):
                    popped = await self._client.blmpop(
                        [self._inbox_key], _BLOCK, PureToken.LEFT, count=_BATCH
                    )
            except (RedisError, OSError, TimeoutError) as exc:
                self._set_healthy(False, exc)
                await trio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            except Exception as exc:  # an unexpected client failure must not end the loop
                log.warning("cluster %s: inbox read failed: %r", self._id, exc)
                self._set_healthy(False, exc)
                await trio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            delay = _BACKOFF_MIN
            if not popped:
                continue
            items = popped[1]
            for text in items if isinstance(items, list) else ():
                self._dispatch(text)

    def _dispatch(self, text: object) -> None:
        try:
            message: Any = json.loads(text) if isinstance(text, str) else None
            kind = message["t"]
            request_id = str(message["id"])
        except (ValueError, TypeError, KeyError):
            log.warning("cluster %s: malformed inbox message dropped: %.100r", self._id, text)
            return
        if kind == "res":
            waiter = self._waiters.get(request_id)
            answer = message.get("body")
            if waiter is not None and isinstance(answer, dict):
                waiter.answer = answer
                waiter.event.set()
            return
        if kind != "req" or self._nursery is None:
            return
        timeout = float(message.get("deadline", 0)) - time.time()
        if timeout <= 0:
            log.info(
                "cluster %s: request %s from %s expired before it was read; dropped",
                self._id,
                request_id,
                message.get("from"),
            )
            return
        try:
            self._inbound.acquire_nowait()
        except trio.WouldBlock:
            answer = {"error": {"type": "remote", "kind": "Busy", "message": "instance busy"}}
            self._nursery.start_soon(self._answer, message, answer)
            return
        self._nursery.start_soon(self._serve_request, message, timeout)

    async def _serve_request(self, message: dict[str, Any], timeout: float) -> None:
        try:
            node = self._node
            assert node is not None
            body = message.get("body")
            try:
                with trio.fail_after(timeout):
                    answer = await node.handle_request(
                        str(message.get("kind")), body if isinstance(body, dict) else {}, timeout
                    )
            except Exception as exc:
                answer = encode_error(exc)
            await self._answer(message, answer)
        finally:
            self._inbound.release()

    async def _answer(self, message: dict[str, Any], answer: dict[str, Any]) -> None:
        """Send ``answer`` to the requester, trying again until the request's deadline.

        A refusal (the requester's ``alive`` key is gone) is not final: after
        Redis restarted empty the requester is alive and waiting, and its key
        is back at its next heartbeat.  A retry after a send that timed out
        may deliver the answer twice, which is harmless: the requester takes
        one and drops the other as unmatched.
        """
        requester = str(message.get("from"))
        reply = {"t": "res", "id": message.get("id"), "body": answer}
        try:
            deadline = float(message.get("deadline", 0))
        except (TypeError, ValueError):
            deadline = 0.0
        delay = _BACKOFF_MIN
        while True:
            try:
                if await self._send(requester, reply):
                    return
                why = "it is not alive"
            except ClusterUnavailable as exc:
                why = str(exc)
            if time.time() + delay >= deadline:
                break
            log.debug(
                "cluster %s: answer to %s not delivered (%s); again in %.1f s",
                self._id,
                requester,
                why,
                delay,
            )
            await trio.sleep(delay)
            delay = min(delay * 2, self._refresh_every)
        log.warning("cluster %s: answer to %s lost: %s", self._id, requester, why)
