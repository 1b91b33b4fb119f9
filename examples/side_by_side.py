"""A Trio CSMS that runs ocpp_trio's own server and an HTTP API side by side, in one nursery.

Run it with ``python examples/side_by_side.py`` (needs ``pip install
ocpp-trio[asgi]``).  Stations connect to ``ws://127.0.0.1:9000/ocpp/<identity>``,
served by ocpp_trio's own listener on a socket this application opened (the
way to serve security profile 3: give the server a TLS context and it binds
the client certificate to the station); the HTTP API answers on port 8080
(``GET /stations``).  Ctrl+C closes the stations with 1001 and stops both.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ocpp_trio import OCPPConnection, OCPPServer


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def on_station(conn: OCPPConnection) -> None:
    conn.handle(
        "BootNotification",
        lambda ctx: {"status": "Accepted", "currentTime": now(), "interval": 300},
    )
    conn.handle("Heartbeat", lambda ctx: {"currentTime": now()})


server = OCPPServer(on_station, protocols=["ocpp2.0.1", "ocpp1.6"])


async def list_stations(request: Request) -> JSONResponse:
    return JSONResponse({identity: conn.protocol for identity, conn in server.clients.items()})


api = Starlette(routes=[Route("/stations", list_stations)])


async def run(
    ocpp_port: int = 9000,
    http_port: int = 8080,
    host: str = "127.0.0.1",
    *,
    shutdown: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[tuple[int, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve both until ``shutdown()`` returns (default: SIGINT or SIGTERM).

    ``task_status`` gets ``(ocpp_port, http_port)`` once both listen.
    """
    # Listeners the application opens itself (a trio.SSLListener works the same).
    listeners = await trio.open_tcp_listeners(ocpp_port, host=host)
    config = Config()
    config.bind = [f"{host}:{http_port}"]
    stopped = trio.Event()

    async def shutdown_trigger() -> None:
        await stopped.wait()

    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve_listeners, listeners)
        binds = await nursery.start(partial(serve, api, config, shutdown_trigger=shutdown_trigger))  # type: ignore[arg-type]
        task_status.started((server.port, int(binds[0].rsplit(":", 1)[1])))
        if shutdown is not None:
            await shutdown()
        else:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
        await server.close()  # every station gets 1001; serve_listeners returns
        stopped.set()  # then Hypercorn stops


if __name__ == "__main__":
    trio.run(run)
