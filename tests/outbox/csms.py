"""A CSMS for the outbox tests: a real in-memory ``OCPPServer`` that can go away and come back.

It records every CALL it receives (action, payload, message id, virtual
time), answers the usual actions, assigns 1.6 transaction ids, and can be
scripted to answer an action with a CALLERROR or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from ocpp_trio import NOREPLY, HandlerContext, OCPPConnection, RPCGenericError
from ocpp_trio.testing import MemoryServer, open_memory_server

NOW = "2024-01-01T00:00:00Z"


@dataclass(frozen=True)
class Received:
    action: str
    payload: dict[str, Any]
    message_id: str
    at: float
    identity: str


class FlakyCSMS:
    """The server of the tests; ``up`` decides whether stations can connect."""

    def __init__(self) -> None:
        self.up = True
        self.received: list[Received] = []
        self.boot_answers: list[dict[str, Any]] = []  # answered in turn, then Accepted
        # action -> callable(payload) returning "error", "silent" or None (answer)
        self.faults: dict[str, Callable[[dict[str, Any]], str | None]] = {}
        self.next_transaction_id = 100
        self.server: MemoryServer | None = None
        self.connections = 0
        self.arrived = trio.Event()  # set on every CALL (then replaced)

    def actions(self) -> list[str]:
        return [r.action for r in self.received]

    def of(self, action: str) -> list[Received]:
        return [r for r in self.received if r.action == action]

    async def on_station(self, conn: OCPPConnection) -> None:
        self.connections += 1
        conn.handle(self._answer)

    def _answer(self, ctx: HandlerContext) -> Any:
        self.received.append(
            Received(
                ctx.method, dict(ctx.params), ctx.message_id, trio.current_time(), ctx.identity
            )
        )
        self.arrived.set()
        self.arrived = trio.Event()
        fault = self.faults.get(ctx.method)
        what = fault(ctx.params) if fault is not None else None
        if what == "error":
            raise RPCGenericError("cannot process this now")
        if what == "silent":
            return NOREPLY
        if what == "no-transaction-id":  # a CSMS that breaks the schema (strict mode off)
            return {"idTagInfo": {"status": "Accepted"}}
        match ctx.method:
            case "BootNotification":
                if self.boot_answers:
                    return self.boot_answers.pop(0)
                return {"status": "Accepted", "currentTime": NOW, "interval": 300}
            case "StartTransaction":
                self.next_transaction_id += 1
                return {
                    "transactionId": self.next_transaction_id,
                    "idTagInfo": {"status": "Accepted"},
                }
            case "StopTransaction":
                return {"idTagInfo": {"status": "Accepted"}}
            case "Authorize":
                if "idToken" in ctx.params:  # OCPP 2.x
                    return {"idTokenInfo": {"status": "Accepted"}}
                return {"idTagInfo": {"status": "Accepted"}}
            case "DataTransfer":
                return {"status": "Accepted"}
            case "Heartbeat":
                return {"currentTime": NOW}
            case "StatusNotification" | "MeterValues" | "TransactionEvent":
                return {}
            case _:
                return {}

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        if not self.up or self.server is None:
            raise OSError("connection refused (the CSMS is down)")
        return await self.server.open_stream(host, port)

    async def go_down(self) -> None:
        """Refuse new connections and drop the open ones (the network went away)."""
        self.up = False
        assert self.server is not None
        for conn in list(self.server.clients.values()):
            await conn.close(force=True)

    def come_back(self) -> None:
        self.up = True


@asynccontextmanager
async def open_csms(
    protocols: tuple[str, ...] = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1"), **server_options: Any
) -> AsyncIterator[FlakyCSMS]:
    csms = FlakyCSMS()
    server_options.setdefault("strict_mode", True)
    async with open_memory_server(csms.on_station, protocols=protocols, **server_options) as server:
        csms.server = server
        yield csms


def station_options(csms: FlakyCSMS, **extra: Any) -> dict[str, Any]:
    """``open_ocpp_client`` options for an in-memory station of ``csms``."""
    base: dict[str, Any] = {
        "open_stream": csms.open_stream,
        "ping_interval": 0,
        "backoff_min": 1,
        "backoff_max": 60,
        "backoff_jitter": 0,
        "retry_initial_connect": True,
    }
    base.update(extra)
    return base
