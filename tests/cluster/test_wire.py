"""Errors crossing instances keep what the peer said, a malformed CALLERROR included."""

from __future__ import annotations

import json

import pytest

from ocpp_trio import CallErrorReceived
from ocpp_trio.cluster._wire import decode, encode_error


def across(exc: BaseException) -> BaseException:
    """``exc`` encoded, sent as JSON text and decoded, as one instance answers another."""
    answer = json.loads(json.dumps(encode_error(exc)))
    with pytest.raises(BaseException) as info:
        decode(answer)
    return info.value


def test_a_call_error_crosses_unchanged() -> None:
    got = across(CallErrorReceived("NotSupported", "no", {"k": 1}, action="Reset"))
    assert isinstance(got, CallErrorReceived)
    assert (got.code, got.description, got.details, got.action) == (
        "NotSupported",
        "no",
        {"k": 1},
        "Reset",
    )
    assert (got.raw_details, got.malformed) == ({"k": 1}, False)


def test_a_malformed_call_error_keeps_its_raw_details() -> None:
    raw = [{"path": ".connectorId", "message": "must be integer"}]
    sent = CallErrorReceived(
        "FormationViolation", "bad", {}, action="Reset", raw_details=raw, malformed=True
    )
    got = across(sent)
    assert isinstance(got, CallErrorReceived)
    assert (got.code, got.description, got.details) == ("FormationViolation", "bad", {})
    assert (got.raw_details, got.malformed) == (raw, True)
