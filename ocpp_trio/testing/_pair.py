"""In-memory connections: a station and a CSMS, or one of them and a raw peer.

Both ends of :func:`open_memory_pair` are real
:class:`~ocpp_trio.OCPPConnection` objects with the same handlers,
strict mode, errors and timeouts as over a network; the WebSocket handshake and
framing really run, on the transport the client and the server use by default
(``_websocket/driver.py``) over ``trio.testing.memory_stream_pair``, so tests run under
Trio's ``MockClock``/``autojump_clock`` with exact virtual times and no
sockets.

:func:`open_raw_peer` puts a :class:`RawPeer` on one side instead: it sends and
receives WebSocket text exactly as given, without any OCPP-J machinery, which
is what framing-level tests (``malformed_frames()``) and replays need: a
real connection would answer, count or reject what the test wants to see raw.
Both its ends run on trio-websocket, imported only when a raw peer is opened.
"""

from __future__ import annotations

import inspect
import json
import math
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, Unpack, final

import trio
import trio.testing

from .._core.errors import ConnectionClosed
from .._core.protocol import Role
from .._rpc.connection import OCPPConnection, run_connection
from .._rpc.options import ConnectionKwargs, ConnectionOptions, split_options
from .._rpc.outbound import prepare_validators_now
from .._websocket.driver import WSTransport
from .._websocket.handshake import HandshakeFailed, client_handshake, server_handshake
from .._websocket.transport import (
    CLOSE_ABNORMAL,
    CLOSE_NORMAL,
    HandshakeInfo,
    Transport,
)
from ..observability._recorder import Observer, make_observer
from ..observability.framelog import FrameLog
from ..observability.telemetry import Telemetry

if TYPE_CHECKING:
    import trio_websocket

__all__ = ["MemoryPair", "RawPair", "RawPeer", "open_memory_pair", "open_raw_peer"]

StreamPairFactory = Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]]
#: ``handler(conn)``, sync or async: what ``serve_ocpp`` calls per station.
ConnectionHandler = Callable[[OCPPConnection], Awaitable[object] | object]

#: How long :meth:`RawPeer.receive` waits by default (virtual seconds under a MockClock).
RECEIVE_TIMEOUT: Final = 10.0


class MemoryPair(NamedTuple):
    """The two ends of :func:`open_memory_pair`; unpacks as ``station, csms``."""

    station: OCPPConnection
    csms: OCPPConnection


class RawPair(NamedTuple):
    """What :func:`open_raw_peer` yields; unpacks as ``peer, conn``."""

    peer: RawPeer
    conn: OCPPConnection


def _ignore_error(exc: BaseException) -> None:
    return None


def _on_open(handler: ConnectionHandler | None) -> Callable[[OCPPConnection], Awaitable[object]]:
    async def run(conn: OCPPConnection) -> None:
        if handler is None:
            return
        result = handler(conn)
        if inspect.isawaitable(result):
            await result

    return run


class MemoryPairKwargs(ConnectionKwargs, total=False):
    """The options of :func:`open_memory_pair`: connection options for both ends, and per end.

    Attributes:
        station_options: connection options of the station end only, over
            the shared ones.
        csms_options: the same for the CSMS end.
    """

    station_options: ConnectionKwargs
    csms_options: ConnectionKwargs


def _split(options: dict[str, Any], extra: Any) -> ConnectionOptions:
    if not isinstance(extra, dict):
        raise TypeError(f"station_options/csms_options must be a dict, got {type(extra).__name__}")
    merged = {**options, **extra}
    merged.setdefault("ping_interval", 0)
    opts, rest = split_options(merged)
    if rest:
        raise TypeError(f"unknown option(s): {', '.join(sorted(rest))}")
    return opts


async def _open_websockets(
    nursery: trio.Nursery,
    protocol: str,
    identity: str,
    factory: StreamPairFactory,
    max_message_size: tuple[int, int],
) -> tuple[
    trio_websocket.WebSocketConnection,
    trio.abc.Stream,
    trio_websocket.WebSocketConnection,
    trio.abc.Stream,
]:
    """Run the WebSocket opening handshake over a fresh stream pair.

    Returns ``(client_ws, client_stream, server_ws, server_stream)``.
    trio-websocket's reader tasks run in ``nursery``, guarded so that what
    they raise (a close race) stays with them.
    """
    import trio_websocket

    from .._websocket.trio_websocket import GuardedNursery

    client_stream, server_stream = factory()
    guard = GuardedNursery(nursery, _ignore_error)
    accepted: list[trio_websocket.WebSocketConnection] = []
    done = trio.Event()

    async def accept() -> None:
        try:
            request = await trio_websocket.wrap_server_stream(
                guard,  # type: ignore[arg-type]
                server_stream,
                max_message_size=max_message_size[1],
            )
            accepted.append(await request.accept(subprotocol=protocol))
        finally:
            if not accepted:  # the client would wait for an answer forever
                await trio.aclose_forcefully(server_stream)
            done.set()

    nursery.start_soon(accept)
    client_ws = await trio_websocket.wrap_client_stream(
        guard,  # type: ignore[arg-type]
        client_stream,  # type: ignore[arg-type]
        "localhost",
        f"/ocpp/{urllib.parse.quote(identity, safe='')}",
        subprotocols=[protocol],
        max_message_size=max_message_size[0],
    )
    await done.wait()
    if not accepted:  # pragma: no cover - the accept task failed; its error is logged
        raise ConnectionClosed("the in-memory handshake failed", code=CLOSE_ABNORMAL)
    return client_ws, client_stream, accepted[0], server_stream


async def _open_transports(
    protocol: str,
    identity: str,
    factory: StreamPairFactory,
    max_message_size: tuple[int, int],
) -> tuple[WSTransport, WSTransport]:
    """Run the opening handshake of the default transport over a fresh stream pair.

    Returns ``(client, server)``, as ``open_ocpp_client`` and the server get
    them (no compression, as the client offers none by default).  Nothing keeps
    running afterwards: the transport has no task of its own.
    """
    client_stream, server_stream = factory()
    accepted: list[WSTransport] = []

    async def accept() -> None:
        try:
            handshake = await server_handshake(
                server_stream, max_message_size=max_message_size[1], compression=False
            )
            accepted.append(await handshake.accept(protocol))
        except HandshakeFailed:
            await trio.aclose_forcefully(server_stream)  # the client sees EOF and gives up

    url = f"ws://localhost/ocpp/{urllib.parse.quote(identity, safe='')}"
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept)
            client, _ = await client_handshake(
                client_stream,
                url,
                subprotocols=[protocol],
                headers=[],
                max_message_size=max_message_size[0],
                compression=False,
            )
    except* HandshakeFailed as group:
        raise ConnectionClosed(
            f"the in-memory handshake failed: {group.exceptions[0]}", code=CLOSE_ABNORMAL
        ) from None
    if not accepted:  # pragma: no cover - the client saw a 101 the server never sent
        raise ConnectionClosed("the in-memory handshake failed", code=CLOSE_ABNORMAL)
    return client, accepted[0]


def _connection(
    transport: Transport,
    *,
    protocol: str,
    identity: str,
    role: Role,
    options: ConnectionOptions,
    observer: Observer | None = None,
) -> OCPPConnection:
    path = f"/ocpp/{identity}"
    prepare_validators_now(options, [protocol])  # the reader never compiles a schema
    return OCPPConnection(
        transport,
        identity=identity,
        protocol=protocol,
        role=role,
        options=options,
        handshake=HandshakeInfo(path=path, subprotocol=protocol),
        recorder=None if observer is None else observer.connection(identity, protocol),
    )


@contextmanager
def single_errors() -> Iterator[None]:
    """Let one failure out of a nursery as itself, not inside an ExceptionGroup.

    For the package (``open_memory_pair``, ``open_raw_peer``, ``open_memory_server``).

    The body's own failure (a test's ``assert``) reaches pytest unwrapped; a
    group of several real failures stays a group.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        real = [exc for exc in leaves if not isinstance(exc, trio.Cancelled)]
        if len(real) != 1:
            raise
        leaf = real[0]
        leaf.__suppress_context__ = True
        raise leaf from leaf.__cause__


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


async def _shutdown(nursery: trio.Nursery, *conns: OCPPConnection) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        for conn in conns:
            await conn.close(force=True)
    nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_memory_pair(
    protocol: str = "ocpp1.6",
    *,
    identity: str = "CP001",
    csms_handler: ConnectionHandler | None = None,
    station_handler: ConnectionHandler | None = None,
    stream_pair_factory: StreamPairFactory = trio.testing.memory_stream_pair,
    telemetry: Telemetry | None = None,
    frame_log: FrameLog | None = None,
    **options: Unpack[MemoryPairKwargs],
) -> AsyncIterator[MemoryPair]:
    """Yield ``MemoryPair(station, csms)``: two connected ends speaking ``protocol``.

    Args:
        protocol: the subprotocol both ends speak (any name; the built-in
            ones have schemas for strict mode).
        identity: the station identity both ends report.
        csms_handler: ``handler(csms)``, sync or async, run in the CSMS
            connection's nursery exactly as ``serve_ocpp`` runs its handler:
            pass your CSMS's per-station function to test it.  Raising closes
            the connection with 1011.
        station_handler: the same for the station end.
        stream_pair_factory: makes the two byte streams (default
            ``trio.testing.memory_stream_pair``); pass your own to inject
            delay, loss or a frozen peer.
        telemetry: metrics and spans of both ends
            (``ocpp_trio.observability.Telemetry``; their ``role`` attribute
            tells them apart), to check your own instrumentation in tests.
        frame_log: the structured frame log of both ends.
        **options: connection options (``call_timeout``, ``strict_mode``,
            ``ping_interval`` (0 here unless given: no pings), ...) for both
            ends; ``station_options`` / ``csms_options`` (dicts) override them
            per end.

    Raises:
        TypeError: an unknown option.

    On exit both ends are closed without a closing handshake and their tasks,
    the handlers included, are cancelled.  Cancelling the body does the same.
    """
    shared: dict[str, Any] = dict(options)
    station_extra = shared.pop("station_options", {})
    csms_extra = shared.pop("csms_options", {})
    station_opts = _split(shared, station_extra)
    csms_opts = _split(shared, csms_extra)
    with single_errors():
        async with trio.open_nursery() as nursery:
            client, server = await _open_transports(
                protocol,
                identity,
                stream_pair_factory,
                (station_opts.max_message_size, csms_opts.max_message_size),
            )
            station = _connection(
                client,
                protocol=protocol,
                identity=identity,
                role=Role.CLIENT,
                options=station_opts,
                observer=make_observer(telemetry, frame_log, "station"),
            )
            csms = _connection(
                server,
                protocol=protocol,
                identity=identity,
                role=Role.SERVER,
                options=csms_opts,
                observer=make_observer(telemetry, frame_log, "csms"),
            )
            try:
                await nursery.start(run_connection, csms, _on_open(csms_handler))
                await nursery.start(run_connection, station, _on_open(station_handler))
                yield MemoryPair(station, csms)
            finally:
                await _shutdown(nursery, station, csms)


@final
class RawPeer:
    """The far end of a connection under test, speaking raw WebSocket messages.

    Nothing is parsed, answered or validated: :meth:`send` writes exactly the
    text given, :meth:`receive` returns exactly what came.  Get one from
    :func:`open_raw_peer`.

    Attributes:
        protocol: the negotiated subprotocol.
        role: the raw side's role (the connection under test has the other).
    """

    def __init__(
        self, ws: trio_websocket.WebSocketConnection, *, protocol: str, role: Role
    ) -> None:
        import trio_websocket  # loaded already: ``ws`` is one of its connections

        self.protocol = protocol
        self.role = role
        self._ws = ws
        self._ws_closed: type[trio_websocket.ConnectionClosed] = trio_websocket.ConnectionClosed
        self._send, self._received = trio.open_memory_channel[str | bytes](math.inf)
        self._close_code: int | None = None
        self._close_reason = ""
        self._ids = 0

    def __repr__(self) -> str:
        return f"<RawPeer {self.role.value} protocol={self.protocol!r}>"

    @property
    def close_code(self) -> int | None:
        """The WebSocket close code once the connection closed, else None."""
        return self._close_code

    async def _read(self) -> None:
        try:
            while True:
                message = await self._ws.get_message()
                self._send.send_nowait(message)
        except self._ws_closed as exc:
            reason = exc.reason
            self._close_code = reason.code if reason is not None else CLOSE_ABNORMAL
            self._close_reason = (reason.reason or "") if reason is not None else ""
        finally:
            self._send.close()

    async def send(self, message: str | bytes) -> None:
        """Send one WebSocket message as is (bytes go as a binary message).

        Raises:
            ConnectionClosed: the connection is closed.
        """
        try:
            await self._ws.send_message(message)
        except (self._ws_closed, trio.BrokenResourceError, trio.ClosedResourceError):
            raise ConnectionClosed(
                "the connection under test is closed", code=self._close_code or CLOSE_ABNORMAL
            ) from None

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> str:
        """Return the next message the connection under test sent.

        Raises:
            trio.TooSlowError: nothing came within ``timeout`` seconds.
            ConnectionClosed: the connection closed (``code`` tells how) and
                every message before the close has been received.
        """
        with trio.fail_after(timeout):
            try:
                message = await self._received.receive()
            except trio.EndOfChannel:
                code = self._close_code if self._close_code is not None else CLOSE_ABNORMAL
                raise ConnectionClosed(
                    f"connection closed ({code})", code=code, reason=self._close_reason
                ) from None
        return message if isinstance(message, str) else message.decode("utf-8", "replace")

    async def receive_json(self, timeout: float = RECEIVE_TIMEOUT) -> Any:
        """:meth:`receive`, parsed as JSON."""
        return json.loads(await self.receive(timeout))

    async def call(self, action: str, payload: Any, *, message_id: str | None = None) -> list[Any]:
        """Send ``[2, id, action, payload]`` and return the next frame received, parsed.

        The id defaults to ``"raw-1"``, ``"raw-2"``...  The next frame is
        assumed to be the answer (the connection under test may send its own
        CALLs too: then use :meth:`send` and :meth:`receive`).
        """
        if message_id is None:
            self._ids += 1
            message_id = f"raw-{self._ids}"
        await self.send(json.dumps([2, message_id, action, payload], separators=(",", ":")))
        reply = await self.receive_json()
        assert isinstance(reply, list), reply
        return reply

    async def expect_silence(self, within: float = 1.0) -> None:
        """Wait ``within`` seconds and fail if any message arrived meanwhile.

        Raises:
            AssertionError: a message arrived (it is named in the message).
        """
        with trio.move_on_after(within):
            try:
                message = await self._received.receive()
            except trio.EndOfChannel:
                return
            raise AssertionError(f"expected no message, got {message!r}")

    async def aclose(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the WebSocket (closing handshake within 1 s), then the stream."""
        with trio.move_on_after(1):
            try:
                await self._ws.aclose(code, reason or None)
            except Exception:  # pragma: no cover - a close race inside trio-websocket
                pass


@asynccontextmanager
async def open_raw_peer(
    protocol: str = "ocpp1.6",
    *,
    under_test: Literal["csms", "station"] = "csms",
    handler: ConnectionHandler | None = None,
    identity: str = "CP001",
    stream_pair_factory: StreamPairFactory = trio.testing.memory_stream_pair,
    **options: Unpack[ConnectionKwargs],
) -> AsyncIterator[RawPair]:
    """Yield ``RawPair(peer, conn)``: a real connection and a raw peer facing it.

    Args:
        protocol: the negotiated subprotocol.
        under_test: the role of the real connection (the peer takes the other).
        handler: ``handler(conn)``, sync or async, run in the connection's
            nursery as ``serve_ocpp`` does (install your handlers there).
        identity: the station identity.
        stream_pair_factory: as for :func:`open_memory_pair`.
        **options: the connection's options (``strict_mode``,
            ``max_bad_messages``, ...; ``ping_interval`` defaults to 0).

    On exit the connection is closed without a closing handshake and its tasks
    are cancelled.
    """
    if under_test not in ("csms", "station"):
        raise ValueError(f"under_test must be 'csms' or 'station', got {under_test!r}")
    from .._websocket.trio_websocket import TrioWebsocketTransport  # only for raw peers

    opts = _split(dict(options), {})
    conn_is_server = under_test == "csms"
    with single_errors():
        async with trio.open_nursery() as nursery:
            sizes = (
                (2**31, opts.max_message_size) if conn_is_server else (opts.max_message_size, 2**31)
            )
            client_ws, client_stream, server_ws, server_stream = await _open_websockets(
                nursery, protocol, identity, stream_pair_factory, sizes
            )
            if conn_is_server:
                raw_ws, ws, stream, role = client_ws, server_ws, server_stream, Role.SERVER
            else:
                raw_ws, ws, stream, role = server_ws, client_ws, client_stream, Role.CLIENT
            conn = _connection(
                TrioWebsocketTransport(ws, stream),
                protocol=protocol,
                identity=identity,
                role=role,
                options=opts,
            )
            peer = RawPeer(
                raw_ws, protocol=protocol, role=Role.CLIENT if conn_is_server else Role.SERVER
            )
            try:
                nursery.start_soon(peer._read)
                await nursery.start(run_connection, conn, _on_open(handler))
                yield RawPair(peer, conn)
            finally:
                await _shutdown(nursery, conn)
