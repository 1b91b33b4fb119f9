"""RPCProtocol.peek_request and refuse: a CALL's head read without decoding its payload."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocpp_trio._core.errors import RPCGenericError
from ocpp_trio._core.protocol import (
    CallReceived,
    RequestHead,
    Role,
    RPCProtocol,
    SendReceived,
)


def _proto(protocol: str = "ocpp2.0.1") -> RPCProtocol:
    return RPCProtocol(protocol=protocol, role=Role.SERVER)


@pytest.mark.parametrize(
    ("text", "head"),
    [
        (
            '[2,"m1","Heartbeat",{}]',
            RequestHead(message_id="m1", action="Heartbeat", is_send=False),
        ),
        (
            ' \n[ 2 ,\t"m1" , "Heartbeat" , {"x": ',
            RequestHead(message_id="m1", action="Heartbeat", is_send=False),
        ),
        (
            '[2,"' + "i" * 36 + '","A",[',
            RequestHead(message_id="i" * 36, action="A", is_send=False),
        ),
        (
            '[2,"CP\u202e1","Ac\u00e7\u00e3o",',
            RequestHead(message_id="CP\u202e1", action="Ac\u00e7\u00e3o", is_send=False),
        ),
    ],
)
def test_the_head_of_a_call_is_read_without_its_payload(text: str, head: RequestHead) -> None:
    proto = _proto()
    assert proto.peek_request(text) == head
    assert proto.inbound_calls == frozenset()  # nothing registered
    assert proto.bad_message_count == 0


@pytest.mark.parametrize(
    "text",
    [
        '[3,"m1",{}]',  # an answer: never rate-limited
        '[4,"m1","GenericError","",{}]',
        '[2.0,"m1","Heartbeat",{}]',  # 2 to JSON, but not plainly
        '[20,"m1","Heartbeat",{}]',
        '[2,"m\\u0031","Heartbeat",{}]',  # an escape in the id
        '[2,"","Heartbeat",{}]',  # an empty id
        '[2,"' + "i" * 37 + '","Heartbeat",{}]',  # an id too long
        '[2,"m1","",{}]',  # an empty action
        '[2,"m1","' + "A" * 101 + '",{}]',  # an action longer than any OCPP action
        '[2,"m1","Heart\nbeat",{}]',  # a raw control character: not a JSON string
        '[2,"m1",5,{}]',
        '{"2":"m1"}',
        "",
    ],
)
def test_a_head_that_is_not_plainly_a_call_is_left_to_receive(text: str) -> None:
    assert _proto().peek_request(text) is None


def test_bytes_are_left_to_receive() -> None:
    assert _proto().peek_request(b'[2,"m1","Heartbeat",{}]') is None


def test_an_id_in_flight_is_left_to_receive() -> None:
    """A duplicate id gets the answer the table asks for, which only receive() gives."""
    proto = _proto()
    assert isinstance(proto.receive('[2,"m1","Heartbeat",{}]'), CallReceived)
    assert proto.peek_request('[2,"m1","Heartbeat",{}]') is None
    assert proto.peek_request('[2,"m2","Heartbeat",{}]') is not None


@pytest.mark.parametrize(
    ("protocol", "is_send"), [("ocpp1.6", None), ("ocpp2.0.1", None), ("ocpp2.1", True)]
)
def test_send_is_read_only_where_it_exists(protocol: str, is_send: bool | None) -> None:
    head = _proto(protocol).peek_request('[6,"s1","NotifyPeriodicEventStream",{}]')
    assert (head.is_send if head is not None else None) == is_send


def test_refuse_answers_a_call_and_never_a_send() -> None:
    proto = _proto("ocpp2.1")
    error = RPCGenericError("rate limit: at most 1 calls per second")
    call = proto.peek_request('[2,"m1","Heartbeat",{"broken":')
    send = proto.peek_request('[6,"s1","NotifyPeriodicEventStream",{"broken":')
    assert call is not None
    assert send is not None
    reply = proto.refuse(call, error)
    assert reply is not None
    assert json.loads(reply) == [4, "m1", "GenericError", error.description, {}]
    assert proto.refuse(send, error) is None
    assert proto.inbound_calls == frozenset()
    # The refused id was never registered: the peer may use it again.
    assert isinstance(proto.receive('[2,"m1","Heartbeat",{}]'), CallReceived)


def test_refuse_spells_the_code_as_the_version_does() -> None:
    proto = _proto("ocpp1.6")
    head = proto.peek_request('[2,"m1","Heartbeat",{}]')
    assert head is not None
    assert json.loads(proto.refuse(head, RPCGenericError("x")) or "")[2] == "GenericError"


_IDS = st.text(min_size=1, max_size=36)
_ACTIONS = st.text(min_size=1, max_size=40)


@given(mid=_IDS, action=_ACTIONS, payload=st.dictionaries(st.text(max_size=5), st.integers()))
def test_a_head_read_agrees_with_receive(mid: str, action: str, payload: dict[str, Any]) -> None:
    """Whenever the head is read, receive() finds the same CALL: the reading never lies."""
    text = json.dumps([2, mid, action, payload], ensure_ascii=False)
    head = _proto().peek_request(text)
    event = _proto().receive(text)
    if head is not None:
        assert isinstance(event, CallReceived)
        assert (event.message_id, event.action) == (head.message_id, head.action)


@given(mid=_IDS, action=_ACTIONS)
def test_a_send_head_agrees_with_receive(mid: str, action: str) -> None:
    text = json.dumps([6, mid, action, {}], ensure_ascii=False)
    head = _proto("ocpp2.1").peek_request(text)
    if head is not None:
        event = _proto("ocpp2.1").receive(text)
        assert isinstance(event, SendReceived)
        assert (event.message_id, event.action, head.is_send) == (mid, action, True)
