"""The examples run as written: served on free ports, used, and stopped."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from ocpp_trio import open_ocpp_client
from ocpp_trio.events import CloseEvent

from .helpers import EXAMPLES, http_request, load_example

README = Path(__file__).resolve().parents[2] / "README.md"
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "asgi.md"


async def test_side_by_side_serves_ocpp_and_http_in_one_nursery() -> None:
    module = load_example("side_by_side")
    stop = trio.Event()
    seen: list[CloseEvent] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            ocpp_port, http_port = await nursery.start(
                partial(module.run, 0, 0, shutdown=stop.wait)
            )
            async with open_ocpp_client(
                f"ws://127.0.0.1:{ocpp_port}/ocpp",
                identity="CP001",
                protocols=["ocpp1.6"],
                reconnect=False,
                ping_interval=0,
            ) as client:
                client.on("close", seen.append)
                boot = await client.call(
                    "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
                )
                assert boot["status"] == "Accepted"
                answer = await http_request(http_port, "/stations")
                assert answer.json() == {"CP001": "ocpp1.6"}
                stop.set()
                await client.wait_closed()
    assert [(e.code, e.by_peer) for e in seen] == [(1001, True)]


def test_the_asgi_guide_shows_the_starlette_example_as_it_is() -> None:
    """The guide includes the file itself (a snippet), so it cannot drift from it."""
    guide = GUIDE.read_text(encoding="utf-8")
    assert '```python\n--8<-- "examples/starlette_hypercorn.py"\n```' in guide
    assert (EXAMPLES / "starlette_hypercorn.py").is_file()
    assert "docs/guides/asgi.md" in README.read_text(encoding="utf-8")
