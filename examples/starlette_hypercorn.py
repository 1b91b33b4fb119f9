"""A CSMS back office: a REST API and the OCPP endpoint on one port (Starlette, Hypercorn, Trio).

Run it with ``python examples/starlette_hypercorn.py`` (needs ``pip install
ocpp-trio[asgi]``).  Stations connect to ``ws://127.0.0.1:9000/ocpp/<identity>``;
``GET /stations`` lists the connected ones and
``GET /stations/<identity>/config`` asks one for its configuration
(GetConfiguration, OCPP 1.6).  Ctrl+C closes every station with 1001, then
stops the server.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from ocpp_trio import (
    AuthReject,
    CallErrorReceived,
    CallTimeout,
    ConnectionClosed,
    HandlerContext,
    HandshakeRequest,
    OCPPConnection,
    OCPPServer,
    ValidationError,
)
from ocpp_trio.asgi import OCPPASGIApp
from ocpp_trio.cluster import StationOffline

#: The stations this CSMS knows; any other identity is refused with 404.
KNOWN_STATIONS = {"CP001", "CP002", "CP003"}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_station(request: HandshakeRequest) -> AuthReject | None:
    """The server's ``auth`` callback: unknown stations get 404 (OCPP-J 1.6 §3.2)."""
    return None if request.identity in KNOWN_STATIONS else AuthReject(404)


def boot(ctx: HandlerContext) -> dict[str, Any]:
    return {"status": "Accepted", "currentTime": now(), "interval": 300}


async def on_station(conn: OCPPConnection) -> None:
    conn.handle("BootNotification", boot)
    conn.handle("Heartbeat", lambda ctx: {"currentTime": now()})
    conn.handle("StatusNotification", lambda ctx: {})


server = OCPPServer(on_station, protocols=["ocpp1.6"], auth=check_station, strict_mode=True)
ocpp = OCPPASGIApp(server)


async def list_stations(request: Request) -> JSONResponse:
    return JSONResponse(sorted(server.clients))


async def station_config(request: Request) -> JSONResponse:
    identity = request.path_params["identity"]
    keys = request.query_params.getlist("key")
    try:
        result = await server.call_station(
            identity, "GetConfiguration", {"key": keys} if keys else {}, timeout=10
        )
    except StationOffline:
        return JSONResponse({"error": f"station {identity} is not connected"}, status_code=404)
    except CallErrorReceived as exc:
        return JSONResponse({"error": exc.code, "description": exc.description}, status_code=502)
    except (CallTimeout, ConnectionClosed) as exc:
        return JSONResponse({"error": str(exc)}, status_code=504)
    except ValidationError as exc:  # strict mode: the request would break the schema
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(result)


app = Starlette(
    routes=[
        Route("/stations", list_stations),
        Route("/stations/{identity}/config", station_config),
        Mount("/ocpp", app=ocpp),
    ],
    lifespan=ocpp.lifespan,
)


async def run(
    port: int = 9000,
    host: str = "127.0.0.1",
    *,
    shutdown: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown()`` returns (default: SIGINT or SIGTERM)."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    # ASGI has no pings: the stations' own pings keep the link alive.  Hypercorn
    # can ping too (config.websocket_ping_interval), but its ping task outlives
    # each WebSocket by up to one interval, holding shutdown up to graceful_timeout.

    async def shutdown_trigger() -> None:
        if shutdown is not None:
            await shutdown()
        else:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
        await ocpp.close()  # every station gets 1001 before Hypercorn stops

    await serve(app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)  # type: ignore[arg-type]


if __name__ == "__main__":
    trio.run(run)
