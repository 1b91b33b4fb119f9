"""A call_station trace across two instances that share a real Redis."""

from __future__ import annotations

from typing import Any

import trio

from ocpp_trio import open_ocpp_client
from ocpp_trio.cluster import RedisAdapter
from ocpp_trio.routing import HandlerContext
from ocpp_trio.server import OCPPServer

from ..observability.test_telemetry import Sink
from .conftest import RedisServer

TIMEOUT = 15.0


async def test_the_trace_context_travels_through_redis(
    redis_server: RedisServer, prefix: str
) -> None:
    sinks = [Sink(), Sink()]
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            servers = []
            for i, sink in enumerate(sinks):
                server = OCPPServer(None, ping_interval=0, telemetry=sink.telemetry)
                server.set_adapter(
                    RedisAdapter(redis_server.url, key_prefix=prefix, instance_id=f"r{i}")
                )
                await nursery.start(server.listen, 0, "127.0.0.1")
                servers.append(server)
            a, b = servers
            async with open_ocpp_client(
                f"ws://127.0.0.1:{b.port}/ocpp",
                identity="CP-R",
                protocols=["ocpp1.6"],
                reconnect=False,
                ping_interval=0,
            ) as station:

                @station.handle("Reset")
                def reset(ctx: HandlerContext) -> dict[str, Any]:
                    return {"status": "Accepted"}

                for _ in range(200):  # presence reaches a through Redis
                    if await a.locate_station("CP-R") is not None:
                        break
                    await trio.sleep(0.05)
                assert await a.call_station("CP-R", "Reset", {"type": "Soft"}) == {
                    "status": "Accepted"
                }
            for server in servers:
                await server.close()
    (outer,) = sinks[0].spans("call_station/Reset")
    (inner,) = sinks[1].spans("ocpp1.6/Reset")
    assert outer.context is not None
    assert inner.context is not None
    assert inner.context.trace_id == outer.context.trace_id
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert inner.parent.is_remote
