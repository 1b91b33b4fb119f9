"""Quiet logs: a peer can neither flood our logs nor forge lines in them.

Every event still fires for every occurrence; only log lines are limited
(per connection and cause: ``LOG_BURST`` lines, then one line per
``LOG_INTERVAL`` with the count left out), and peer-chosen text in them is
escaped (``log_safe``).  Time is virtual (``autojump_clock``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import trio

from ocpp_trio import CallErrorReceived, OCPPConnection
from ocpp_trio._rpc.logsafe import LOG_BURST, LOG_INTERVAL, QuietLog, log_safe
from ocpp_trio.events import BadMessageEvent, LimitEvent
from ocpp_trio.testing import open_memory_pair, open_raw_peer

LOGGER = "ocpp_trio.connection"
NOW = {"currentTime": "2026-01-01T00:00:00Z"}


def _lines(caplog: pytest.LogCaptureFixture, pattern: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if re.search(pattern, r.getMessage())]


# --- log_safe ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("CP001", "CP001"),
        ("Ladesäule-7 東京", "Ladesäule-7 東京"),  # any script, and the space, stay
        ("CP\u202e1", "CP\\u202e1"),  # RIGHT-TO-LEFT OVERRIDE
        ("a\nb\r\tc", "a\\nb\\r\\tc"),
        ("\x1b[31mred", "\\x1b[31mred"),  # an ANSI escape
        ("\x85\u2028\u2029", "\\x85\\u2028\\u2029"),  # NEL, line and paragraph separators
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
        ("\ud800", "\\ud800"),  # a lone surrogate
        ("\U000e0041tag", "\\U000e0041tag"),  # a TAG character (format, invisible)
        ("back\\slash", "back\\\\slash"),  # so an escape cannot be forged
        ("a\u00a0b", "a\\xa0b"),  # NO-BREAK SPACE: looks like a space, is not one
    ],
)
def test_log_safe_escapes_what_could_forge_a_line(text: str, safe: str) -> None:
    assert log_safe(text) == safe


def test_log_safe_returns_clean_text_as_it_is() -> None:
    text = "CP001-Ladesäule"
    assert log_safe(text) is text


def test_log_safe_cuts_before_escaping_and_says_how_much() -> None:
    assert log_safe("ab\ncd", limit=3) == "ab\\n...(2 more)"
    assert log_safe("abc", limit=3) == "abc"


def test_log_safe_takes_anything() -> None:
    assert log_safe(ValueError("bad\nline")) == "bad\\nline"
    assert log_safe(b"x\n") == "b'x\\\\n'"  # str() of bytes is already escaped; \\ doubled


# --- QuietLog, alone ------------------------------------------------------------------


async def test_quiet_log_gives_a_burst_then_one_line_per_interval(
    caplog: pytest.LogCaptureFixture, autojump_clock: Any
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    quiet = QuietLog(logging.getLogger(LOGGER), "CP\n1", burst=3, interval=60)
    for n in range(10):
        quiet.log("bad_message", logging.WARNING, "bad message %d", n)
    assert _lines(caplog, "bad message") == [
        "CP\\n1: bad message 0",
        "CP\\n1: bad message 1",
        "CP\\n1: bad message 2",
    ]
    caplog.clear()
    for _ in range(3):  # 30 s apart: never quiet for a whole interval
        await trio.sleep(30)
        quiet.log("bad_message", logging.WARNING, "bad message %d", 99)
    assert _lines(caplog, "bad message") == [
        "CP\\n1: bad message 99 (8 more like this in the last 60 s were not logged)"
    ]
    caplog.clear()
    await trio.sleep(60)  # quiet for an interval: what is left out is counted, the budget is back
    quiet.log("bad_message", logging.WARNING, "bad message %d", 100)
    assert _lines(caplog, "bad") == [
        "CP\\n1: 1 bad_message line(s) in the last 60 s were not logged",
        "CP\\n1: bad message 100",
    ]


async def test_quiet_log_keeps_causes_apart_and_flushes_the_counts(
    caplog: pytest.LogCaptureFixture, autojump_clock: Any
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    quiet = QuietLog(logging.getLogger(LOGGER), "CP1", burst=1, interval=60)
    for _ in range(4):
        quiet.log("limit:a", logging.INFO, "a reached")
        quiet.log("limit:b", logging.INFO, "b reached")
    assert _lines(caplog, "reached") == ["CP1: a reached", "CP1: b reached"]
    await trio.sleep(5)
    quiet.flush()
    assert _lines(caplog, "not logged") == [
        "CP1: 3 limit:a line(s) in the last 5 s were not logged",
        "CP1: 3 limit:b line(s) in the last 5 s were not logged",
    ]
    caplog.clear()
    quiet.flush()
    assert caplog.records == []


async def test_quiet_log_costs_nothing_below_the_level(
    caplog: pytest.LogCaptureFixture, autojump_clock: Any
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    quiet = QuietLog(logging.getLogger(LOGGER), "CP1", burst=1)
    for _ in range(5):
        quiet.log("limit:x", logging.INFO, "x reached")
    quiet.flush()
    assert caplog.records == []


# --- on a connection -----------------------------------------------------------------------


async def test_a_flood_of_bad_frames_logs_a_few_lines_and_every_event(
    caplog: pytest.LogCaptureFixture, autojump_clock: Any
) -> None:
    """One bad frame a second for 100 s: 5 lines, one summary a minute, a count at the close."""
    caplog.set_level(logging.INFO, LOGGER)
    bad: list[BadMessageEvent] = []
    async with open_raw_peer("ocpp1.6", handler=lambda c: c.on("bad_message", bad.append)) as (
        peer,
        _conn,
    ):
        for _ in range(100):
            await peer.send("not json")
            await peer.receive()
            await trio.sleep(1)
        assert len(bad) == 100  # every one reported
    # The frame's outline, never its text (a bad frame may hold a secret): "? ?".
    line = "CP001: bad message (FormationViolation: message is not valid JSON), %d in a row: '? ?'"
    assert _lines(caplog, "bad") == [
        *(line % n for n in range(1, LOG_BURST + 1)),
        line % 66 + " (60 more like this in the last 60 s were not logged)",
        "CP001: 34 bad_message line(s) in the last 34 s were not logged",  # at the close
    ]
    assert LOG_BURST == 5
    assert LOG_INTERVAL == 60


async def test_a_flood_over_the_rate_logs_a_few_lines_and_every_event(
    caplog: pytest.LogCaptureFixture, autojump_clock: Any
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    limits: list[LimitEvent] = []

    def install(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", lambda ctx: NOW)
        conn.on("limit", limits.append)

    async with open_raw_peer(
        "ocpp2.0.1", handler=install, max_inbound_call_rate=1, inbound_call_burst=1
    ) as (peer, _conn):
        replies = [await peer.call("Heartbeat", {}) for _ in range(50)]
    assert [r[0] for r in replies] == [3] + [4] * 49
    assert len(limits) == 49
    assert len(_lines(caplog, "max_inbound_call_rate reached")) == LOG_BURST


async def test_handler_crashes_are_limited_too(
    caplog: pytest.LogCaptureFixture, autojump_clock: Any
) -> None:
    caplog.set_level(logging.INFO, LOGGER)

    def crash(ctx: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    async with open_raw_peer("ocpp1.6", handler=lambda c: c.handle("Heartbeat", crash)) as (
        peer,
        _conn,
    ):
        replies = [await peer.call("Heartbeat", {}) for _ in range(20)]
    assert {r[2] for r in replies} == {"InternalError"}
    crashes = [r for r in caplog.records if "raised RuntimeError" in r.getMessage()]
    assert len(crashes) == LOG_BURST
    assert all(r.exc_info is not None for r in crashes)  # each logged one has its traceback
    assert crashes[0].filename == "inbound.py"  # the record names the caller, not logsafe.py


async def test_an_identity_cannot_forge_log_lines(
    caplog: pytest.LogCaptureFixture, autojump_clock: Any
) -> None:
    """Every line of a connection starts with its identity escaped, frames included."""
    caplog.set_level(logging.DEBUG, LOGGER)
    identity = "CP\u202e1\n2026-01-01 CRITICAL forged"

    def crash(ctx: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    async with open_memory_pair(
        "ocpp1.6",
        identity=identity,
        csms_options={"max_inbound_call_rate": 1, "inbound_call_burst": 1},
    ) as (station, csms):
        csms.handle(crash)
        for _ in range(2):  # a crash, then the rate limit
            with pytest.raises(CallErrorReceived):
                await station.call("Heart\u2028beat", {"k": "\x1b[2J"})
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 6  # 4 frames, a crash, a limit
    for line in lines:
        assert re.match(r"CP\\u202e1\\n2026-01-01 CRITICAL forged(: | > | < )", line), line
        assert not any(c in line for c in "\n\u202e\u2028\x1b"), line
    # The frame as sent (JSON writes ESC as \u001b, U+2028 as it is), escaped for the log.
    assert lines[0].endswith('"Heart\\u2028beat",{"k":"\\\\u001b[2J"}]')
    assert any(line.endswith("handler for Heart\\u2028beat raised RuntimeError") for line in lines)


async def test_a_crashing_handler_for_a_forged_action_is_logged_escaped(
    caplog: pytest.LogCaptureFixture, autojump_clock: Any
) -> None:
    caplog.set_level(logging.INFO, LOGGER)

    def crash(ctx: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    async with open_raw_peer("ocpp1.6", handler=lambda c: c.handle(crash)) as (peer, _conn):
        reply = await peer.call("Evil\n\u202eAction", {})
    assert reply[2] == "InternalError"
    assert _lines(caplog, "raised") == [
        "CP001: handler for Evil\\n\\u202eAction raised RuntimeError"
    ]
