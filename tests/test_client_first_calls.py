"""Handlers registered at the top of ``async with open_ocpp_client(...)`` answer the first CALLs.

A CSMS may call a station the moment it connects; the CALL can even arrive
in the same TCP segment as the ``101``.  The client dispatches no CALL before
``open_ocpp_client`` has handed it to the body, and the body runs without a
checkpoint until its first ``await``: handlers registered there are in place.
"""

from __future__ import annotations

import json
from functools import partial

import trio
from websockets.frames import Opcode
from websockets.server import ServerProtocol

from ocpp_trio import open_ocpp_client

CALL = [2, "first", "GetConfiguration", {"key": ["HeartbeatInterval"]}]


async def csms_calling_with_the_101(
    answers: list[object],
    answered: trio.Event,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept one station; send the 101 and a CALL in one write; collect its answer."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    stream = await listeners[0].accept()
    async with stream:
        proto = ServerProtocol(select_subprotocol=lambda _proto, offered: offered[0])
        while True:
            proto.receive_data(await stream.receive_some())
            events = proto.events_received()
            if events:
                break
        proto.send_response(proto.accept(events[0]))
        proto.send_text(json.dumps(CALL).encode())
        await stream.send_all(b"".join(proto.data_to_send()))  # one segment: 101 + CALL
        while not answers:
            proto.receive_data(await stream.receive_some())
            for event in proto.events_received():
                if event.opcode is Opcode.TEXT:
                    answers.append(json.loads(event.data))
                    answered.set()
    for listener in listeners:
        await listener.aclose()


async def test_a_call_that_comes_with_the_101_finds_the_handlers_of_the_body() -> None:
    answers: list[object] = []
    answered = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(csms_calling_with_the_101, answers, answered))
            async with open_ocpp_client(
                f"ws://127.0.0.1:{port}/ocpp",
                identity="CP1",
                protocols=["ocpp1.6"],
                reconnect=False,
                ping_interval=0,
            ) as client:
                # Registered at the top of the body, before its first await.
                client.handle(
                    "GetConfiguration",
                    lambda ctx: {
                        "configurationKey": [
                            {"key": "HeartbeatInterval", "readonly": False, "value": "60"}
                        ]
                    },
                )
                await answered.wait()
    assert answers == [
        [
            3,
            "first",
            {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]},
        ]
    ]
