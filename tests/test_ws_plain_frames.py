"""The driver's own parser for plain text frames (``OCPPFrames.take_plain_frames``) against websockets' parser alone.

The driver parses whole, unfragmented, uncompressed text frames itself while
websockets' parser sits at a frame boundary, and hands everything else to
websockets.  Whatever the frames and however the bytes are cut into reads,
both ways must give the same messages, the same control frames, the same
bytes to send (pongs, close frames) and the same failure.
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri
from websockets.utils import apply_mask

from ocpp_trio._websocket.driver import OCPPClientProtocol, OCPPServerProtocol, WSTransport
from ocpp_trio._websocket.handshake import _server_extensions

from .conftest import upgrade_request

MAX_SIZE = 300
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def _open_server(deflate: bool) -> OCPPServerProtocol:
    headers = (("Sec-WebSocket-Extensions", "permessage-deflate"),) if deflate else ()
    proto = OCPPServerProtocol(
        extensions=_server_extensions(1024, False) if deflate else None, max_size=MAX_SIZE
    )
    proto.setup_messages(max_fragments=8)
    proto.receive_data(upgrade_request("/ocpp/CP1", protocols=(), headers=headers))
    (request,) = proto.events_received()
    proto.send_response(proto.accept(request))
    proto.data_to_send()
    assert proto.state is State.OPEN
    return proto


def _open_client() -> OCPPClientProtocol:
    proto = OCPPClientProtocol(parse_uri("ws://127.0.0.1/ocpp/CP1"), max_size=MAX_SIZE)
    proto.setup_messages(max_fragments=8)
    proto.send_request(proto.connect())
    server = OCPPServerProtocol()
    for chunk in proto.data_to_send():
        server.receive_data(chunk)
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    for chunk in server.data_to_send():
        proto.receive_data(chunk)
    proto.events_received()
    assert proto.state is State.OPEN
    return proto


def wire(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv1: bool = False,
    masked: bool = True,
    wide: int = 0,
    key: bytes | None = None,
) -> bytes:
    """One frame as it goes on the wire; ``wide`` writes a short length in the 16-bit (1) or
    64-bit (2) form, as RFC 6455 forbids and websockets accepts."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126 and not wide:
        head += bytes([bit | n])
    elif n < 65536 and wide != 2:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = key or os.urandom(4)
    return head + key + apply_mask(payload, key)


def _deflated(text: bytes) -> bytes:
    encoder = zlib.compressobj(wbits=-12)
    data = encoder.compress(text) + encoder.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]


texts = st.one_of(
    st.text(max_size=40).map(lambda t: t.encode()),
    st.text(min_size=120, max_size=400).map(lambda t: t.encode()),  # 16-bit lengths, some too big
    st.binary(max_size=30),  # often not UTF-8
    st.sampled_from([MAX_SIZE, MAX_SIZE + 1]).map(lambda n: b"a" * n),  # at the size limit
    st.sampled_from([b"\xed\xa0\x80", b"\xc3", b"caf\xc3\xa9", b'[2,"1","Heartbeat",{}]']),
)


@st.composite
def frames(draw: Any, server: bool, deflate: bool) -> bytes:
    kind = draw(
        st.sampled_from(
            ["text"] * 6
            + ["fragment", "first", "ping", "pong", "close", "binary", "odd", "compressed"]
        )
    )
    masked = server if draw(st.integers(0, 5)) else not server  # the wrong masking, now and then
    wide = draw(st.sampled_from([0] * 8 + [1, 2]))
    payload = draw(texts)
    if kind == "text":
        return wire(TEXT, payload, masked=masked, wide=wide)
    if kind == "fragment":
        cut = draw(st.integers(0, len(payload)))
        middle = draw(st.booleans())
        out = wire(TEXT, payload[:cut], fin=False, masked=masked)
        if middle:
            out += wire(PING, b"mid", masked=masked)
        return out + wire(CONT, payload[cut:], masked=masked, wide=wide)
    if kind == "first":  # a message's first fragment; what comes next decides
        return wire(TEXT, payload, fin=False, masked=masked, wide=wide)
    if kind == "compressed":
        body = _deflated(payload) if deflate or draw(st.booleans()) else payload
        return wire(TEXT, body, rsv1=True, masked=masked, wide=wide)
    if kind == "ping":
        return wire(PING, payload[:125], masked=masked)
    if kind == "pong":
        return wire(PONG, payload[:125], masked=masked)
    if kind == "close":
        code = draw(st.sampled_from([1000, 1001, 1002, 3000, 999, 1005]))
        return wire(
            CLOSE,
            struct.pack("!H", code) + payload[:50],
            masked=masked,
        )
    if kind == "binary":
        return wire(BINARY, payload, masked=masked, wide=wide)
    # a reserved opcode, or a stray continuation
    opcode = draw(st.sampled_from([0x3, 0xB, CONT]))
    return wire(opcode, payload[:60], masked=masked)


def _cut(stream: list[bytes], breaks: list[bool], points: list[int]) -> list[bytes]:
    """``stream``'s bytes as reads: a new read before each frame whose ``breaks`` entry is
    True (at a frame boundary: where the driver's own parser takes over), and more cuts
    at ``points`` (inside frames: where it must hand over to websockets)."""
    data = b"".join(stream)
    cuts = {0, len(data)} | {p % (len(data) + 1) for p in points}
    at = 0
    for frame, cut in zip(stream, breaks + [False] * len(stream), strict=False):
        if cut:
            cuts.add(at)
        at += len(frame)
    ordered = sorted(cuts)
    return [data[a:b] for a, b in itertools.pairwise(ordered) if b > a]


def _driven(proto: Any) -> WSTransport:
    """The driver around ``proto`` (its stream is never used: ``_feed`` only parses)."""
    return WSTransport(proto, trio.testing.memory_stream_pair()[0])


def observe(proto: Any, reads: list[bytes], plain: bool) -> tuple[Any, ...]:
    """Feed ``reads`` as the driver does (``plain``) or to websockets alone; what came of it."""
    feed = _driven(proto)._feed if plain else proto.receive_data
    controls = []
    for data in reads:
        was_open = proto.parser_exc is None and proto.state is State.OPEN
        feed(data)
        if not was_open:
            continue
        for event in proto.events_received():
            assert isinstance(event, Frame)
            if event.opcode in (Opcode.PING, Opcode.PONG, Opcode.CLOSE):
                controls.append((event.opcode, bytes(event.data)))
    exc = proto.parser_exc
    return (
        list(proto.ocpp_messages),
        controls,
        b"".join(proto.data_to_send()),
        type(exc).__name__ if exc is not None else None,
        str(exc) if exc is not None else None,
        proto.state,
        proto.close_sent.code if proto.close_sent is not None else None,
    )


def _same_both_ways(make: Any, reads: list[bytes]) -> None:
    websockets_alone = observe(make(), reads, plain=False)
    driver = observe(make(), reads, plain=True)
    assert driver[:2] == websockets_alone[:2]
    assert driver[3:] == websockets_alone[3:]
    # What is sent: the same frames (a client masks each with a fresh key).
    if make is _open_client:
        assert len(driver[2]) == len(websockets_alone[2])
    else:
        assert driver[2] == websockets_alone[2]


breaks = st.lists(st.booleans(), max_size=12)
points = st.lists(st.integers(0, 10_000), max_size=3)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(server=True, deflate=False), min_size=1, max_size=12), breaks, points)
def test_server_side_same_as_websockets_alone(
    stream: list[bytes], breaks: list[bool], points: list[int]
) -> None:
    _same_both_ways(lambda: _open_server(False), _cut(stream, breaks, points))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(server=True, deflate=True), min_size=1, max_size=12), breaks, points)
def test_server_side_with_permessage_deflate(
    stream: list[bytes], breaks: list[bool], points: list[int]
) -> None:
    _same_both_ways(lambda: _open_server(True), _cut(stream, breaks, points))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(server=False, deflate=False), min_size=1, max_size=12), breaks, points)
def test_client_side_same_as_websockets_alone(
    stream: list[bytes], breaks: list[bool], points: list[int]
) -> None:
    _same_both_ways(_open_client, _cut(stream, breaks, points))


def _plain(payload: bytes = b'[2,"1","Heartbeat",{}]') -> bytes:
    """A whole text frame as a station sends it (masked)."""
    return wire(TEXT, payload)


#: Frames the driver's parser must leave to websockets, each sent right after a frame boundary.
NOT_PLAIN = {
    "a text frame while a fragmented message is open": _plain() + wire(TEXT, b"ab", fin=False),
    "a 64-bit length": wire(TEXT, b"abc", wide=2),
    "one byte over max_size": wire(TEXT, b"a" * (MAX_SIZE + 1)),
    "exactly max_size": wire(TEXT, b"a" * MAX_SIZE),
    "not masked": wire(TEXT, b"", masked=False),
    "RSV1 without the extension": wire(TEXT, b"abc", rsv1=True),
    "not UTF-8": wire(TEXT, b"\xc3("),
    "a ping": wire(PING, b"p"),
    "a close": wire(CLOSE, struct.pack("!H", 1000)),
    "a binary message": wire(BINARY, b"abc"),
    "a stray continuation": wire(CONT, b"abc"),
    "a reserved opcode": wire(0x3, b""),
    "a 16-bit length for a short payload": wire(TEXT, b"ab", wide=1),
}


@pytest.mark.parametrize("case", sorted(NOT_PLAIN))
def test_each_kind_of_frame_after_a_boundary_gives_what_websockets_gives(case: str) -> None:
    # each case at the start of a read, after one that ended at a frame boundary
    reads = [_plain(), NOT_PLAIN[case], _plain() + _plain(), _plain()]
    websockets_alone = observe(_open_server(False), reads, plain=False)
    driver = observe(_open_server(False), reads, plain=True)
    assert driver == websockets_alone


def test_plain_frames_are_taken_by_the_driver_after_the_first() -> None:
    """The fast path is used (not only equivalent): websockets sees the first frame only."""
    proto = _open_server(False)
    transport = _driven(proto)
    call = b'[2,"1","Heartbeat",{}]'
    transport._feed(_plain(call))
    assert proto.ocpp_at_frame_start  # websockets parsed it and waits for the next frame
    three = _plain(call) * 3
    assert proto.take_plain_frames(three) == len(three)
    assert proto.ocpp_messages == [call.decode()] * 4
    assert not proto.events_received()[1:]  # only websockets' own event for the first


def test_a_frame_cut_in_two_reads_goes_to_websockets_and_the_next_read_is_fast_again() -> None:
    proto = _open_server(False)
    transport = _driven(proto)
    one = _plain()
    transport._feed(one)
    transport._feed(one + one[:5])
    assert not proto.ocpp_at_frame_start
    transport._feed(one[5:])
    assert proto.ocpp_at_frame_start
    assert len(proto.ocpp_messages) == 3


async def test_sent_frames_are_what_websockets_would_send() -> None:
    for deflate in (False, True):
        ours = _open_server(deflate)
        theirs = _open_server(deflate)
        peer, stream = trio.testing.memory_stream_pair()
        transport = WSTransport(ours, stream)
        for text in ("x", "é" * 70, "y" * 200, "z" * 70_000):
            await transport.send(text)
            theirs.send_text(text.encode())
            expected = b"".join(theirs.data_to_send())
            got = await peer.receive_some(200_000)
            while len(got) < len(expected):
                got += await peer.receive_some(200_000)
            assert got == expected


def test_a_frame_whose_mask_looks_like_a_frame_start_is_not_misread() -> None:
    """A read that ends inside a frame's header leaves websockets in mid-frame: the next read
    starts with the rest of that frame (here a mask key that reads like a text frame's head),
    which only websockets may parse."""
    proto = _open_server(False)
    transport = _driven(proto)
    first = _plain(b'"one"')
    second = wire(TEXT, b'"two"', key=b"\x81\x80ab")
    transport._feed(first + second[:2])  # the second frame's head, not its mask key
    transport._feed(second[2:])
    assert proto.ocpp_messages == ['"one"', '"two"']
