"""An in-memory CSMS: a real ``OCPPServer`` whose stations connect over memory streams.

The server is the real one (handshake checks, ``auth``, security-profile
checks short of TLS, duplicate policy, ``max_connections``, the per-station
handler in the connection's nursery); only the listener is replaced: each
station's ``open_stream`` hook (an ``open_ocpp_client`` option) makes a
``trio.testing.memory_stream_pair`` and hands the server's end to the
server's per-stream task, just as ``trio.serve_listeners`` would hand it an
accepted socket (``OCPPServer.serve_stream``).  Everything runs in virtual time under ``autojump_clock``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Unpack, cast, final

import trio
import trio.testing

from .._rpc.connection import OCPPConnection
from .._rpc.outbound import prepare_validators_now
from .._server.stream import Handler
from ..client import ClientKwargs, OCPPClient, open_ocpp_client
from ..server import DEFAULT_PROTOCOLS, OCPPServer, ServerKwargs
from ._pair import StreamPairFactory, single_errors

__all__ = ["MemoryServer", "open_memory_server"]

#: The endpoint in-memory stations "connect" to; nothing resolves it.
MEMORY_ENDPOINT: Final = "ws://csms.invalid/ocpp"


@final
class MemoryServer:
    """A real :class:`~ocpp_trio.server.OCPPServer` reached over memory streams.

    Get one from :func:`open_memory_server` (or the ``ocpp_server`` fixture).

    Attributes:
        server: the ``OCPPServer`` (``clients``, ``on("client", ...)``, ``close()``...).
        station_protocols: the subprotocols :meth:`connect` offers by default.
        station_options: client options :meth:`connect` uses by default.
    """

    def __init__(
        self,
        server: OCPPServer,
        nursery: trio.Nursery,
        *,
        stream_pair_factory: StreamPairFactory = trio.testing.memory_stream_pair,
        station_protocols: Sequence[str] = ("ocpp1.6",),
        station_options: ClientKwargs | None = None,
    ) -> None:
        self.server = server
        self.station_protocols = tuple(station_protocols)
        self.station_options: ClientKwargs = {**(station_options or {})}
        self._nursery = nursery
        self._factory = stream_pair_factory

    def __repr__(self) -> str:
        return f"<MemoryServer clients={sorted(self.server.clients)}>"

    @property
    def clients(self) -> dict[str, OCPPConnection]:
        """The server-side connections by identity (a snapshot)."""
        return dict(self.server.clients)

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        """An ``open_stream`` hook for ``open_ocpp_client``: a new in-memory "TCP" connection.

        ``host`` and ``port`` are ignored.  The server's end is served in the
        server's nursery, as an accepted socket would be.
        """
        station_end, server_end = self._factory()
        self._nursery.start_soon(self.server.serve_stream, server_end)
        return station_end

    @asynccontextmanager
    async def connect(
        self,
        identity: str = "CP001",
        *,
        protocols: Sequence[str] | None = None,
        endpoint: str = MEMORY_ENDPOINT,
        **client_options: Unpack[ClientKwargs],
    ) -> AsyncIterator[OCPPClient]:
        """Connect a station (a real ``OCPPClient``) and yield it once the server runs it.

        When the body starts, ``self.clients[identity]`` is the server's side
        of this connection and the server's handler has been started.

        Args:
            identity: the station identity.
            protocols: subprotocols offered (default :attr:`station_protocols`).
            endpoint: the URL the station believes it connects to (the
                identity is appended); only its path and query matter.
            **client_options: ``open_ocpp_client`` options (``password``,
                ``reconnect``, ``call_timeout``, ``strict_mode``...), over
                :attr:`station_options`.

        Raises:
            HandshakeRejected, ProtocolNegotiationError, ConnectError: as
                ``open_ocpp_client`` (the server refused the station).
        """
        options = cast("dict[str, Any]", {**self.station_options, **client_options})
        options.setdefault("ping_interval", 0)
        opened = trio.Event()

        def on_client(conn: object) -> None:
            if isinstance(conn, OCPPConnection) and conn.identity == identity:
                opened.set()

        self.server.on("client", on_client)
        try:
            async with open_ocpp_client(
                endpoint,
                identity=identity,
                protocols=list(protocols or self.station_protocols),
                open_stream=self.open_stream,
                **options,
            ) as client:
                await opened.wait()
                self.server.off("client", on_client)
                yield client
        finally:
            self.server.off("client", on_client)


@asynccontextmanager
async def open_memory_server(
    handler: Handler | None = None,
    *,
    station_protocols: Sequence[str] = ("ocpp1.6",),
    station_options: ClientKwargs | None = None,
    stream_pair_factory: StreamPairFactory = trio.testing.memory_stream_pair,
    **server_options: Unpack[ServerKwargs],
) -> AsyncIterator[MemoryServer]:
    """Run ``handler`` (your ``serve_ocpp`` handler) in a real server, in memory.

    ``async with open_memory_server(on_station) as srv:`` then
    ``async with srv.connect("CP1") as station:`` as many times as needed.

    Args:
        handler: ``await handler(conn)`` per station, as for ``serve_ocpp``.
        station_protocols: what :meth:`MemoryServer.connect` offers by default.
        station_options: :meth:`MemoryServer.connect`'s default client options.
        stream_pair_factory: makes each station's pair of byte streams.
        **server_options: ``OCPPServer`` options (``protocols``, the
            subprotocols the server speaks, by default ``DEFAULT_PROTOCOLS``;
            ``auth``, ``security_profile`` 0 or 1, ``max_connections``,
            ``duplicate_policy``, ``handshake_timeout``) and connection options
            (``strict_mode``, ``call_timeout``, ...), typed as
            ``ServerKwargs``.  ``ping_interval`` defaults to 0 (no pings).

    On exit the server closes every station (``server.close()``, code 1001)
    and everything started here is cancelled.
    """
    server_options.setdefault("ping_interval", 0)
    server_options.setdefault("protocols", DEFAULT_PROTOCOLS)
    server = OCPPServer(handler, **server_options)
    # Built here, not in a worker thread: virtual time must not jump meanwhile.
    prepare_validators_now(server.options, server.protocols)
    with single_errors():
        async with trio.open_nursery() as nursery:
            memory = MemoryServer(
                server,
                nursery,
                stream_pair_factory=stream_pair_factory,
                station_protocols=station_protocols,
                station_options=station_options,
            )
            try:
                yield memory
            finally:
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(server.options.close_timeout + 2),
                ):
                    await server.close()
                nursery.cancel_scope.cancel()
