"""The race of the first CALL cannot be lost by the README's station or the simulator.

A CSMS may call a station the moment its connection opens.  The client
dispatches no CALL before ``open_ocpp_client`` has handed it to the body
(``test_client_first_calls.py``), so handlers registered at the top of the
body, as the README's station and ``ocpp-trio station`` register theirs,
answer the very first CALL.  Lost, the race shows as ``NotSupported`` (the
action is known, no handler yet).  Here a CSMS on loopback calls at once, in
its ``serve_ocpp`` handler, 200 times for each station code; every answer
must be a result.  (With the client's hold on early CALLs taken out, about
half of the 200 runs of each test get ``NotSupported``: the race is real and
these runs do meet it.)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from ocpp_trio import CallErrorReceived, OCPPConnection, OCPPServer, serve_ocpp
from ocpp_trio.cli._output import MessageLog
from ocpp_trio.cli._sim import StationOptions
from ocpp_trio.cli.station import make_station

RUNS = 200
README = Path(__file__).resolve().parent.parent / "README.md"

#: What the CSMS asks first, per protocol, and what the station code handles.
FIRST_CALLS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "readme": {
        "ocpp1.6": ("Reset", {"type": "Hard"}),
        "ocpp2.0.1": ("Reset", {"type": "Immediate"}),
    },
    "simulator": {
        "ocpp1.6": ("GetConfiguration", {"key": ["HeartbeatInterval"]}),
        "ocpp2.0.1": (
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            },
        ),
        "ocpp2.1": (
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            },
        ),
    },
}


class CallingCSMS:
    """A CSMS whose handler calls the station at once, before anything else, and records the outcome."""

    def __init__(self, calls: dict[str, tuple[str, dict[str, Any]]]) -> None:
        self.calls = calls
        self.outcomes: Counter[str] = Counter()
        self.answered: dict[str, trio.Event] = {}

    def expect(self, identity: str) -> trio.Event:
        event = self.answered[identity] = trio.Event()
        return event

    async def on_station(self, conn: OCPPConnection) -> None:
        # the CSMS's own handlers first (no await before them), then the call
        conn.handle(
            "BootNotification",
            lambda ctx: {
                "status": "Accepted",
                "currentTime": "2024-01-01T00:00:00Z",
                "interval": 300,
            },
        )
        conn.handle(lambda ctx: {} if ctx.method != "Heartbeat" else {"currentTime": "x"})
        method, params = self.calls[conn.protocol]
        try:
            await conn.call(method, params)
        except CallErrorReceived as exc:
            self.outcomes[exc.code] += 1
        else:
            self.outcomes["result"] += 1
        self.answered[conn.identity].set()


async def race(
    csms: CallingCSMS, station_for: Callable[[str, str], Callable[[], Awaitable[object]]]
) -> float:
    """``RUNS`` stations, one after the other, each called at once; returns the seconds taken."""
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        server: OCPPServer = await nursery.start(
            partial(serve_ocpp, csms.on_station, 0, host="127.0.0.1", ping_interval=0)
        )
        url = f"ws://127.0.0.1:{server.port}/ocpp"
        for run in range(RUNS):
            identity = f"CP{run}"
            answered = csms.expect(identity)
            with trio.fail_after(10):
                async with trio.open_nursery() as one:
                    one.start_soon(station_for(url, identity))
                    await answered.wait()
                    one.cancel_scope.cancel()
        server_close = server.close()
        await server_close
        nursery.cancel_scope.cancel()
    return trio.current_time() - started


def _readme_station() -> str:
    """The README's first station, as written, without its ``trio.run`` line."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## A charging station\n")
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match is not None
    return "\n".join(
        line for line in match.group(1).splitlines() if not line.startswith("trio.run(")
    )


@pytest.mark.parametrize("offered", [None, ["ocpp1.6"]])
async def test_the_readme_station_answers_a_csms_that_calls_at_once(
    offered: list[str] | None, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _readme_station()
    assert '@client.handle("Reset")' in source  # the handler the CSMS calls
    if offered is not None:  # the same code, offering 1.6 only
        source = source.replace('["ocpp2.0.1", "ocpp1.6"]', repr(offered))
    csms = CallingCSMS(FIRST_CALLS["readme"])

    def station_for(url: str, identity: str) -> Callable[[], Awaitable[object]]:
        code = source.replace("ws://127.0.0.1:9000/ocpp", url).replace('"CP001"', repr(identity))
        namespace: dict[str, Any] = {}
        exec(code, namespace)
        station: Callable[[], Awaitable[object]] = namespace["station"]
        return station

    seconds = await race(csms, station_for)
    capsys.readouterr()  # the station prints its boot status
    assert csms.outcomes == Counter({"result": RUNS}), csms.outcomes
    assert seconds < 60


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"])
async def test_the_simulator_answers_a_csms_that_calls_at_once(protocol: str) -> None:
    csms = CallingCSMS(FIRST_CALLS["simulator"])
    log = MessageLog()
    options = StationOptions(protocol=protocol, client_options={"ping_interval": 0})

    def station_for(url: str, identity: str) -> Callable[[], Awaitable[object]]:
        station = make_station(url, identity, options, log=log, printer=None)
        return station.run

    seconds = await race(csms, station_for)
    assert csms.outcomes == Counter({"result": RUNS}), csms.outcomes
    assert seconds < 60
