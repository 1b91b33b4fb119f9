"""Strict mode's validators are built before a client or server reports itself started.

The reader never compiles a schema: a server builds every validator of its
protocols before ``task_status.started``; a client builds the negotiated
protocol's before its connection runs (and before ``open_ocpp_client`` hands
it over).  Fresh validators from ``create_validator`` (nothing compiled yet)
show it; the built-in ones are shared by the whole process.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio

from ocpp_trio import (
    OCPPConnection,
    ValidationError,
    create_validator,
    open_ocpp_client,
    serve_ocpp,
)

VENDOR = "vendor1.0"

SCHEMAS: dict[str, Any] = {
    "Hello": {
        "request": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 5}},
            "required": ["name"],
            "additionalProperties": False,
        },
        "response": {
            "type": "object",
            "properties": {"greeting": {"type": "string"}},
            "required": ["greeting"],
        },
    },
    "Bye": {"request": {"type": "object"}, "response": {"type": "object"}},
}


async def on_station(conn: OCPPConnection) -> None:
    conn.handle("Hello", lambda ctx: {"greeting": "hi " + ctx.params["name"]})
    await trio.sleep_forever()


async def test_a_server_builds_its_validators_before_it_reports_started() -> None:
    validator = create_validator(VENDOR, SCHEMAS)
    assert not validator.compiled
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_ocpp,
                on_station,
                0,
                host="127.0.0.1",
                protocols=[VENDOR],
                strict_mode_validators=[validator],
                ping_interval=0,
            )
        )
        assert validator.compiled
        await server.close()
        nursery.cancel_scope.cancel()


async def test_a_client_builds_the_negotiated_protocols_validators_before_it_runs() -> None:
    server_side = create_validator(VENDOR, SCHEMAS)
    station_side = create_validator(VENDOR, SCHEMAS)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_ocpp,
                on_station,
                0,
                host="127.0.0.1",
                protocols=[VENDOR],
                strict_mode_validators=[server_side],
                ping_interval=0,
            )
        )
        assert not station_side.compiled
        async with open_ocpp_client(
            f"ws://127.0.0.1:{server.port}/ocpp",
            identity="CP1",
            protocols=[VENDOR],
            strict_mode_validators=[station_side],
            ping_interval=0,
        ) as client:
            assert station_side.compiled
            assert await client.call("Hello", {"name": "Ann"}) == {"greeting": "hi Ann"}
            with pytest.raises(ValidationError):
                await client.call("Hello", {"name": "Annabel"})  # refused before it is sent
        await server.close()
        nursery.cancel_scope.cancel()


async def test_a_broken_custom_schema_fails_the_start_not_a_message() -> None:
    broken = create_validator(VENDOR, {"Hello": {"request": {"type": "no-such-type"}}})
    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="cannot be compiled"):
            await nursery.start(
                partial(
                    serve_ocpp,
                    on_station,
                    0,
                    host="127.0.0.1",
                    protocols=[VENDOR],
                    strict_mode_validators=[broken],
                    ping_interval=0,
                )
            )
