"""The server's log under a flood of refused handshakes: a few lines per cause, then counts."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from ocpp_trio import HandshakeRejected
from ocpp_trio._rpc.logsafe import LOG_BURST, LOG_INTERVAL
from ocpp_trio.testing import open_memory_server


async def test_refused_handshakes_are_logged_a_few_per_cause(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ocpp_trio.server")
    causes: list[str] = []

    async def attempt(srv: object, identity: str) -> None:
        with pytest.raises(HandshakeRejected):
            async with srv.connect(identity, reconnect=False):  # type: ignore[attr-defined]
                pass

    async with open_memory_server(None, auth=lambda request: request.identity == "OK") as srv:
        srv.server.on("handshake_rejected", lambda event: causes.append(event.cause))
        for _ in range(40):
            await attempt(srv, "WRONG")
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == LOG_BURST  # then quiet: counted, not logged
        await trio.sleep(LOG_INTERVAL + 1)
        await attempt(srv, "WRONG")
        summary = [r for r in caplog.records if "were not logged" in r.getMessage()]
        assert summary, [r.getMessage() for r in caplog.records]
        assert "35 " in summary[0].getMessage()
        # another cause has its own budget
        caplog.clear()
        await attempt(srv, "x" * 49)  # longer than an identity may be
        assert any("refused with HTTP 400" in r.getMessage() for r in caplog.records), [
            r.getMessage() for r in caplog.records
        ]
    # every attempt is an event (and a metric), whatever the log left out
    assert causes.count("unauthorized") == 41
    assert causes[-1] == "bad_request"


async def test_a_station_logs_its_connection_s_life_at_info(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ocpp_trio")
    async with (
        open_memory_server(None) as srv,
        srv.connect("CP1", backoff_min=1, backoff_max=1),
    ):
        await srv.server.clients["CP1"].close(4000, "maintenance")
        await trio.sleep(5)  # reconnects
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records if "CP1" in r.getMessage()]
    client = [(level, text) for name, level, text in lines if name == "ocpp_trio.client"]
    assert (logging.INFO, "CP1: disconnected (4000: maintenance)") in client
    connected = [text for level, text in client if "connected to" in text and level == logging.INFO]
    assert len(connected) == 2  # the first connection and the reconnection
    assert all(text.endswith("(ocpp1.6)") for text in connected)
    assert not [line for line in lines if line[1] >= logging.WARNING]


async def test_the_connection_s_own_frame_lines_mask_secrets_without_a_frame_log(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    from ocpp_trio.testing import open_memory_pair

    caplog.set_level(logging.DEBUG, logger="ocpp_trio")
    secret = "S3cretAuthKey-0042"
    async with open_memory_pair("ocpp1.6") as (station, csms):
        station.handle("ChangeConfiguration")(lambda ctx: {"status": "Accepted"})
        await csms.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": secret})
        await csms.call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "300"})
        # a cut-off frame: not JSON, so shown as its outline
        await station.send_raw(f'[2,"x","Authorize",{{"idTag":"{secret}"')
        await trio.sleep(1)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert secret not in text
    assert '"HeartbeatInterval","value":"300"' in text  # the rest as it was
    assert '[2,"?","?",{"idTag":"?"' in text
