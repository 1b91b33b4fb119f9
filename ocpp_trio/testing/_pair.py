"""An in-memory connected pair: a station and a CSMS connection over memory streams.

Both ends are real :class:`~ocpp_trio.connection.OCPPConnection` objects with
the same handlers, strict mode, errors and timeouts as over a network; the
WebSocket handshake and framing really run (trio-websocket over
``trio.testing.memory_stream_pair``), so tests run under Trio's
``MockClock``/``autojump_clock`` with exact virtual times and no sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.lowlevel
import trio.testing
import trio_websocket

from .._core.protocol import Role
from .._options import split_options
from .._transport import GuardedNursery, HandshakeInfo, TrioWebsocketTransport
from ..connection import OCPPConnection


def _log_error(exc: BaseException) -> None:
    return None


@asynccontextmanager
async def open_memory_pair(
    protocol: str = "ocpp1.6",
    *,
    identity: str = "CP001",
    stream_pair_factory: Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]] = (
        trio.testing.memory_stream_pair
    ),
    **options: Any,
) -> AsyncIterator[tuple[OCPPConnection, OCPPConnection]]:
    """Yield ``(station, csms)``: two connected ends speaking ``protocol``.

    Keyword options are connection options (``call_timeout``, ``strict_mode``,
    ``ping_interval`` (default 0 here: no pings unless asked), ...) applied to
    both ends; ``station_options`` / ``csms_options`` (dicts) override them per end.
    ``stream_pair_factory`` makes the two byte streams (default
    ``trio.testing.memory_stream_pair``); pass your own to inject delay, loss
    or a frozen peer.  On exit both ends are closed.
    """
    station_extra = options.pop("station_options", {})
    csms_extra = options.pop("csms_options", {})
    options.setdefault("ping_interval", 0)
    station_opts, rest = split_options({**options, **station_extra})
    csms_opts, rest2 = split_options({**options, **csms_extra})
    if rest or rest2:
        raise TypeError(f"unknown option(s): {', '.join(sorted(set(rest) | set(rest2)))}")
    client_stream, server_stream = stream_pair_factory()
    async with trio.open_nursery() as nursery:
        guard = GuardedNursery(nursery, _log_error)
        server_ws: list[trio_websocket.WebSocketConnection] = []

        async def accept() -> None:
            request = await trio_websocket.wrap_server_stream(guard, server_stream)  # type: ignore[arg-type]
            server_ws.append(await request.accept(subprotocol=protocol))

        nursery.start_soon(accept)
        client_ws = await trio_websocket.wrap_client_stream(
            guard,  # type: ignore[arg-type]
            client_stream,  # type: ignore[arg-type]
            "localhost",
            f"/ocpp/{identity}",
            subprotocols=[protocol],
        )
        await trio.testing.wait_all_tasks_blocked()
        while not server_ws:
            await trio.lowlevel.checkpoint()
        station = OCPPConnection(
            TrioWebsocketTransport(client_ws, client_stream),
            identity=identity,
            protocol=protocol,
            role=Role.CLIENT,
            options=station_opts,
            handshake=HandshakeInfo(path=f"/ocpp/{identity}", subprotocol=protocol),
        )
        csms = OCPPConnection(
            TrioWebsocketTransport(server_ws[0], server_stream),
            identity=identity,
            protocol=protocol,
            role=Role.SERVER,
            options=csms_opts,
            handshake=HandshakeInfo(path=f"/ocpp/{identity}", subprotocol=protocol),
        )
        await nursery.start(station._run)
        await nursery.start(csms._run)
        try:
            yield station, csms
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await station.close(force=True)
                await csms.close(force=True)
            nursery.cancel_scope.cancel()
