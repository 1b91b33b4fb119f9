"""One CSMS instance of a test cluster: ``python instance.py REDIS_URL PREFIX NAME [--opt=value]``.

Listens on a free loopback port and prints ``READY <port>``.  Stations
connect as usual; a station whose identity starts with ``ctl`` is the test's
remote control: its calls ``CtlCall``, ``CtlPublish``, ``CtlBroadcasts``,
``CtlLocate`` run the cluster API on this instance and return the outcome
(errors as ``{"error": type name, "message": ...}``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import trio

from ocpp_trio import CallErrorReceived, OCPPConnection
from ocpp_trio.cluster import ClusterMessage, RedisAdapter
from ocpp_trio.server import OCPPServer


def outcome_of(exc: Exception) -> dict[str, Any]:
    out: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, CallErrorReceived):
        out["code"] = exc.code
    return out


async def main(redis_url: str, prefix: str, name: str, *opts: str) -> None:
    options = dict(opt.removeprefix("--").split("=", 1) for opt in opts)
    server = OCPPServer(
        None,
        ping_interval=0,
        duplicate_policy=options.get("policy", "replace"),  # type: ignore[arg-type]
    )
    server.set_adapter(
        RedisAdapter(
            redis_url,
            key_prefix=prefix,
            instance_id=name,
            presence_ttl=float(options.get("ttl", "1.5")),
            op_timeout=float(options.get("op-timeout", "1.0")),
        )
    )
    broadcasts: list[Any] = []
    server.subscribe("news", lambda m: broadcasts.append([m.instance, m.payload]))

    async def ctl_call(ctx: Any) -> dict[str, Any]:
        p = ctx.params
        try:
            args = [p["method"], p["params"]]
            if "protocol" in p:
                args.insert(0, p["protocol"])
            start = trio.current_time()
            result = await server.call_station(p["identity"], *args, timeout=p.get("timeout"))
            return {"ok": result, "elapsed": trio.current_time() - start}
        except Exception as exc:
            return outcome_of(exc) | {"elapsed": trio.current_time() - start}

    async def ctl_publish(ctx: Any) -> dict[str, Any]:
        try:
            await server.publish(ctx.params["channel"], ctx.params["payload"])
            return {"ok": True}
        except Exception as exc:
            return outcome_of(exc)

    async def ctl_locate(ctx: Any) -> dict[str, Any]:
        try:
            return {"ok": await server.locate_station(ctx.params["identity"])}
        except Exception as exc:
            return outcome_of(exc)

    def on_client(conn: OCPPConnection) -> None:
        if conn.identity.startswith("ctl"):
            conn.handle("CtlCall", ctl_call)
            conn.handle("CtlPublish", ctl_publish)
            conn.handle("CtlLocate", ctl_locate)
            conn.handle("CtlBroadcasts", lambda ctx: {"got": broadcasts})
            conn.handle("CtlClients", lambda ctx: {"clients": sorted(server.clients)})

    server.on("client", on_client)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.listen, 0, "127.0.0.1")
        print(f"READY {server.port}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _ = ClusterMessage
    trio.run(main, *sys.argv[1:])
