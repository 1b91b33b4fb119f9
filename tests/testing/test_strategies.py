"""The framing strategies, and the payload strategies end to end over a connection.

The validator-level properties of ``payloads`` / ``invalid_payloads`` (every
valid payload passes ours and the reference ``jsonschema``; every invalid one
fails both with the class it claims; all actions of all three versions) are
``tests/core/test_validation_differential.py``, which draws from these same
strategies.  Here: the framing strategies against the sans-IO core, and the
payload strategies through a strict connection, over the wire.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from ocpp_trio._core.errors import RPCError
from ocpp_trio._core.frames import Call, CallResult, Send, decode, encode
from ocpp_trio._core.protocol import TYPES_BY_PROTOCOL, BadMessage, Role, RPCProtocol
from ocpp_trio._core.validation import get_validator
from ocpp_trio.testing import open_raw_peer
from ocpp_trio.testing.strategies import (
    PROTOCOLS,
    MalformedFrame,
    frames,
    invalid_payloads,
    malformed_frames,
    message_ids,
    payloads,
)

FAST = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

#: Each version's spelling of the canonical (2.x) codes the strategies claim.
SPELLING_16 = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
}


def spelled(error: type[RPCError], protocol: str) -> str:
    code = str(error.code)
    return SPELLING_16.get(code, code) if protocol == "ocpp1.6" else code


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_frames_decode_and_carry_valid_payloads(protocol: str) -> None:
    validator = get_validator(protocol)

    @FAST
    @given(frames(protocol))
    def check(text: str) -> None:
        frame = decode(text, allowed_types=TYPES_BY_PROTOCOL[protocol])
        assert decode(encode(frame)) == frame
        if isinstance(frame, Call | Send):
            validator.validate(frame.action, "request", frame.payload)

    check()


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_frames_cover_every_message_type_of_the_protocol(protocol: str) -> None:
    # A search per type, not a tally over a random sample (which missed a
    # type now and then: a flaky test).
    for message_type in TYPES_BY_PROTOCOL[protocol]:
        text = find(frames(protocol), lambda t, m=message_type: json.loads(t)[0] == m)
        assert json.loads(text)[0] == message_type


def test_frames_can_be_narrowed() -> None:
    @FAST
    @given(frames("ocpp2.1", types=[6]), frames("ocpp1.6", types=[3], actions=["Heartbeat"]))
    def check(send: str, result: str) -> None:
        assert isinstance(decode(send), Send)
        frame = decode(result)
        assert isinstance(frame, CallResult)
        get_validator("ocpp1.6").validate("Heartbeat", "response", frame.payload)

    check()
    with pytest.raises(ValueError, match="unknown protocol"):
        frames("ocpp9")
    with pytest.raises(ValueError, match="defines message types"):
        frames("ocpp1.6", types=[5])
    with pytest.raises(ValueError, match=r"no ocpp1\.6 frame"):
        frames("ocpp1.6", types=[2], actions=["NoSuchAction"])
    with pytest.raises(ValueError, match="unknown protocol"):
        malformed_frames("ocpp9")


@FAST
@given(message_ids())
def test_message_ids_are_valid(message_id: str) -> None:
    assert 1 <= len(message_id) <= 36


@pytest.mark.parametrize("scope", [None, *PROTOCOLS], ids=["all", *PROTOCOLS])
def test_malformed_frames_get_the_answer_they_claim_from_the_core(scope: str | None) -> None:
    """The sans-IO core answers each drawn frame as the frame's table says, per version."""
    protocols = PROTOCOLS if scope is None else (scope,)

    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(malformed_frames(scope))
    def check(frame: MalformedFrame) -> None:
        for protocol in protocols:
            event = RPCProtocol(protocol=protocol, role=Role.SERVER).receive(frame.text)
            assert isinstance(event, BadMessage), (protocol, frame)
            expected = frame.expected_reply(protocol)
            if expected is None:
                assert event.reply is None, (protocol, frame)
            else:
                reply = json.loads(event.reply or "null")
                assert reply[:3] == [4, *expected], (protocol, frame, event.reply)

    check()


def test_malformed_frame_replies_name_every_version() -> None:
    @FAST
    @given(malformed_frames())
    def check(frame: MalformedFrame) -> None:
        assert set(frame.replies) == set(PROTOCOLS)
        assert frame.rule

    check()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_invalid_payloads_get_their_code_over_the_wire(protocol: str, data: Any) -> None:
    """A strict CSMS answers a CALL carrying an invalid payload with the claimed code."""
    actions = sorted(get_validator(protocol).actions - get_validator(protocol).send_only_actions)
    action = data.draw(st.sampled_from(actions), label="action")
    payload, error = data.draw(invalid_payloads(protocol, action), label="payload")

    def setup(conn: Any) -> None:
        conn.handle(action, lambda ctx: {})  # only a handled action is validated

    # A drawn payload may exceed the default max_message_size (256 KiB): the
    # point here is validation, not that limit (tests/test_limits.py).
    async with open_raw_peer(protocol, handler=setup, strict_mode=True, max_message_size=2**24) as (
        peer,
        _csms,
    ):
        reply = await peer.call(action, payload)
    assert reply[:3] == [4, "raw-1", spelled(error, protocol)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_valid_payloads_reach_the_handler_over_the_wire(protocol: str, data: Any) -> None:
    """A strict CSMS passes every valid request to the handler, unchanged."""
    validator = get_validator(protocol)
    action = data.draw(
        st.sampled_from(sorted(validator.actions - validator.send_only_actions)), label="action"
    )
    payload = data.draw(payloads(protocol, action), label="payload")
    answer = data.draw(payloads(protocol, action, "response"), label="answer")
    seen: list[dict[str, Any]] = []

    def setup(conn: Any) -> None:
        conn.handle(action, lambda ctx: seen.append(ctx.params) or answer)

    # A drawn payload may exceed the default max_message_size (256 KiB): the
    # point here is validation, not that limit (tests/test_limits.py).
    async with open_raw_peer(protocol, handler=setup, strict_mode=True, max_message_size=2**24) as (
        peer,
        _csms,
    ):
        reply = await peer.call(action, payload)
    assert reply == [3, "raw-1", answer]
    assert seen == [payload]
