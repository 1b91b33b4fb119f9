"""The CSMS side: ``OCPPServer`` and ``serve_ocpp``.

Theory of operation.  ``serve_listeners`` accepts TCP (or TLS) streams
(``_server/accept.py``: a wake-up of a listener takes its whole backlog, so a
new station never waits behind hundreds of queued connections one scheduling
round each) and gives each one a task of its own, in a cancel scope of its
own, guarded so that nothing a station does reaches the accept loop or
another station.  Per stream:

0. At accept, before TLS: at ``max_connections`` streams, or at
   ``max_pending_handshakes`` streams still in their handshake, the new
   stream takes the place of the oldest one still silent (TLS or the
   upgrade request not complete), which is closed; with none silent, the
   new stream is closed at once (nothing read, nothing sent).
1. Under one cancel scope of ``handshake_timeout``: the TLS handshake (run
   explicitly, so its failure is logged with its cause), the HTTP upgrade
   request (websockets' Sans-I/O parser, or trio-websocket's
   ``wrap_server_stream``, whose reader task runs in a stand-in nursery that
   swallows what it raises and ends the handshake at once when the peer
   goes away or sends garbage), then the decisions of
   ``_server/admission.py`` (a bad upgrade -> 405/505/426/400, identity ->
   400, the station's security profile -- the server's, or the user's
   ``profile_for(identity)`` -- and its credentials -> 403/401), then the
   user's ``auth`` callback (an exception there -> 500; nothing of it is
   sent).
2. Only then the identity is claimed; the same station twice
   (``duplicate_policy``; identities compare without regard to ASCII case):
   ``"replace"`` closes the older connection with 4000 ("replaced by a new
   connection") and waits until its tasks, the handler included, are gone;
   ``"reject"`` answers the newcomer HTTP 409.  A request that fails any
   check of step 1 never disturbs the open connection.
3. ``101 Switching Protocols`` with the negotiated subprotocol, and an
   :class:`~ocpp_trio.OCPPConnection` runs in the stream's task;
   the user's ``handler(conn)`` runs in the connection's nursery.  Returning
   from it keeps the connection; raising closes it with 1011.

No subprotocol in common (the station offered none, or none we speak): the
CSMS "MUST complete the WebSocket handshake with a response without a
Sec-WebSocket-Protocol header and then immediately close the WebSocket
connection" (OCPP-J 1.6 §3.2; OCPP 2.0.1 Part 4 §3.2; OCPP 2.1 Part 4
§3.3).  So we do: 101 without the header, then close 1002 (protocol error)
with the reason "no subprotocol in common".  Auth has run by then, so an
unauthorized station still gets its 401.  Some test tools and proxies expect
an HTTP refusal instead: ``refuse_unknown_subprotocol=True`` answers 400.

Every failure path ends with ``trio.aclose_forcefully(stream)``; per-stream
failures are logged at INFO (the station's fault) or WARNING (ours) and
reported as the server event ``"handshake_rejected"``.  Passwords and
``Authorization`` headers never reach logs, events, reprs or error texts.

``server.close()`` stops accepting, drops unfinished handshakes, closes every
station with 1001 (optionally letting calls in flight finish), within a
bound, then forcibly.

Compression: with the default WebSocket backend (``_websocket/driver.py``,
websockets' Sans-I/O core) the server accepts permessage-deflate (RFC 7692) when a
station offers it, as OCPP 2.0.1 Part 4 §3.3 requires of a CSMS
(``compression=False`` turns it off).  Messages below
``compression_threshold`` bytes (1,024 by default) go out uncompressed, as
RFC 7692 §6.1 allows, and a connection's zlib streams are made only when a
message needs them (``_websocket/deflate.py``).  Unless
``compression_context_takeover=True``, the server asks both ends to compress
each message on its own (no zlib stream is kept between messages, and Node's
``ws`` clients then send small messages uncompressed, as they otherwise do not).  The trio-websocket backend
cannot negotiate extensions; there offers are ignored, which RFC 7692 §5
allows.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar, Unpack, final, overload

import trio

from ._rpc.connection import OCPPConnection
from ._rpc.options import ConnectionKwargs, ConnectionOptions
from ._rpc.outbound import prepare_validators
from ._server.accept import serve_listeners
from ._server.admission import (
    DEFAULT_MAX_PENDING_HANDSHAKES,
    AuthAccept,
    AuthCallback,
    AuthReject,
    HandshakeRejectedEvent,
    HandshakeRequest,
    ProfileLookup,
    ServerEvents,
    StationHandshake,
    UpgradeRequest,
    check_server_options,
)
from ._server.stream import (
    CLOSE_REPLACED,
    DuplicatePolicy,
    Handler,
    ServerSettings,
    StreamRunner,
    Upgrade,
)
from ._websocket.deflate import DEFAULT_COMPRESSION_THRESHOLD, check_threshold
from ._websocket.transport import (
    CLOSE_GOING_AWAY,
    WebSocketBackend,
)
from .cluster._interface import ClusterAdapter, Subscriber
from .cluster._server_glue import ClusterGlue
from .observability._recorder import make_observer
from .observability.framelog import FrameLog
from .observability.telemetry import Telemetry
from .security import SecurityProfile
from .types import Action

__all__ = [
    "CLOSE_REPLACED",
    "DEFAULT_PROTOCOLS",
    "AuthAccept",
    "AuthReject",
    "HandshakeRejectedEvent",
    "HandshakeRequest",
    "OCPPServer",
    "ServerEventName",
    "ServerKwargs",
    "StationHandshake",
    "serve_ocpp",
]

log = logging.getLogger("ocpp_trio.server")

#: The events of :meth:`OCPPServer.on` (a connection's own events are
#: ``ocpp_trio.events.EventName``).
ServerEventName = Literal["client", "handshake_rejected"]

Res = TypeVar("Res")

#: The subprotocols a server speaks by default, in its order of preference.
DEFAULT_PROTOCOLS: Final = ("ocpp2.1", "ocpp2.0.1", "ocpp1.6")


class ServerKwargs(ConnectionKwargs, total=False):
    """The options of :class:`OCPPServer`, as keyword arguments, every one optional.

    What ``serve_ocpp``, ``run_server`` and ``serve_workers`` pass on to
    ``OCPPServer``: its own options (see there for what each does) and the
    connection options (:class:`ConnectionKwargs`: ``call_timeout``,
    ``strict_mode``, ...).  A type checker flags a misspelt name; at run
    time an unknown name raises ``TypeError``.
    """

    protocols: Sequence[str]
    auth: AuthCallback | None
    security_profile: SecurityProfile | int
    ssl_context: ssl.SSLContext | None
    max_connections: float
    max_pending_handshakes: float
    handshake_timeout: float
    duplicate_policy: DuplicatePolicy
    certificate_identity_check: bool
    profile_for: ProfileLookup | None
    refuse_unknown_subprotocol: bool
    compression: bool
    compression_threshold: int
    compression_context_takeover: bool
    websocket_backend: WebSocketBackend
    telemetry: Telemetry | None
    frame_log: FrameLog | None
    options: ConnectionOptions | None


@final
class OCPPServer:
    """A CSMS: accepts station connections and runs each as an ``OCPPConnection``.

    Args:
        handler: ``await handler(conn)`` runs in each station connection's
            nursery once it is open; returning keeps the connection, raising
            closes it with 1011.  None: connections just run (use the
            ``"client"`` event).
        protocols: the subprotocols spoken, in order of preference.
        auth: ``auth(request: HandshakeRequest)``, sync or async, after the
            security-profile checks; returns :class:`AuthAccept` (or True /
            None) to let the station in, :class:`AuthReject` (or False for
            401) to refuse it.  Runs under ``handshake_timeout``; raising
            refuses with 500.  Required for profiles 1 and 2 (someone has to
            check the password).
        security_profile: 0-3 (see ``SecurityProfile``): the profile of
            every station, or of those ``profile_for`` gives none.
        profile_for: ``profile_for(identity)``, sync or async: the security
            profile of one station (a ``SecurityProfile``, 0-3, or None
            for ``security_profile``), so that stations of every profile
            share one listener, as while a fleet is upgraded (OCPP 2.0.1
            A05).  Asked after the upgrade request is parsed and before the
            credentials are checked, under ``handshake_timeout``, with the
            identity as the station sent it (identities compare without
            regard to ASCII case: key your table by ``identity.lower()``).
            The server then enforces that profile: 1 and 2 need Basic Auth
            with the identity as user-id (else 401 with ``WWW-Authenticate:
            Basic``) and ``auth`` to check the password; 2 and 3 need TLS
            (else 403); 3 needs a verified client certificate that names the
            station (else 401), so a profile 3 station never passes with a
            password.  Give the listener a context that requests client
            certificates without requiring them
            (``server_ssl_context(..., cafile=...)``, profile 2).  Raising
            refuses the station with 503 (logged; the server carries on).
            Keep ``security_profile`` the strictest profile you serve: it
            is what an identity the lookup does not know gets.
        ssl_context: a server TLS context (``server_ssl_context``) to wrap
            plain listeners with; required for profiles 2 and 3.
        max_connections: connections open or being opened at once, counted
            from the TCP accept.  At the limit a new stream displaces the
            oldest stream still silent (its TLS handshake or upgrade request
            not complete), so idle sockets cannot lock stations out; with
            none silent it is closed at once, before TLS and before anything
            is read (front ends that hand over parsed requests,
            ``ocpp_trio.asgi``, get 503 instead).  Connected stations and
            requests being decided are never displaced.  At the limit, a
            station reconnecting while its old connection still counts waits
            until that one is gone.
        max_pending_handshakes: of those, streams still in their handshake
            (TLS, the upgrade request, ``auth``) at once; at the bound, as
            for ``max_connections``.  Idle and slow peers hold no more than
            this.
        handshake_timeout: bound on TLS handshake + upgrade request + auth.
        duplicate_policy: ``"replace"`` closes the older connection of an
            identity (code 4000), ``"reject"`` refuses the newer with 409.
            It applies only to a request that passed every check (upgrade,
            identity, credentials, ``auth``): a bad one never evicts.
        certificate_identity_check: profile 3: the verified client
            certificate must name the station (its subject CN, or a DNS
            subjectAltName, is the identity, ignoring ASCII case; OCPP 2.0.1
            Part 2 A00.FR.405), else 401.  False leaves that decision to
            ``auth`` (then required), which sees ``request.certificate``.
        refuse_unknown_subprotocol: a station that offers no subprotocol
            we speak gets HTTP 400 (with a body that lists ours) instead of
            what OCPP-J prescribes and the default does: ``101`` without
            ``Sec-WebSocket-Protocol``, then a close (1002).  For test tools
            and proxies that expect an HTTP refusal.
        compression: accept permessage-deflate when a station offers it
            (default True; OCPP 2.0.1 Part 4 §3.3).
        compression_threshold: messages below it, in bytes, go uncompressed
            (default 1,024).
        compression_context_takeover: let both ends keep their zlib streams
            from one message to the next (default False: each message is
            compressed on its own; see the module docstring).
        telemetry: metrics and spans (``ocpp_trio.observability.Telemetry``,
            or ``PrometheusMetrics().telemetry()``); None records none.
        frame_log: the structured frame log
            (``ocpp_trio.observability.FrameLog``); None writes none.

    Station identities: the last path segment, percent-decoded (OCPP-J
    1.6 §3.1.1, 2.0.1 Part 4 §3.1.1), 1-48 printable ASCII characters
    (U+0020-U+007E: OCPP 2.0.1's identifierString and 1.6's CiString are
    ASCII), else 400.  OCPP compares them without regard to case, and so
    does the server: ``CP001`` and ``cp001`` are one station for the
    duplicate policy, ``clients`` (found in any case, listed as each
    station sent its identity), ``call_station`` and the cluster.
    ``conn.identity`` and ``HandshakeRequest.identity`` are as sent.
        options: connection options, updated by ``connection_options``.
        **connection_options: ``ConnectionOptions`` fields (``call_timeout``,
            ``strict_mode``, ``ping_interval``, ``max_message_size``, ...;
            typed as :class:`ConnectionKwargs`) applied to every station
            connection.

    Raises:
        ValueError: a bad option, profile 1-2 without ``auth``, profile 2-3
            without ``ssl_context``, profile 3 with a context that does not
            verify client certificates.
        TypeError: an unknown option.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        protocols: Sequence[str] = DEFAULT_PROTOCOLS,
        auth: AuthCallback | None = None,
        security_profile: SecurityProfile | int = SecurityProfile.NONE,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: float = math.inf,
        max_pending_handshakes: float = DEFAULT_MAX_PENDING_HANDSHAKES,
        handshake_timeout: float = 10.0,
        duplicate_policy: DuplicatePolicy = "replace",
        certificate_identity_check: bool = True,
        profile_for: ProfileLookup | None = None,
        refuse_unknown_subprotocol: bool = False,
        compression: bool = True,
        compression_threshold: int = DEFAULT_COMPRESSION_THRESHOLD,
        compression_context_takeover: bool = False,
        websocket_backend: WebSocketBackend = "websockets",
        telemetry: Telemetry | None = None,
        frame_log: FrameLog | None = None,
        options: ConnectionOptions | None = None,
        **connection_options: Unpack[ConnectionKwargs],
    ) -> None:
        if websocket_backend not in ("websockets", "trio-websocket"):
            raise ValueError(
                f"websocket_backend must be 'websockets' or 'trio-websocket', got {websocket_backend!r}"
            )
        base = options or ConnectionOptions()
        if connection_options:
            base = base.replace(**connection_options)
        profile = SecurityProfile(security_profile)
        check_threshold(compression_threshold)
        check_server_options(
            protocols=protocols,
            auth=auth,
            profile=profile,
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_pending_handshakes=max_pending_handshakes,
            handshake_timeout=handshake_timeout,
            duplicate_policy=duplicate_policy,
            certificate_identity_check=certificate_identity_check,
            profile_for=profile_for,
        )
        self._settings = ServerSettings(
            handler=handler,
            protocols=tuple(protocols),
            auth=auth,
            security_profile=profile,
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_pending_handshakes=max_pending_handshakes,
            handshake_timeout=handshake_timeout,
            duplicate_policy=duplicate_policy,
            certificate_identity_check=bool(certificate_identity_check),
            compression=compression,
            compression_threshold=compression_threshold,
            compression_context_takeover=bool(compression_context_takeover),
            websocket_backend=websocket_backend,
            options=base,
            profile_for=profile_for,
            refuse_unknown_subprotocol=bool(refuse_unknown_subprotocol),
            observer=make_observer(telemetry, frame_log, "csms"),
        )
        self._events = ServerEvents()
        self._streams = StreamRunner(self._settings, self._events)
        self._listeners: list[trio.abc.Listener[Any]] = []
        self._accept_scope: trio.CancelScope | None = None
        self._serving = False

    def __repr__(self) -> str:
        port = self._port_or_none()
        return (
            f"<OCPPServer port={port} profile={int(self.security_profile)} "
            f"clients={len(self._streams.clients)}>"
        )

    # --- public surface --------------------------------------------------------

    @property
    def handler(self) -> Handler | None:
        """The handler run per station connection (read-only)."""
        return self._settings.handler

    @property
    def protocols(self) -> tuple[str, ...]:
        """The subprotocols spoken, in order of preference (read-only)."""
        return self._settings.protocols

    @property
    def auth(self) -> AuthCallback | None:
        """The ``auth`` callback (read-only)."""
        return self._settings.auth

    @property
    def security_profile(self) -> SecurityProfile:
        """The security profile of stations ``profile_for`` gives none (read-only)."""
        return self._settings.security_profile

    @property
    def profile_for(self) -> ProfileLookup | None:
        """The lookup of a station's own security profile, if any (read-only)."""
        return self._settings.profile_for

    @property
    def refuse_unknown_subprotocol(self) -> bool:
        """Whether no subprotocol in common is answered with HTTP 400 (read-only)."""
        return self._settings.refuse_unknown_subprotocol

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The server TLS context plain listeners are wrapped with (read-only)."""
        return self._settings.ssl_context

    @property
    def max_connections(self) -> float:
        """Connections open or being opened at once, at most (read-only)."""
        return self._settings.max_connections

    @property
    def max_pending_handshakes(self) -> float:
        """Streams still in their handshake at once, at most (read-only)."""
        return self._settings.max_pending_handshakes

    @property
    def certificate_identity_check(self) -> bool:
        """Whether a profile 3 certificate must name its station (read-only)."""
        return self._settings.certificate_identity_check

    @property
    def handshake_timeout(self) -> float:
        """The bound on TLS handshake + upgrade request + auth (read-only)."""
        return self._settings.handshake_timeout

    @property
    def duplicate_policy(self) -> DuplicatePolicy:
        """What a second connection of an identity does (read-only)."""
        return self._settings.duplicate_policy

    @property
    def compression(self) -> bool:
        """Whether permessage-deflate is accepted when offered (read-only)."""
        return self._settings.compression

    @property
    def websocket_backend(self) -> WebSocketBackend:
        """The WebSocket implementation of the server's own listeners (read-only)."""
        return self._settings.websocket_backend

    @property
    def options(self) -> ConnectionOptions:
        """The options of every station connection (read-only)."""
        return self._settings.options

    @property
    def clients(self) -> Mapping[str, OCPPConnection]:
        """The connected stations by identity (a read-only live view).

        Found by identity in any ASCII case; iterating gives each identity
        as its station sent it.
        """
        return MappingProxyType(self._streams.clients)

    @property
    def listeners(self) -> Sequence[trio.abc.Listener[Any]]:
        """The listeners being served."""
        return tuple(self._listeners)

    @property
    def port(self) -> int:
        """The TCP port listened on (useful after ``listen(0)``).

        Raises:
            RuntimeError: the server listens on no TCP socket.
        """
        port = self._port_or_none()
        if port is None:
            raise RuntimeError("the server is not listening on a TCP socket")
        return port

    def _port_or_none(self) -> int | None:
        for listener in self._listeners:
            inner = (
                listener.transport_listener if isinstance(listener, trio.SSLListener) else listener
            )
            if isinstance(inner, trio.SocketListener):
                port: int = inner.socket.getsockname()[1]
                return port
        return None

    @overload
    def on(
        self, name: Literal["client"], callback: Callable[[OCPPConnection], object]
    ) -> Callable[[OCPPConnection], object]: ...
    @overload
    def on(
        self,
        name: Literal["handshake_rejected"],
        callback: Callable[[HandshakeRejectedEvent], object],
    ) -> Callable[[HandshakeRejectedEvent], object]: ...
    @overload
    def on(
        self,
        name: ServerEventName,
        callback: Callable[[OCPPConnection | HandshakeRejectedEvent], object],
    ) -> Callable[[Any], object]: ...

    def on(self, name: str, callback: Callable[[Any], object]) -> Callable[[Any], object]:
        """Call ``callback(payload)`` on server event ``name``; returns ``callback``.

        Events (``ServerEventName``):

        - ``"client"``: a station connection is open; the payload is its
          ``OCPPConnection`` (the handler runs too, if there is one).
        - ``"handshake_rejected"``: a station was refused before its
          connection opened (bad identity 400, wrong password 401, profile
          or TLS 403, duplicate 409, ``auth`` said no, no subprotocol in
          common...); the payload is a :class:`HandshakeRejectedEvent` with
          the HTTP status, the reason, the identity and the peer address,
          never the credentials.

        A type checker holds the callback to the event's payload type.
        Callbacks run synchronously and must not block; one that raises is
        logged and skipped.

        Raises:
            ValueError: ``name`` is not a server event.
            TypeError: ``callback`` is not callable.
        """
        return self._events.on(name, callback)

    def off(self, name: ServerEventName, callback: Callable[[Any], object] | None = None) -> None:
        """Remove ``callback`` from ``name`` (every callback of ``name`` when None)."""
        self._events.off(name, callback)

    # --- cluster (see ocpp_trio.cluster) -----------------------------------------

    def set_adapter(self, adapter: ClusterAdapter) -> None:
        """Join a cluster through ``adapter`` (``RedisAdapter``); before serving.

        Without one the server is a cluster of one (``LocalAdapter``): the
        methods below work on its own stations.

        Raises:
            RuntimeError: the server is already serving.
        """
        if self._serving or self._streams.closing:
            raise RuntimeError("set_adapter() must be called before the server serves")
        self._streams.cluster = ClusterGlue(self._streams, adapter)

    @property
    def adapter(self) -> ClusterAdapter:
        """The cluster adapter (a ``LocalAdapter`` unless ``set_adapter`` gave one)."""
        return self._glue().adapter

    def _glue(self) -> ClusterGlue:
        glue = self._streams.cluster
        if glue is None:
            from .cluster._local import LocalAdapter

            glue = self._streams.cluster = ClusterGlue(self._streams, LocalAdapter())
        return glue

    @overload
    async def call_station(
        self, identity: str, message: Action[Any, Res], /, *, timeout: float | None = None
    ) -> Res: ...
    @overload
    async def call_station(
        self,
        identity: str,
        method: str,
        params: Mapping[str, Any] = ...,
        /,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]: ...
    @overload
    async def call_station(
        self,
        identity: str,
        protocol: str,
        method: str,
        params: Mapping[str, Any],
        /,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]: ...

    async def call_station(self, identity: str, *args: Any, timeout: float | None = None) -> Any:
        """Call station ``identity`` wherever in the cluster it is connected.

        Takes the arguments of ``OCPPConnection.call``: a typed action
        (``call_station("CP1", v201.Reset({"type": "Immediate"}))`` returns
        a ``v201.ResetResponse`` to a type checker), ``(method, params)`` or
        ``(protocol, method, params)`` (``dict[str, Any]``).  A station of this server is
        called directly; one held by another instance is reached through the
        adapter and answers back here.  Bounded by ``timeout`` (default:
        ``call_timeout``) as a whole; on cancellation the call is forgotten.

        Raises:
            StationOffline: no instance holds the station (at once);
                ``InstanceGone`` (a subclass) when its instance died, within
                the adapter's ``presence_ttl``.
            ClusterUnavailable: the backend is down (stations of this server
                are still reached).
            CallErrorReceived, CallTimeout, ConnectionClosed, ValidationError:
                as ``OCPPConnection.call``.
        """
        return await self._glue().call_station(identity, args, timeout)

    async def locate_station(self, identity: str) -> str | None:
        """The instance id holding station ``identity``, or None when it is offline.

        Raises:
            ClusterUnavailable: the backend is down.
        """
        return await self._glue().locate(identity)

    async def publish(self, channel: str, payload: Any) -> None:
        """Deliver ``payload`` (JSON types) to ``channel``'s subscribers on every instance.

        Best effort: an instance cut off from the backend misses it.

        Raises:
            ClusterUnavailable: the backend is down (nothing was delivered).
            TypeError: ``payload`` is not JSON-serializable.
        """
        await self._glue().publish(channel, payload)

    def subscribe(self, channel: str, callback: Subscriber) -> Subscriber:
        """Call ``callback(message: ClusterMessage)`` for each broadcast on ``channel``.

        Returns ``callback`` (so it works as a decorator's inner call);
        callbacks must not block; one that raises is logged and skipped.
        """
        self._glue().subscribe(channel, callback)
        return callback

    def unsubscribe(self, channel: str, callback: Subscriber | None = None) -> None:
        """Remove ``callback`` from ``channel`` (every callback of it when None)."""
        self._glue().unsubscribe(channel, callback)

    async def listen(
        self,
        port: int,
        host: str | None = None,
        *,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[OCPPServer] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on TCP ``port`` (0 picks a free one) and serve until closed or cancelled.

        Use as ``server = await nursery.start(server.listen, 0, "127.0.0.1")``.
        With ``ssl_context`` every stream is wrapped in TLS.

        Args:
            port: the TCP port; 0 lets the OS choose (see :attr:`port`).
            host: the address to bind; None binds every interface.
            handler_nursery: where the per-station tasks run (default: a
                nursery of this call).
            task_status: receives the server once it is listening.

        Returns after :meth:`close` (or when cancelled).
        """
        self._check_unused()
        listeners = await trio.open_tcp_listeners(port, host=host)
        await self.serve_listeners(
            listeners, handler_nursery=handler_nursery, task_status=task_status
        )

    async def serve_listeners(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[OCPPServer] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve already-open ``trio.SocketListener``/``trio.SSLListener`` objects.

        Plain listeners get TLS from ``ssl_context`` if it is set.  Returns
        after :meth:`close` (once every station task is done, when they run
        in this call's nursery) or when cancelled; the listeners are closed.

        With strict mode on, every validator of ``protocols`` is built (in a
        worker thread, once per process) before the server reports itself
        started: a connection's reader never compiles a schema.

        Raises:
            RuntimeError: the server is already serving, or closed.
            ValueError: a custom validator's schema cannot be compiled.
        """
        self._start_serving()
        # Strict mode's validators for every protocol we speak, built in a
        # worker thread before we report ourselves started: the reader of a
        # connection never compiles a schema.
        try:
            await prepare_validators(self.options, self.protocols)
        except BaseException:
            self._serving = False
            for listener in listeners:
                await trio.aclose_forcefully(listener)
            raise
        accept_scope = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            tasks = handler_nursery if handler_nursery is not None else nursery

            async def accept_loop(task_status: trio.TaskStatus[None]) -> None:
                with accept_scope:
                    await serve_listeners(
                        self._streams.handle_stream, listeners, tasks, task_status=task_status
                    )

            self._listeners = list(listeners)
            self._accept_scope = accept_scope
            if self._streams.cluster is not None:
                await nursery.start(self._streams.cluster.run)
            await nursery.start(accept_loop)
            log.info("OCPP server listening on port %s", self._port_or_none())
            task_status.started(self)

    async def close(
        self, reason: str = "server shutting down", *, await_pending: bool = False
    ) -> None:
        """Stop accepting and close every station with 1001; idempotent.

        Args:
            reason: the close reason sent to the stations.
            await_pending: first let the calls in flight finish (each
                connection waits at most its ``call_timeout``).

        Unfinished handshakes are dropped.  Each station gets the closing
        handshake within its ``close_timeout``; whatever is left after that
        bound is closed forcibly.  Returns when every station task is gone.
        If cancelled, the stations are closed forcibly before it returns.
        """
        self._streams.stop()
        if self._accept_scope is not None:
            self._accept_scope.cancel()
        bound = self.options.close_timeout + 1.0
        if await_pending:
            bound += self.options.call_timeout
        try:
            with trio.move_on_after(bound):
                async with trio.open_nursery() as nursery:
                    for conn in list(self._streams.clients.values()):
                        nursery.start_soon(
                            partial(
                                conn.close, CLOSE_GOING_AWAY, reason, await_pending=await_pending
                            )
                        )
        finally:
            await self._streams.cancel_all()
            if self._streams.cluster is not None:
                with trio.CancelScope(shield=True):
                    await self._streams.cluster.aclose()

    # --- for the package's other front ends (ocpp_trio.asgi, ocpp_trio.testing) -------
    #
    # Not public API: what a front end that accepts streams or upgrade
    # requests itself needs from the server, so that everything after the
    # accept is the very code of the server's own listeners.

    def serve_stream(self, stream: trio.abc.Stream) -> Coroutine[Any, Any, None]:
        """For the package: serve one already-accepted stream as an accepted socket.

        The coroutine to await (``nursery.start_soon(server.serve_stream,
        stream)``): the handshake under ``handshake_timeout``, ``auth``, the
        duplicate policy, the connection and the handler.  Never raises what
        the station caused; the stream is closed at the end.
        """
        return self._streams.handle_stream(stream)

    async def serve_upgrade(
        self,
        request: UpgradeRequest,
        upgrade: Upgrade,
        *,
        remote: tuple[str, int] | None,
        cleanup: Callable[[], Awaitable[None]],
    ) -> None:
        """For the package: serve one upgrade request a front end parsed (``ocpp_trio.asgi``).

        As for our own streams: the decisions, ``auth``, the duplicate
        policy, then the station's connection until it ends, in a task that
        ``close()`` counts and cancels.  ``cleanup`` runs shielded at the end,
        whatever happened.  Never raises what the station caused.
        """
        await self._streams.serve_upgrade(request, upgrade, remote=remote, cleanup=cleanup)

    @asynccontextmanager
    async def hosted(self) -> AsyncIterator[None]:
        """For the package: serve, for the body, through a front end other than our listeners.

        Runs the server's background tasks (the cluster glue; a
        ``LocalAdapter`` unless ``set_adapter`` gave one) and closes the
        server on exit (also when cancelled).

        Raises:
            RuntimeError: the server is already serving, or closed.
        """
        self._start_serving()
        async with trio.open_nursery() as nursery:
            # Always run the cluster glue: call_station() creates it on first
            # use, and closing a glue that never ran would wait for its
            # release queue in vain.
            await nursery.start(self._glue().run)
            try:
                yield
            finally:
                await self.close()

    def _check_unused(self) -> None:
        if self._serving or self._streams.closing:
            raise RuntimeError("this server is already serving or closed; create a new one")

    def _start_serving(self) -> None:
        self._check_unused()
        self._serving = True

    def readiness(self) -> tuple[bool, str]:
        """Whether the server is ready for stations, and if not, why (``/ready``).

        Ready: serving (its own listeners open, or hosted by a front end such
        as ``OCPPASGIApp.running()``), not shutting down, and its cluster
        adapter, if it has one, reached its backend on the last try
        (``adapter.healthy``).  Cheap and synchronous: call it as often as a
        probe likes.

        Returns:
            ``(True, "ready")``, or ``(False, reason)`` with a short reason.
        """
        if self._streams.closing:
            return False, "the server is shutting down"
        glue = self._streams.cluster
        if not self._listeners and not (glue is not None and glue.running):
            return False, "the server is not serving yet"
        for listener in self._listeners:
            inner = (
                listener.transport_listener if isinstance(listener, trio.SSLListener) else listener
            )
            if isinstance(inner, trio.SocketListener) and inner.socket.fileno() < 0:
                return False, "the server stopped listening"
        if glue is not None and not glue.adapter.healthy:
            return False, "the cluster backend is unreachable"
        return True, "ready"


async def serve_ocpp(
    handler: Handler | None,
    port: int,
    *,
    host: str | None = None,
    handler_nursery: trio.Nursery | None = None,
    task_status: trio.TaskStatus[OCPPServer] = trio.TASK_STATUS_IGNORED,
    **server_options: Unpack[ServerKwargs],
) -> None:
    """Run a CSMS on TCP ``port``: ``handler(conn)`` runs for each station connection.

    ``server = await nursery.start(serve_ocpp, handler, 0, host="127.0.0.1")``
    returns the :class:`OCPPServer` once it listens; ``trio.run(serve_ocpp,
    handler, 9000)`` serves forever.

    Args:
        handler: ``await handler(conn)`` per station, in the connection's
            nursery; returning keeps the connection open, raising closes it
            with 1011 (and is logged).
        port: the TCP port; 0 lets the OS choose (``server.port``).
        host: the address to bind.  The default, None, binds every interface,
            like ``trio.serve_tcp``: a CSMS exists to be reached by stations.
            Pass ``"127.0.0.1"`` for a local-only server.
        handler_nursery: where the per-station tasks run.
        task_status: receives the server once it is listening.
        **server_options: ``OCPPServer`` options (``protocols``, ``auth``,
            ``security_profile``, ``ssl_context`` (TLS for every connection,
            ``server_ssl_context``), ``profile_for``, ``max_connections``,
            ``max_pending_handshakes``, ``handshake_timeout``,
            ``duplicate_policy``, ``certificate_identity_check``,
            ``refuse_unknown_subprotocol``, ...) and connection options
            (``call_timeout``, ...), each typed (:class:`ServerKwargs`).

    Raises:
        TypeError: an unknown option (a type checker flags it first).
        ValueError: a bad option value.

    Runs until cancelled or until ``server.close()``.
    """
    server = OCPPServer(handler, **server_options)
    await server.listen(port, host, handler_nursery=handler_nursery, task_status=task_status)
