"""A loopback TCP proxy that injects faults: drop, delay, stall, truncate.

Each accepted connection is paired with a connection to the target and gets
one fault, chosen by the proxy's ``plan`` (a callable of the connection
number; the default cycles through every kind so each happens early):

- ``pass``: bytes go through untouched;
- ``delay``: every chunk, in both directions, waits ``delay`` seconds;
- ``drop``: after ``after`` seconds both sides are closed at once (a call
  cut mid-flight, a mobile network gone);
- ``stall``: after ``after`` seconds nothing goes through any more, but both
  sockets stay open for ``hold`` seconds (a half-open peer: only pings can
  tell);
- ``truncate``: after ``after`` seconds, the next chunk (either direction)
  goes through cut in half, then both sides close (a frame cut in two).

Run it alone (``python soak/proxy.py 9000 --listen 9100``) or use
:class:`FaultProxy` in a Trio program.
"""

from __future__ import annotations

import argparse
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio

KINDS: Final = ("pass", "delay", "drop", "stall", "truncate")


@dataclass(frozen=True, slots=True)
class Fault:
    """What happens to one proxied connection."""

    kind: str = "pass"
    after: float = 2.0
    delay: float = 0.05
    hold: float = 10.0


def cycling_plan(
    rng: random.Random, *, after: tuple[float, float] = (1.0, 6.0)
) -> Callable[[int], Fault]:
    """Every kind in turn, with random timings (``after`` seconds is drawn in the range)."""
    kinds = itertools.cycle(KINDS)

    def plan(number: int) -> Fault:
        kind = next(kinds)
        return Fault(kind=kind, after=rng.uniform(*after), delay=rng.uniform(0.01, 0.2))

    return plan


class FaultProxy:
    """Forwards loopback TCP connections to ``target_port``, each with a :class:`Fault`."""

    def __init__(
        self,
        target_port: int,
        *,
        target_host: str = "127.0.0.1",
        plan: Callable[[int], Fault] | None = None,
        seed: int = 0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.plan = plan or cycling_plan(random.Random(seed))
        self.port = 0
        #: how many connections got each fault kind
        self.applied: Counter[str] = Counter()
        #: how many faults actually fired (a drop after the peer left does not)
        self.fired: Counter[str] = Counter()
        self.refused = 0
        self._numbers = itertools.count()

    async def serve(
        self, port: int = 0, *, task_status: trio.TaskStatus[FaultProxy] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on 127.0.0.1:``port`` and proxy until cancelled."""
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self)

    async def _handle(self, down: trio.SocketStream) -> None:
        fault = self.plan(next(self._numbers))
        try:
            up = await trio.open_tcp_stream(self.target_host, self.target_port)
        except OSError:
            self.refused += 1  # the target is down (a restart): the client sees a reset
            await trio.aclose_forcefully(down)
            return
        self.applied[fault.kind] += 1
        stalled = trio.Event()
        truncate = [False]
        try:
            async with trio.open_nursery() as nursery:  # ends when a side closes or the fault fires

                async def pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
                    try:
                        while data := await src.receive_some(65536):
                            if stalled.is_set():
                                await trio.sleep_forever()
                            if fault.kind == "delay":
                                await trio.sleep(fault.delay)
                            if truncate[0]:
                                self.fired["truncate"] += 1
                                await dst.send_all(data[: max(1, len(data) // 2)])
                                break
                            await dst.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    nursery.cancel_scope.cancel()

                async def control() -> None:
                    if fault.kind in ("pass", "delay"):
                        return
                    await trio.sleep(fault.after)
                    if fault.kind == "drop":
                        self.fired["drop"] += 1
                        nursery.cancel_scope.cancel()
                    elif fault.kind == "stall":
                        self.fired["stall"] += 1
                        stalled.set()
                        await trio.sleep(fault.hold)
                        nursery.cancel_scope.cancel()
                    else:
                        truncate[0] = True
                        await trio.sleep(fault.hold)  # no traffic to cut: drop instead
                        nursery.cancel_scope.cancel()

                nursery.start_soon(pump, down, up)
                nursery.start_soon(pump, up, down)
                nursery.start_soon(control)
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(up)
                await trio.aclose_forcefully(down)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("target_port", type=int)
    parser.add_argument("--listen", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    async def run() -> None:
        proxy = FaultProxy(args.target_port, seed=args.seed)
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve, args.listen)
            print(f"proxy on 127.0.0.1:{proxy.port} -> {args.target_port}", flush=True)

    trio.run(run)


if __name__ == "__main__":
    main()
