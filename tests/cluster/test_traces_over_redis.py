"""A call_station trace across two instances that share a real Redis."""

from __future__ import annotations

from ocpp_trio.cluster import RedisAdapter

from ..observability.test_telemetry import call_across
from .conftest import RedisServer


async def test_the_trace_context_travels_through_redis(
    redis_server: RedisServer, prefix: str
) -> None:
    _, inner = await call_across(
        [RedisAdapter(redis_server.url, key_prefix=prefix, instance_id=f"r{i}") for i in range(2)]
    )
    assert inner.parent is not None
    assert inner.parent.is_remote  # its parent came over the wire
