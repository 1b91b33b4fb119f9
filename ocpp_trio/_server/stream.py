"""One accepted stream of the server: TLS, the upgrade, the decisions, the station's connection.

The per-stream half of :class:`~ocpp_trio.server.OCPPServer` (see the theory
of operation in ``server.py``), split out to keep each file to one idea: the
server module keeps the public surface, listening and shutdown; this one runs
one stream from its TLS handshake to its close.  Nothing a station does here
escapes its own task: every failure path logs, reports a
``handshake_rejected`` event and closes the stream.

``OCPPServer`` holds one :class:`StreamRunner`, given the server's
:class:`ServerSettings` and its events; the runner owns the tables of
stations, connections and streams.

What one hostile peer can hold, and what it cannot touch:

- A stream of our listeners counts against ``max_connections`` from the
  moment it is accepted, before TLS and before a byte of HTTP is read.  Of
  those, at most ``max_pending_handshakes`` may still be in their
  handshake.  At either bound a new stream takes the place of the oldest
  one still *silent* (its TLS handshake or its upgrade request not
  complete), which is closed; with none silent, the new stream is closed
  at once.  So idle or slow peers hold at most that many file descriptors
  whatever they do, and they cannot lock stations out by holding them:
  an idle socket is displaced by the next real station, which sends its
  request within milliseconds of connecting.  Connected stations and
  requests being decided (``auth``) are never displaced.
- Everything a request can fail (the upgrade itself, the identity, the
  credentials, ``auth``) is decided before the identity is claimed:
  only a request that would be answered ``101`` may evict the station's
  open connection (``duplicate_policy="replace"``).
- The tables are keyed by :func:`~.admission.station_key` (identities
  compare without regard to ASCII case, as OCPP says), so a variant of
  an identity is the same station, never a second one.  The front ends reach it through the
server: its own listeners (``handle_stream``), ``ocpp_trio.asgi``
(``serve_upgrade``) and ``ocpp_trio.testing``; the cluster glue through
``clients``, ``settings`` and ``evict``.
"""

from __future__ import annotations

import logging
import ssl
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Literal, cast, final

import trio

from .._core.protocol import Role
from .._rpc.connection import OCPPConnection, cancel_connection, run_connection
from .._rpc.flag import Flag
from .._rpc.logsafe import QuietLog, log_safe
from .._rpc.options import ConnectionOptions
from .._rpc.outbound import prepare_validators
from .._websocket.handshake import HandshakeFailed, ServerHandshake, server_handshake
from .._websocket.transport import (
    CLOSE_PROTOCOL_ERROR,
    Transport,
    WebSocketBackend,
)
from ..observability._names import RejectionCause, cause_for_status
from ..observability._recorder import Observer
from ..security import SecurityProfile
from .admission import (
    Gate,
    HandshakeRejectedEvent,
    HandshakeRequest,
    Refusal,
    RequestLine,
    ServerEvents,
    StationHandshake,
    UpgradeRequest,
    auth_decision,
    check_upgrade,
    encode_headers,
    header_map,
    no_common_subprotocol,
    parse_target,
    redacted,
    remote_of,
    run_auth,
    select_protocol,
    station_credentials,
    station_key,
    tls_reason,
)

if TYPE_CHECKING:
    import trio_websocket

    from .._websocket import trio_websocket as tws
    from ..cluster._server_glue import ClusterGlue
    from .admission import AuthCallback, ProfileLookup

log = logging.getLogger("ocpp_trio.server")

#: Close code of a connection replaced by a newer one of the same identity
#: (RFC 6455 §7.4.2: 4000-4999 are for private use).
CLOSE_REPLACED: Final = 4000
REPLACED_REASON: Final = "replaced by a new connection"
#: Bound on waiting, after ``close()`` cancelled them, for the streams' tasks to end.
_STUCK_TIMEOUT: Final = 5.0

Handler = Callable[[OCPPConnection], Awaitable[object]]
DuplicatePolicy = Literal["replace", "reject"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """What a server decides with, fixed when it is made (see ``OCPPServer``'s arguments)."""

    handler: Handler | None
    protocols: tuple[str, ...]
    auth: AuthCallback | None
    security_profile: SecurityProfile
    ssl_context: ssl.SSLContext | None
    max_connections: float
    max_pending_handshakes: float
    handshake_timeout: float
    duplicate_policy: DuplicatePolicy
    certificate_identity_check: bool
    compression: bool
    compression_threshold: int
    compression_context_takeover: bool
    websocket_backend: WebSocketBackend
    options: ConnectionOptions
    profile_for: ProfileLookup | None = None
    refuse_unknown_subprotocol: bool = False
    observer: Observer | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Upgrade:
    """What a front end gives the shared handshake (:meth:`StreamRunner.serve_upgrade`).

    Attributes:
        peercert: the verified TLS client certificate (``getpeercert()`` form).
        accept: accept the upgrade with this subprotocol (None: no
            ``Sec-WebSocket-Protocol``); the open transport, or None when the
            peer went away; raises ``HandshakeFailed`` (with its ``status``)
            when the request was answered with an HTTP error instead.
        deadline: when deciding (``auth`` included) gives up with 503.
        phase: a new cancel scope per phase (our listeners cancel it when the
            peer goes away during the handshake).
        options: the connection options, when not the server's.
        refusal: the front end's own refusal (the request is then answered
            with it and nothing else is decided).
        tls: whether the request came over TLS (profiles 2 and 3 need it).
    """

    peercert: Mapping[str, Any] | None
    accept: Callable[[str | None], Awaitable[Transport | None]]
    deadline: float
    phase: Callable[[], trio.CancelScope] = trio.CancelScope
    options: ConnectionOptions | None = None
    refusal: Refusal | None = None
    tls: bool = False


def _or_tws_closed(*errors: type[Exception]) -> tuple[type[Exception], ...]:
    """``errors`` and trio-websocket's ConnectionClosed, if that backend is loaded."""
    module = sys.modules.get("trio_websocket")
    return (*errors, module.ConnectionClosed) if module is not None else errors


class Peer:
    """One accepted stream, from the TLS handshake until the stream is closed.

    For the package: the cluster glue keeps the peers it claimed presence
    for, and hands them back to :meth:`StreamRunner.evict`.
    """

    __slots__ = ("conn", "done", "identity", "key", "pending", "remote", "scope", "slot")

    def __init__(self, remote: tuple[str, int] | None = None) -> None:
        #: The scope of the handshake (and, for front ends, of the whole
        #: task); None once the station's connection runs on its own.
        self.scope: trio.CancelScope | None = trio.CancelScope()
        self.done = Flag()
        #: The identity as the station sent it (logs, events), once parsed.
        self.identity: str | None = None
        #: ``station_key(identity)``: what the tables and the cluster know it by.
        self.key: str | None = None
        self.remote = remote
        self.conn: OCPPConnection | None = None
        #: Counted against ``max_connections``.
        self.slot = False
        #: Counted against ``max_pending_handshakes`` (until its connection is made).
        self.pending = False

    def cancel(self) -> None:
        """Cancel this stream's task: its handshake, or its running connection."""
        if self.scope is not None:
            self.scope.cancel()
        if self.conn is not None:
            cancel_connection(self.conn)


@final
class StationTable(Mapping[str, OCPPConnection]):
    """The open station connections, found by identity in any ASCII case.

    Keyed by :func:`~.admission.station_key`; iterating gives each
    identity as its station sent it (``conn.identity``).  Read-only for
    everyone but the :class:`StreamRunner` that owns it.
    """

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[str, OCPPConnection] = {}

    def __getitem__(self, identity: str) -> OCPPConnection:
        return self._by_key[station_key(identity)]

    def __contains__(self, identity: object) -> bool:
        return isinstance(identity, str) and station_key(identity) in self._by_key

    def __iter__(self) -> Iterator[str]:
        return (conn.identity for conn in self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        return f"<StationTable {sorted(self)!r}>"

    def add(self, key: str, conn: OCPPConnection) -> None:
        """For the runner: ``conn`` is now the connection of ``key``."""
        self._by_key[key] = conn

    def discard(self, key: str, conn: OCPPConnection) -> None:
        """For the runner: forget ``conn``, if it is still the connection of ``key``."""
        if self._by_key.get(key) is conn:
            del self._by_key[key]


class _ClientEvent:
    """Fires the server's "client" event once the connection runs.

    Passed as ``task_status`` to the connection's run: ``started`` is called
    before the reader has taken any frame, so handlers a "client" callback
    registers see the station's very first call.
    """

    __slots__ = ("_conn", "_events")

    def __init__(self, events: ServerEvents, conn: OCPPConnection) -> None:
        self._events = events
        self._conn = conn

    def started(self, value: OCPPConnection | None = None) -> None:
        self._events.emit("client", self._conn)


@final
class StreamRunner:
    """What a server does with its accepted streams, and the tables of its stations.

    For the package: ``OCPPServer`` makes one with its settings and events,
    gives it its cluster glue (:attr:`cluster`) once there is one, and
    delegates to it.  Never raises what a station caused.

    Attributes:
        settings: the server's settings.
        events: the server's events (``client``, ``handshake_rejected``).
        cluster: the server's cluster glue, or None (a cluster of one).
        clients: the open station connections by identity, in any ASCII
            case (the server's ``clients``; read by the cluster glue).
    """

    __slots__ = (
        "_closing",
        "_idle",
        "_peers",
        "_pending",
        "_refusals",
        "_silent",
        "_slots",
        "_stations",
        "clients",
        "cluster",
        "events",
        "settings",
    )

    def __init__(self, settings: ServerSettings, events: ServerEvents) -> None:
        self.settings = settings
        self.events = events
        self.cluster: ClusterGlue | None = None
        self.clients = StationTable()
        #: The peer holding each station key, from its claim to its end.
        self._stations: dict[str, Peer] = {}
        self._peers: set[Peer] = set()
        #: Our streams whose TLS handshake or upgrade request is not complete,
        #: oldest first (a dict keeps insertion order; values unused).
        self._silent: dict[Peer, None] = {}
        # Refused handshakes, logged a few per cause, then counted: a flood
        # of bad attempts (a station retrying a wrong password, a scanner)
        # must not flood the log.  The causes are a closed list.
        self._refusals = QuietLog(log, "handshakes")
        self._slots = 0
        self._pending = 0
        self._idle = trio.Event()
        self._idle.set()
        self._closing = False

    # --- for the server and its front ends ----------------------------------------

    @property
    def closing(self) -> bool:
        """True once :meth:`stop` was called: handshakes are refused with 503."""
        return self._closing

    def handle_stream(self, stream: trio.abc.Stream) -> Coroutine[Any, Any, None]:
        """The task of one accepted stream: never raises what a station caused.

        What ``trio.serve_listeners`` runs per accepted stream: the handshake
        under ``handshake_timeout``, the decisions, the connection and the
        handler; the stream is closed at the end.  Not a coroutine function
        itself: it returns the one to await, which spares every connection's
        task a level of its stack.

        The stream counts against ``max_connections`` and
        ``max_pending_handshakes`` from here, before TLS.  At either bound
        it displaces the oldest stream still silent (:meth:`_displace`);
        with none, it is closed at once, with nothing read or sent.
        """
        peer = Peer(remote_of(stream))
        settings = self.settings
        full: str | None = None
        if self._slots >= settings.max_connections:
            full = f"max_connections={settings.max_connections} reached"
        elif self._pending >= settings.max_pending_handshakes:
            full = f"max_pending_handshakes={settings.max_pending_handshakes} reached"
        if full is not None and not self._displace(full):
            return self._drop(peer, stream, full)
        peer.slot = peer.pending = True
        self._slots += 1
        self._pending += 1
        self._silent[peer] = None
        return self._serve_stream(peer, stream)

    def _displace(self, full: str) -> bool:
        """Close the oldest silent stream to make room for a new one; False if none is silent.

        Its slot and its place among the pending handshakes pass to the
        newcomer at once; its task ends at its next checkpoint (closing the
        stream is forceful, so the descriptor goes within a scheduling round).
        """
        if not self._silent:
            return False
        old = next(iter(self._silent))
        del self._silent[old]
        self._handshake_over(old)
        if old.slot:
            old.slot = False
            self._slots -= 1
        old.cancel()
        self._rejected(
            old, None, f"{full}; closed, still silent, to make room for a new stream", "capacity"
        )
        return True

    async def _drop(self, peer: Peer, stream: trio.abc.Stream, reason: str) -> None:
        """Close a stream the server has no room for, at once; report it."""
        await trio.aclose_forcefully(stream)
        self._rejected(peer, None, f"{reason}; closed at accept", "capacity")

    async def serve_upgrade(
        self,
        request: UpgradeRequest,
        upgrade: Upgrade,
        *,
        remote: tuple[str, int] | None,
        cleanup: Callable[[], Awaitable[None]],
    ) -> None:
        """Serve one upgrade request that a front end (``ocpp_trio.asgi``) parsed.

        As for our own streams: the decisions, ``auth``, the duplicate policy,
        then the station's connection until it ends, in a task counted (and
        cancelled by ``close()``) like theirs.  ``cleanup`` runs shielded at
        the end, whatever happened.  Never raises what the station caused.
        """
        peer = Peer(remote)
        await self._guarded(peer, partial(self._upgrade, peer, request, upgrade), cleanup)

    async def evict(self, old: Peer) -> None:
        """Close ``old``'s connection (4000, replaced) and wait until its task is gone (bounded)."""
        if old.conn is not None:
            with trio.move_on_after(self.settings.options.close_timeout + 1.0):
                await old.conn.close(CLOSE_REPLACED, REPLACED_REASON)
        old.cancel()
        with trio.move_on_after(self.settings.options.close_timeout):
            await old.done.wait()
        if old.key is not None and self._stations.get(old.key) is old:
            del self._stations[old.key]  # pragma: no cover - its task is stuck

    def stop(self) -> None:
        """Refuse handshakes from now on (503) and drop those not finished yet."""
        self._closing = True
        for peer in list(self._peers):
            if peer.conn is None:
                peer.cancel()

    async def cancel_all(self) -> None:
        """Cancel every stream's task; wait until all are gone (shielded, bounded)."""
        for peer in list(self._peers):
            peer.cancel()
        with trio.CancelScope(shield=True), trio.move_on_after(_STUCK_TIMEOUT) as stuck:
            await self._idle.wait()
        if stuck.cancelled_caught:  # pragma: no cover - a task ignores cancellation
            log.warning("%d station task(s) still running after close()", len(self._peers))
        self._refusals.flush()  # the counts of refusal lines left out

    # --- one stream -----------------------------------------------------------------

    async def _guarded(
        self,
        peer: Peer,
        body: Callable[[], Awaitable[None]],
        cleanup: Callable[[], Awaitable[None]],
    ) -> None:
        """Run ``body`` as ``peer``'s task, counted by the server, in the peer's scope.

        What ``body`` raises stays here (logged), except a cancellation from
        outside; ``cleanup`` runs shielded, then the peer is released.
        """
        self._enter(peer)
        try:
            assert peer.scope is not None
            with peer.scope:
                await body()
        except BaseException as exc:
            passed = self._contain(peer, exc)
            if passed is not None:
                raise passed from None
        finally:
            with trio.CancelScope(shield=True):  # bounded: closing the stream
                await cleanup()
            self._release(peer)

    async def _serve_stream(self, peer: Peer, stream: trio.abc.Stream) -> None:
        """``_guarded`` for one of our own accepted streams, written out.

        The same steps, with no closures and no extra levels of coroutines:
        this task is the station's for the life of its connection, and every
        frame of its stack is memory that an idle station holds.
        """
        self._enter(peer)
        try:
            conn: OCPPConnection | None = None
            assert peer.scope is not None
            with peer.scope:
                if self.settings.ssl_context is not None and not isinstance(stream, trio.SSLStream):
                    stream = trio.SSLStream(
                        stream, self.settings.ssl_context, server_side=True, https_compatible=True
                    )
                # The handshake's objects (the request, its headers, the
                # decisions) are gone once _open returns: an idle connection
                # keeps only what its OCPPConnection holds.
                if self.settings.websocket_backend == "websockets":
                    conn = await self._open(peer, stream, None)  # no background task to host
                else:
                    async with trio.open_nursery() as nursery:
                        try:
                            conn = await self._open(peer, stream, nursery)
                            if conn is not None:
                                await self._station(peer, conn)
                                log.info(
                                    "%s disconnected (%s)", log_safe(conn.identity), conn.close_code
                                )
                        finally:
                            nursery.cancel_scope.cancel()  # trio-websocket's reader
                    conn = None  # it ran, in the reader's nursery
            # The station's connection runs outside the peer's scope: its own
            # nursery's scope is what cancels it (``Peer.cancel``), and an
            # idle station keeps no second one (about 700 bytes).
            if peer.scope.cancel_called:  # stop() came during the handshake
                conn = None
            peer.scope = None
            if conn is not None:
                await self._station(peer, conn)
                log.info("%s disconnected (%s)", log_safe(conn.identity), conn.close_code)
        except BaseException as exc:
            passed = self._contain(peer, exc)
            if passed is not None:
                raise passed from None
        finally:
            with trio.CancelScope(shield=True):  # bounded: closing the stream
                await trio.aclose_forcefully(stream)
            self._release(peer)

    def _enter(self, peer: Peer) -> None:
        self._peers.add(peer)
        self._idle = trio.Event() if self._idle.is_set() else self._idle

    def _contain(self, peer: Peer, exc: BaseException) -> BaseException | None:
        """What a stream's task raised: logged and kept here, unless it must go on.

        A bug (ours or trio-websocket's) stays with this stream; only a
        cancellation from outside (returned, for the caller to raise) goes on.
        """
        if isinstance(exc, trio.Cancelled):
            return exc
        cancelled: BaseException | None = None
        failure: BaseException | None = exc
        if isinstance(exc, BaseExceptionGroup):
            cancelled, failure = exc.split(trio.Cancelled)
        if failure is not None:
            if not isinstance(failure, Exception):
                return exc
            log.warning("connection from %s failed: %r", peer.remote, failure, exc_info=failure)
        return cancelled

    def _handshake_over(self, peer: Peer) -> None:
        if peer.pending:
            peer.pending = False
            self._pending -= 1

    def _release(self, peer: Peer) -> None:
        self._silent.pop(peer, None)
        self._handshake_over(peer)
        if peer.slot:
            peer.slot = False
            self._slots -= 1
        key = peer.key
        if key is not None:
            if self._stations.get(key) is peer:
                del self._stations[key]
            if peer.conn is not None:
                self.clients.discard(key, peer.conn)
            if self.cluster is not None:
                self.cluster.released(key, peer)
        self._peers.discard(peer)
        peer.done.set()
        if not self._peers:
            self._idle.set()

    def _rejected(
        self,
        peer: Peer,
        status: int | None,
        reason: str,
        cause: RejectionCause | None = None,
    ) -> None:
        # A 5xx is the server's trouble (capacity, a slow auth); 505 answers
        # the peer's own HTTP version.
        level = logging.WARNING if status is not None and 500 <= status != 505 else logging.INFO
        if cause is None:
            cause = cause_for_status(status)
        self._refusals.log(
            cause,
            level,
            "from %s (identity %r) refused%s: %s",
            peer.remote,
            peer.identity,
            f" with HTTP {status}" if status is not None else "",
            reason,
        )
        observer = self.settings.observer
        if observer is not None:
            observer.handshake_rejected(cause)
        self.events.emit(
            "handshake_rejected",
            HandshakeRejectedEvent(
                remote=peer.remote,
                identity=peer.identity,
                status=status,
                reason=reason,
                cause=cause,
            ),
        )

    async def _open(
        self, peer: Peer, stream: trio.abc.Stream, nursery: trio.Nursery | None
    ) -> OCPPConnection | None:
        """The handshake on our own listeners: the station's connection (not running yet), or None.

        ``nursery`` hosts trio-websocket's reader task (None for the websockets backend).
        """
        gate = Gate()
        request: UpgradeRequest | None = None
        answered: tws.AnswerStream | None = None  # trio-websocket's own HTTP error, if any
        deadline = trio.current_time() + self.settings.handshake_timeout
        with trio.move_on_at(deadline) as timeout, gate.scope():
            if isinstance(stream, trio.SSLStream):
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError as exc:
                    self._rejected(peer, None, f"TLS handshake failed: {tls_reason(exc)}", "tls")
                    return None
            if self.settings.websocket_backend == "websockets":
                try:
                    request = await server_handshake(
                        stream,
                        max_message_size=self.settings.options.max_message_size,
                        compression=self.settings.compression,
                        compression_threshold=self.settings.compression_threshold,
                        compression_context_takeover=self.settings.compression_context_takeover,
                    )
                except HandshakeFailed as exc:
                    self._rejected(peer, exc.status, f"bad upgrade request: {exc}")
                    return None
            else:
                import trio_websocket  # only when selected

                from .._websocket import trio_websocket as tws

                assert nursery is not None
                answered = tws.AnswerStream(stream)
                request = await trio_websocket.wrap_server_stream(
                    tws.GuardedNursery(nursery, tws.log_reader_end, gate.reader_done),  # type: ignore[arg-type]
                    answered,
                    max_message_size=self.settings.options.max_message_size,
                )
        self._silent.pop(peer, None)  # heard (or going): no longer displaceable
        if request is None:
            if answered is not None and answered.status is not None:
                self._rejected(
                    peer,
                    answered.status,
                    "not a valid WebSocket upgrade (refused by wsproto)",
                    "not_websocket",
                )
                return None
            if timeout.cancelled_caught:
                self._rejected(peer, None, "handshake timeout", "timeout")
            else:
                self._rejected(peer, None, "the peer went away", "peer_gone")
            return None

        async def accept(protocol: str | None) -> Transport | None:
            assert request is not None
            try:
                if isinstance(request, ServerHandshake):
                    transport: Transport = await request.accept(protocol)
                else:
                    from .._websocket import trio_websocket as tws

                    tws_request = cast("trio_websocket.WebSocketRequest", request)
                    transport = tws.TrioWebsocketTransport(
                        await tws_request.accept(subprotocol=protocol), stream
                    )
            except HandshakeFailed as exc:
                if exc.status is not None:
                    raise  # answered with an HTTP error: _admit reports it
                return None
            except _or_tws_closed(trio.BrokenResourceError):
                return None
            gate.accepted = True
            return transport

        peercert = stream.getpeercert() if isinstance(stream, trio.SSLStream) else None
        return await self._admit(
            peer,
            request,
            Upgrade(
                peercert=peercert,
                accept=accept,
                deadline=deadline,
                phase=gate.scope,
                tls=isinstance(stream, trio.SSLStream),
            ),
        )

    async def _upgrade(self, peer: Peer, request: UpgradeRequest, upgrade: Upgrade) -> None:
        """From a parsed upgrade request to the station's connection, and its end.

        The body of :meth:`serve_upgrade` (``ocpp_trio.asgi``; our own
        listeners run the same two steps in ``_serve_peer``): :meth:`_admit`,
        then the connection runs.  Never raises what the station caused.
        """
        conn = await self._admit(peer, request, upgrade)
        if conn is not None:
            await self._station(peer, conn)
            log.info("%s disconnected (%s)", log_safe(conn.identity), conn.close_code)

    async def _admit(
        self, peer: Peer, request: UpgradeRequest, upgrade: Upgrade
    ) -> OCPPConnection | None:
        """The station's connection, not running yet, or None when it was turned away.

        The decisions and ``auth`` (until ``upgrade.deadline``), the refusal,
        the duplicate policy and the acceptance (``upgrade.accept``).
        """
        outcome: (
            tuple[str, str | None, Mapping[str, Any], StationHandshake, Mapping[str, Any]] | None
        ) = None
        refusal = upgrade.refusal
        with trio.move_on_at(upgrade.deadline) as timeout, upgrade.phase():
            if refusal is None:
                try:
                    outcome = await self._decide(peer, request, upgrade.peercert, upgrade.tls)
                except Refusal as exc:
                    # Kept, not raised again: without its traceback (which
                    # holds this frame, which holds it: a reference cycle).
                    exc.__traceback__ = exc.__context__ = None
                    refusal = exc
        if outcome is None and refusal is None:
            if not timeout.cancelled_caught:
                self._rejected(peer, None, "the peer went away")
                return None
            refusal = Refusal(
                503, "handshake timeout (profile_for or auth took too long)", cause="timeout"
            )
        if refusal is not None:
            self._rejected(peer, refusal.status, refusal.reason, refusal.cause)
            await self._refuse(request, refusal.status, refusal.headers, refusal.body)
            return None
        assert outcome is not None
        identity, protocol, session, info, overrides = outcome
        if not await self._claim(peer, request):
            return None
        transport: Transport | None = None
        with trio.move_on_after(self.settings.handshake_timeout), upgrade.phase():
            try:
                transport = await upgrade.accept(protocol)
            except HandshakeFailed as exc:  # not a valid upgrade: answered with exc.status
                self._rejected(peer, exc.status, str(exc))
                return None
        if transport is None:
            self._rejected(peer, None, "the peer went away during the handshake")
            return None
        self._handshake_over(peer)
        options = upgrade.options or self.settings.options
        if overrides:  # AuthAccept(options=...): checked when auth returned them
            options = options.replace(**overrides)
        # A no-op once built (serve_listeners builds the server's at start);
        # front ends that start no listener (ASGI, in-memory) build here.
        await prepare_validators(options, [protocol] if protocol is not None else [])
        if protocol is None:
            self._rejected(
                peer, None, "no subprotocol in common; closed with 1002", "no_subprotocol"
            )
            with trio.move_on_after(options.close_timeout):
                await transport.aclose(CLOSE_PROTOCOL_ERROR, "no subprotocol in common")
            return None
        observer = self.settings.observer
        return OCPPConnection(
            transport,
            identity=identity,
            protocol=protocol,
            role=Role.SERVER,
            options=options,
            handshake=info,
            session=session,
            recorder=None if observer is None else observer.connection(identity, protocol),
        )

    async def _refuse(
        self,
        request: UpgradeRequest,
        status: int,
        headers: Sequence[tuple[str, str]] = (),
        body: str = "",
    ) -> None:
        """Send an HTTP error answer, within a bound; the peer may be gone already."""
        with trio.move_on_after(self.settings.handshake_timeout):
            try:
                if not body:
                    await request.reject(status, extra_headers=encode_headers(headers))
                elif isinstance(request, ServerHandshake):
                    await request.reject(status, encode_headers(headers), body)
                else:  # trio-websocket's and the ASGI front end's take bytes
                    text = (*headers, ("Content-Type", "text/plain; charset=utf-8"))
                    await request.reject(
                        status, extra_headers=encode_headers(text), body=body.encode()
                    )
            except _or_tws_closed(trio.BrokenResourceError, HandshakeFailed):
                pass

    async def _decide(
        self,
        peer: Peer,
        request: UpgradeRequest,
        peercert: Mapping[str, Any] | None,
        tls: bool,
    ) -> tuple[str, str | None, Mapping[str, Any], StationHandshake, Mapping[str, Any]]:
        """Everything between the upgrade request and ``101``; raises ``Refusal``.

        In the order that keeps a bad request from touching anyone else: the
        upgrade, the identity, capacity, the station's profile and its
        credentials, ``auth``, the subprotocol.  The
        identity is claimed later (:meth:`_claim`), once all of these passed.
        """
        headers = header_map(request.headers)
        # Our own handshake first: isinstance() against a runtime-checkable
        # Protocol inspects the object's attributes (2% of a connection's CPU).
        own = type(request) is ServerHandshake
        if own or isinstance(request, ServerHandshake | RequestLine):
            # Our own parser hands over any request that parses (as does a
            # front end whose request tells its request line); trio-websocket
            # (wsproto) and ASGI servers refuse a bad upgrade before we see it.
            line: RequestLine | None = None
            if own:
                line = cast("ServerHandshake", request)
            elif isinstance(request, RequestLine):
                line = request
            check_upgrade(
                headers,
                method=line.method if line is not None else "GET",
                http_version=line.http_version if line is not None else "HTTP/1.1",
                extensions=self.settings.compression,
            )
        target = parse_target(request.path)
        identity = peer.identity = target.identity
        key = peer.key = station_key(identity)
        if self._closing:
            raise Refusal(503, "the server is closing", cause="closing")
        if not peer.slot:  # a front end's request (ours are counted at accept)
            replacing = self.settings.duplicate_policy == "replace" and key in self._stations
            if self._slots - int(replacing) >= self.settings.max_connections:
                raise Refusal(503, f"max_connections={self.settings.max_connections} reached")
            peer.slot = True
            self._slots += 1
        profile, password, certificate = await station_credentials(
            identity,
            headers,
            peercert,
            tls=tls,
            default=self.settings.security_profile,
            lookup=self.settings.profile_for,
            has_auth=self.settings.auth is not None,
            certificate_identity_check=self.settings.certificate_identity_check,
        )
        offered = tuple(request.proposed_subprotocols)
        hs_request = HandshakeRequest(
            identity=identity,
            endpoint=target.endpoint,
            path=request.path,
            query=target.query,
            remote=peer.remote,
            headers=headers,
            protocols=offered,
            password=password,
            certificate=certificate,
            security_profile=profile,
        )
        protocol = select_protocol(self.settings.protocols, offered)
        session: Mapping[str, Any] = {}
        overrides: Mapping[str, Any] = {}
        if self.settings.auth is not None:
            result = await run_auth(self.settings.auth, hs_request)
            session, protocol, overrides = auth_decision(result, offered, protocol, profile)
        if protocol is None and self.settings.refuse_unknown_subprotocol:
            raise no_common_subprotocol(offered, self.settings.protocols)
        info = StationHandshake(
            path=request.path,
            subprotocol=protocol,
            request_headers=redacted(headers),
            remote=peer.remote,
            peer_certificate=dict(peercert) if peercert else None,
            identity=identity,
            endpoint=target.endpoint,
            query=target.query,
            offered_protocols=offered,
            certificate=certificate,
            security_profile=profile,
        )
        return identity, protocol, session, info, overrides

    async def _claim(self, peer: Peer, request: UpgradeRequest) -> bool:
        """Make ``peer`` the connection of its station key, per ``duplicate_policy``.

        Called only once every check passed (:meth:`_decide`): the eviction
        of the open connection is the last thing before ``101``.
        """
        key = peer.key
        assert key is not None
        while (old := self._stations.get(key)) is not None and old is not peer:
            if self.settings.duplicate_policy == "reject":
                self._rejected(peer, 409, "a connection with this identity is open")
                await self._refuse(request, 409)
                return False
            log.info(
                "%s: a new connection from %s replaces the open one",
                log_safe(peer.identity or ""),
                peer.remote,
            )
            await self.evict(old)
        self._stations[key] = peer
        if self.cluster is not None and self.cluster.running:
            # The other instances, after this one: a newer local connection
            # that comes in meanwhile finds this one and applies the policy.
            refusal = await self.cluster.claim(key, peer)
            if refusal is not None:
                if self._stations.get(key) is peer:
                    del self._stations[key]
                self._rejected(peer, 409, refusal)
                await self._refuse(request, 409)
                return False
        return True

    def _station(self, peer: Peer, conn: OCPPConnection) -> Coroutine[Any, Any, None]:
        """Make ``conn`` the station's and return its run to await (no frame of its own)."""
        identity = conn.identity
        peer.conn = conn
        assert peer.key is not None
        self.clients.add(peer.key, conn)
        log.info("%s connected from %s (%s)", log_safe(identity), peer.remote, conn.protocol)
        return run_connection(
            conn, self.settings.handler, task_status=_ClientEvent(self.events, conn)
        )
