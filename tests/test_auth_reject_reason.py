"""``AuthReject(reason=...)``: the server's log and event say why, the station is told nothing more."""

from __future__ import annotations

import logging

import pytest

from ocpp_trio import AuthReject, HandshakeRejected, HandshakeRequest
from ocpp_trio.server import HandshakeRejectedEvent
from ocpp_trio.testing import open_memory_server


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (
            AuthReject(403, reason="station blocked by the operator"),
            "station blocked by the operator",
        ),
        (AuthReject(401), "refused by the auth callback"),
        (False, "refused by the auth callback"),
    ],
)
async def test_the_reason_reaches_the_event_not_the_station(
    verdict: AuthReject | bool, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    def auth(request: HandshakeRequest) -> AuthReject | bool:
        return verdict

    events: list[HandshakeRejectedEvent] = []
    caplog.set_level(logging.INFO, logger="ocpp_trio")
    async with open_memory_server(auth=auth) as srv:
        srv.server.on("handshake_rejected", events.append)
        with pytest.raises(HandshakeRejected) as info:
            async with srv.connect("CP1", reconnect=False):
                pass  # pragma: no cover
    status = verdict.status if isinstance(verdict, AuthReject) else 401
    assert info.value.status_code == status
    assert "operator" not in str(info.value)
    [event] = events
    assert event.status == status
    assert event.identity == "CP1"
    assert event.reason.startswith("refused by the auth callback")
    assert event.reason.endswith(expected)
    assert expected in caplog.text
