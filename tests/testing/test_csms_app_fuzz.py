"""The CLI's CSMS (``ocpp-trio serve``'s ``CSMSApp``) survives malformed frames.

Dogfooding ``malformed_frames()`` and ``open_raw_peer``: a raw station sends
batches of frames that break one framing rule each to the real CSMS handlers,
in strict mode, on every version.  Each frame must get exactly the answer its
version's specification asks for (or none), nothing may crash (no ``error``
event), and a Heartbeat sent after each frame must still be answered.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocpp_trio import ConnectionState
from ocpp_trio.cli._output import MessageLog
from ocpp_trio.cli._store import Store
from ocpp_trio.cli.serve import CSMSApp
from ocpp_trio.testing import open_raw_peer
from ocpp_trio.testing.strategies import PROTOCOLS, MalformedFrame, malformed_frames


@pytest.mark.parametrize("protocol", PROTOCOLS)
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_csms_app_survives_malformed_frames(protocol: str, data: Any) -> None:
    batch: list[MalformedFrame] = data.draw(
        st.lists(malformed_frames(protocol), min_size=1, max_size=6), label="frames"
    )
    store = Store()
    app = CSMSApp(store, MessageLog(None), inventory="none")
    errors: list[object] = []
    try:
        async with open_raw_peer(protocol, handler=app.on_station, strict_mode=True) as (
            peer,
            csms,
        ):
            csms.on("error", errors.append)
            for index, frame in enumerate(batch):
                await peer.send(frame.text)
                await peer.send(json.dumps([2, f"hb-{index}", "Heartbeat", {}]))
                expected = frame.expected_reply(protocol)
                if expected is not None:
                    reply = await peer.receive_json()
                    assert reply[:3] == [4, *expected], frame
                reply = await peer.receive_json()
                assert reply[:2] == [3, f"hb-{index}"], (frame, reply)
                assert set(reply[2]) == {"currentTime"}
            assert csms.state is ConnectionState.OPEN
            assert csms.bad_message_count == 0  # the Heartbeat reset the count
    finally:
        store.close()
    assert errors == []
