"""Typed handlers: ``ctx.params`` and the return value follow the action."""

from __future__ import annotations

from typing import Any, assert_type

from ocpp_trio import NOREPLY, HandlerContext, OCPPClient, OCPPConnection
from ocpp_trio.types import ActionHandler, NoReply, v16, v21, v201


def register(conn: OCPPConnection, client: OCPPClient) -> None:
    @conn.handle(v201.Reset)
    async def reset(ctx: HandlerContext[v201.ResetRequest]) -> v201.ResetResponse:
        assert_type(ctx.params, v201.ResetRequest)
        assert_type(ctx.params["type"], v201.ResetEnumType)
        assert_type(ctx.params.get("evseId"), int | None)
        return {"status": "Accepted"}

    assert_type(reset, ActionHandler[v201.ResetRequest, v201.ResetResponse])

    @conn.handle(v16.BootNotification)
    def boot(ctx: HandlerContext[v16.BootNotificationRequest]) -> v16.BootNotificationResponse:
        assert_type(ctx.params["chargePointVendor"], str)
        return {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300}

    @client.handle(v16.RemoteStartTransaction)
    def later(
        ctx: HandlerContext[v16.RemoteStartTransactionRequest],
    ) -> v16.RemoteStartTransactionResponse | NoReply:
        return NOREPLY

    # the (action, fn) form, with lambdas typed from the action
    conn.handle(v16.Heartbeat, lambda ctx: {"currentTime": "2024-01-01T00:00:00Z"})
    client.handle(v201.Heartbeat, lambda ctx: {"currentTime": ctx.connection.identity})

    def notify(ctx: HandlerContext[v21.NotifyPeriodicEventStreamRequest]) -> None:
        assert_type(ctx.params["data"], list[v21.StreamDataElementType])

    conn.handle(v21.NotifyPeriodicEventStream, notify)  # a SEND: the result is ignored

    # the string forms are untyped: HandlerContext is HandlerContext[dict[str, Any]]
    @conn.handle("Reset")
    def untyped(ctx: HandlerContext) -> dict[str, Any]:
        assert_type(ctx.params, dict[str, Any])
        return {"status": "Accepted"}

    conn.handle("ocpp1.6", "Heartbeat", lambda ctx: {"currentTime": "now"})

    @conn.handle()
    async def anything(ctx: HandlerContext) -> dict[str, Any]:
        return {}

    assert_type(conn.remove_handler(v201.Reset), bool)
    assert_type(client.remove_handler("ocpp1.6", "Heartbeat"), bool)
