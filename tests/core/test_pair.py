"""Two RPCProtocol objects back to back, texts passed by hand (h11's ConnectionPair style)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Final

import pytest

from ocpp_trio._core.errors import (
    CallErrorReceived,
    RPCFormatViolationError,
    RPCNotImplementedError,
    RPCOccurrenceConstraintViolationError,
)
from ocpp_trio._core.protocol import (
    BadMessage,
    CallReceived,
    CallResultErrorReceived,
    ErrorReceived,
    Event,
    ResultReceived,
    Role,
    RPCProtocol,
    SendReceived,
)

VERSIONS: Final = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")


class ProtocolPair:
    """A charging station (CLIENT) and a CSMS (SERVER) wired back to back."""

    def __init__(self, protocol: str) -> None:
        self.client = RPCProtocol(protocol=protocol, role=Role.CLIENT, id_factory=self._ids("cs"))
        self.server = RPCProtocol(protocol=protocol, role=Role.SERVER, id_factory=self._ids("csms"))
        self.wire: list[tuple[Role, str]] = []

    @staticmethod
    def _ids(prefix: str) -> Callable[[], str]:
        counter = itertools.count()
        return lambda: f"{prefix}-{next(counter)}"

    def other(self, proto: RPCProtocol) -> RPCProtocol:
        return self.server if proto is self.client else self.client

    def deliver(self, sender: RPCProtocol, text: str) -> Event:
        """Carry one text from ``sender`` to the other end and return its event."""
        self.wire.append((sender.role, text))
        return self.other(sender).receive(text)

    def both_ways(self) -> list[tuple[RPCProtocol, RPCProtocol]]:
        return [(self.client, self.server), (self.server, self.client)]


@pytest.mark.parametrize("version", VERSIONS)
def test_call_and_result_both_ways(version: str) -> None:
    pair = ProtocolPair(version)
    for caller, callee in pair.both_ways():
        mid, text = caller.send_call("Heartbeat", {})
        event = pair.deliver(caller, text)
        assert event == CallReceived(message_id=mid, action="Heartbeat", payload={})
        assert callee.inbound_calls == frozenset({mid})
        answer = callee.send_result(mid, {"currentTime": "2024-01-01T00:00:00Z"})
        event = pair.deliver(callee, answer)
        assert event == ResultReceived(
            message_id=mid, action="Heartbeat", payload={"currentTime": "2024-01-01T00:00:00Z"}
        )
        assert caller.pending_calls == {}
        assert callee.inbound_calls == frozenset()
    assert [role for role, _ in pair.wire] == [Role.CLIENT, Role.SERVER, Role.SERVER, Role.CLIENT]
    assert pair.client.bad_message_count == pair.server.bad_message_count == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_call_and_error_both_ways(version: str) -> None:
    pair = ProtocolPair(version)
    for caller, callee in pair.both_ways():
        mid, text = caller.send_call("DataTransfer", {"vendorId": "x"})
        assert isinstance(pair.deliver(caller, text), CallReceived)
        answer = callee.send_error(mid, RPCOccurrenceConstraintViolationError("missing", {"f": 1}))
        event = pair.deliver(callee, answer)
        assert isinstance(event, ErrorReceived)
        expected = (
            "OccurenceConstraintViolation"
            if version == "ocpp1.6"
            else "OccurrenceConstraintViolation"
        )
        assert (event.message_id, event.action, event.code) == (mid, "DataTransfer", expected)
        assert (event.description, event.details) == ("missing", {"f": 1})
        # both spellings give the same class when raised to the caller
        raised = CallErrorReceived(
            event.code, event.description, event.details, action=event.action
        )
        assert type(raised.error) is RPCOccurrenceConstraintViolationError
        assert caller.pending_calls == {}


@pytest.mark.parametrize("version", VERSIONS)
def test_bad_frame_reply_travels_back(version: str) -> None:
    pair = ProtocolPair(version)
    # the client sends a CALL whose payload is not an object; the server's reply
    # is a CALLERROR for an id the client never used: not answered, just counted
    event = pair.server.receive('[2,"x","A",[]]')
    assert isinstance(event, BadMessage)
    assert event.reply is not None
    back = pair.deliver(pair.server, event.reply)
    assert isinstance(back, BadMessage)
    assert back.reply is None
    assert pair.client.bad_message_count == 1


def test_send_both_ways() -> None:
    pair = ProtocolPair("ocpp2.1")
    for sender, receiver in pair.both_ways():
        mid, text = sender.send_send("NotifyPeriodicEventStream", {"id": 1, "data": []})
        event = pair.deliver(sender, text)
        assert event == SendReceived(
            message_id=mid, action="NotifyPeriodicEventStream", payload={"id": 1, "data": []}
        )
        # nothing to answer and nothing pending on either side
        assert receiver.inbound_calls == frozenset()
        assert sender.pending_calls == {}


def test_call_result_error_both_ways() -> None:
    pair = ProtocolPair("ocpp2.1")
    for caller, callee in pair.both_ways():
        mid, text = caller.send_call("GetVariables", {})
        pair.deliver(caller, text)
        result = callee.send_result(mid, {"getVariableResult": "not a list"})
        assert isinstance(pair.deliver(callee, result), ResultReceived)
        # the caller cannot process the result: it tells the callee
        complaint = caller.send_call_result_error(
            mid, RPCFormatViolationError("getVariableResult must be an array")
        )
        event = pair.deliver(caller, complaint)
        assert event == CallResultErrorReceived(
            message_id=mid,
            code="FormatViolation",
            description="getVariableResult must be an array",
            details={},
        )
    assert [text[:2] for _, text in pair.wire] == ["[2", "[3", "[5"] * 2


def test_many_calls_in_a_row_with_deterministic_ids() -> None:
    pair = ProtocolPair("ocpp2.0.1")
    for n in range(5):
        mid, text = pair.client.send_call("Heartbeat", {})
        assert mid == f"cs-{n}"
        pair.deliver(pair.client, text)
        if n % 2:
            answer = pair.server.send_error(mid, RPCNotImplementedError())
            assert isinstance(pair.deliver(pair.server, answer), ErrorReceived)
        else:
            answer = pair.server.send_result(mid, {})
            assert isinstance(pair.deliver(pair.server, answer), ResultReceived)
    assert len(pair.wire) == 10


def test_every_frame_type_exchanged_both_ways() -> None:
    pair = ProtocolPair("ocpp2.1")
    for sender, receiver in pair.both_ways():
        mid, text = sender.send_call("A", {})
        pair.deliver(sender, text)
        pair.deliver(receiver, receiver.send_result(mid, {}))
        mid, text = sender.send_call("B", {})
        pair.deliver(sender, text)
        pair.deliver(receiver, receiver.send_error(mid, RPCNotImplementedError()))
        _, text = sender.send_send("C", {})
        pair.deliver(sender, text)
        pair.deliver(sender, sender.send_call_result_error("some-id", RPCFormatViolationError()))
    kinds = {(role, int(text[1])) for role, text in pair.wire}
    assert kinds == {(role, kind) for role in Role for kind in (2, 3, 4, 5, 6)}
