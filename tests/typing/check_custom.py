"""A vendor protocol described with the user's own TypedDicts gets the same typing."""
# pyright: reportUnnecessaryTypeIgnoreComment=true

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict, assert_type

from ocpp_trio import HandlerContext, OCPPConnection
from ocpp_trio.types import (
    PROTOCOLS,
    Action,
    Message,
    OCPPProtocol,
    SendAction,
    actions,
    get_action,
    request_type,
    response_type,
    v201,
)


class UnlockRequest(TypedDict):
    bay: int
    reason: NotRequired[Literal["Service", "Customer"]]


class UnlockResponse(TypedDict):
    status: Literal["Unlocked", "Failed"]


class Unlock(Action[UnlockRequest, UnlockResponse]):
    protocol = "acme1.0"
    action = "Unlock"


class DoorEventRequest(TypedDict):
    open: bool


class DoorEvent(SendAction[DoorEventRequest]):
    protocol = "acme1.0"
    action = "DoorEvent"


async def use(conn: OCPPConnection) -> None:
    res = await conn.call(Unlock({"bay": 3}))
    assert_type(res, UnlockResponse)
    await conn.send(DoorEvent({"open": True}))
    await conn.call(Unlock({"bay": "3"}))  # type: ignore[typeddict-item]

    @conn.handle(Unlock)
    def unlock(ctx: HandlerContext[UnlockRequest]) -> UnlockResponse:
        assert_type(ctx.params["bay"], int)
        return {"status": "Unlocked"}


async def generic_code(conn: OCPPConnection, entry: type[Action[Any, Any]]) -> None:
    """Users' own generic helpers: a typed call through a registry entry."""
    assert_type(await conn.call(entry({})), Any)
    protocol: OCPPProtocol = PROTOCOLS[0]
    table = actions(protocol)
    assert_type(table["Reset"], type[Action[Any, Any]] | type[SendAction[Any]])
    assert_type(get_action("ocpp2.0.1", "Reset"), type[Action[Any, Any]] | type[SendAction[Any]])
    assert_type(request_type(v201.Reset), type[Any])
    assert_type(response_type(v201.Reset), type[Any] | None)
    assert_type(v201.ACTIONS, dict[str, type[Action[Any, Any]] | type[SendAction[Any]]])
    name: v201.ActionName = "Reset"
    bad: v201.ActionName = "Rest"  # type: ignore[assignment]
    assert isinstance(Unlock({"bay": 1}), Message)
    print(name, bad)
