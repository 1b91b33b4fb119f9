"""Lines that must fail: each carries the mypy error code it must raise.

mypy runs with ``warn_unused_ignores`` (part of --strict) and pyright with
``reportUnnecessaryTypeIgnoreComment`` (the comment below), so a line that stops
failing fails the check.  Each statement stays on one line (hence ``fmt: off``):
both checkers match an ignore comment to the line the error is reported on.
"""
# pyright: reportUnnecessaryTypeIgnoreComment=true
# fmt: off

from __future__ import annotations

from ocpp_trio import HandlerContext, OCPPConnection
from ocpp_trio.types import v16, v21, v201


async def wrong_payloads(conn: OCPPConnection) -> None:
    # a wrong key
    await conn.call(v16.BootNotification({"chargePointVendor": "V", "chargePointModel": "M", "colour": "red"}))  # type: ignore[typeddict-unknown-key]
    # a missing key
    await conn.call(v16.BootNotification({"chargePointVendor": "V"}))  # type: ignore[typeddict-item]
    # a wrong enum literal
    await conn.call(v201.Reset({"type": "Hard"}))  # type: ignore[typeddict-item]
    # a wrong type in a nested object
    await conn.call(v201.BootNotification({"chargingStation": {"vendorName": "V", "model": 7}, "reason": "PowerUp"}))  # type: ignore[typeddict-item]
    # a SEND-only action has no response: call() refuses it
    await conn.call(v21.NotifyPeriodicEventStream({"id": 1, "pending": 0, "basetime": "t", "data": []}))  # type: ignore[call-overload]
    # and send() takes only SEND actions
    await conn.send(v21.Heartbeat({}))  # type: ignore[call-overload]


async def wrong_responses(conn: OCPPConnection) -> None:
    res = await conn.call(v16.Heartbeat({}))
    # a key the response does not have
    print(res["interval"])  # type: ignore[typeddict-item]
    # an action of another version: a 2.0.1 payload for the 1.6 action, and its result
    await conn.call(v16.BootNotification({"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"}))  # type: ignore[typeddict-item, typeddict-unknown-key]
    boot: v201.BootNotificationResponse = await conn.call(v16.BootNotification({"chargePointVendor": "V", "chargePointModel": "M"}))  # type: ignore[arg-type]
    print(boot)


def wrong_handlers(conn: OCPPConnection) -> None:
    # a handler returning the wrong shape
    @conn.handle(v201.Reset)  # type: ignore[arg-type]
    async def reset(ctx: HandlerContext[v201.ResetRequest]) -> v201.GetVariablesResponse:
        return {"getVariableResult": []}

    # a handler returning a bad enum literal
    @conn.handle(v201.Reset)
    def reset2(ctx: HandlerContext[v201.ResetRequest]) -> v201.ResetResponse:
        return {"status": "Done"}  # type: ignore[typeddict-item]

    # a handler missing a key of the response
    @conn.handle(v16.BootNotification)
    def boot(ctx: HandlerContext[v16.BootNotificationRequest]) -> v16.BootNotificationResponse:
        return {"status": "Accepted", "interval": 300}  # type: ignore[typeddict-item]

    # a handler of another version's action
    @conn.handle(v201.Reset)  # type: ignore[arg-type]
    def reset16(ctx: HandlerContext[v16.ResetRequest]) -> v16.ResetResponse:
        return {"status": "Accepted"}

    # a lambda with a wrong key (mypy names the whole callable for lambdas)
    conn.handle(v201.Reset, lambda ctx: {"state": "Accepted"})  # type: ignore[arg-type, return-value]

    # reading a key the request does not have
    @conn.handle(v201.Reset)
    def reads(ctx: HandlerContext[v201.ResetRequest]) -> v201.ResetResponse:
        print(ctx.params["connectorId"])  # type: ignore[typeddict-item]
        return {"status": "Accepted"}
