"""The default WebSocket driver under hostile input, and its RFC 6455 conformance.

A peer sends raw bytes (frames built here, masked as a client's must be) to a
``WSTransport`` over a memory stream pair, or answers a client's upgrade
request itself; the test reads what comes back.  Covered: one connection's
burst does not starve another (a checkpoint per message); a fragmented
message is bounded in frames, and in inflated bytes; text that is not UTF-8
closes with 1007 at the offending fragment; a binary message closes with
1003; frames that came with the opening handshake are answered before the
transport waits for more; bytes that are not an HTTP request get a 400.
``corpus/wsframes/`` holds byte sequences and what each gets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.uri import parse_uri

from ocpp_trio._core.errors import ConnectionClosed
from ocpp_trio._websocket.driver import MAX_FRAGMENTS, RECEIVE_SIZE, WSTransport
from ocpp_trio._websocket.handshake import HandshakeFailed, client_handshake, server_handshake
from ocpp_trio.testing import open_memory_pair

from .conftest import upgrade_request

CORPUS = Path(__file__).resolve().parent / "corpus"
MASK = b"\x37\xfa\x21\x3d"
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(payload: bytes, opcode: int = TEXT, *, fin: bool = True, mask: bool = True) -> bytes:
    """One WebSocket frame (RFC 6455 §5.2), masked as a client sends it unless ``mask`` is False."""
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + masked


def fragments(payload: bytes, size: int, opcode: int = TEXT) -> bytes:
    """``payload`` as one message in frames of ``size`` bytes (at least two frames)."""
    parts = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    if len(parts) == 1:
        parts.append(b"")
    out = frame(parts[0], opcode, fin=False)
    out += b"".join(frame(p, CONT, fin=False) for p in parts[1:-1])
    return out + frame(parts[-1], CONT)


def close_code_of(data: bytes) -> int | None:
    """The code of the first close frame in ``data`` (frames from a server: unmasked)."""
    for opcode, payload in frames_of(data):
        if opcode == CLOSE:
            code: int = struct.unpack("!H", payload[:2])[0]
            return code
    return None


def frames_of(data: bytes, *, masked: bool = False) -> list[tuple[int, bytes]]:
    """``(opcode, payload)`` of each frame in ``data``, unmasked if a client ``masked`` them."""
    out = []
    key_size = 4 if masked else 0
    while len(data) >= 2 + key_size:
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        start = 2
        if n == 126:
            n, start = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            n, start = struct.unpack("!Q", data[2:10])[0], 10
        key = data[start : start + key_size]
        body = data[start + key_size : start + key_size + n]
        if masked:
            body = bytes(b ^ key[i % 4] for i, b in enumerate(body))
        out.append((opcode, body))
        data = data[start + key_size + n :]
    return out


async def drain(stream: trio.abc.Stream) -> bytes:
    """Everything ``stream`` has to give until it closes (bounded by the caller's scope)."""
    received = bytearray()
    try:
        while chunk := await stream.receive_some():
            received += chunk
    except trio.BrokenResourceError:
        pass
    return bytes(received)


async def read_until(stream: trio.abc.Stream, marker: bytes, buffer: bytearray) -> bytes:
    """Read into ``buffer`` until it holds ``marker``; return what precedes it and keep the rest."""
    while marker not in buffer:
        buffer += await stream.receive_some()
    head, _, rest = bytes(buffer).partition(marker)
    buffer[:] = rest
    return head


async def accepted(data: bytes, **kwargs: Any) -> tuple[WSTransport, trio.abc.Stream, bytearray]:
    """A server transport whose peer sent ``data`` (an upgrade request and what follows) at once.

    Returns the transport, the peer's end of the stream, and what the peer
    has read past the 101 answer so far.
    """
    peer, server = trio.testing.memory_stream_pair()
    await peer.send_all(data)
    request = await server_handshake(server, max_message_size=kwargs.pop("size", 2**20), **kwargs)
    transport = await request.accept("ocpp1.6")
    buffer = bytearray()
    head = await read_until(peer, b"\r\n\r\n", buffer)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return transport, peer, buffer


async def fails_with(transport: WSTransport, code: int) -> list[str]:
    """Receive until the transport reports the connection closed with ``code``; return the messages.

    Then close the stream, as the connection does once its reader is told.
    """
    messages = []
    while True:
        try:
            messages.append(await transport.receive())
        except ConnectionClosed as exc:
            closed = exc
            break
    await transport.abort()
    assert closed.code == code, closed
    return messages


REQUEST = upgrade_request("/ocpp/CP1")


# --- fairness: a checkpoint per message ----------------------------------------------


async def test_a_burst_in_one_read_does_not_starve_another_connection(autojump_clock: Any) -> None:
    """2,000 messages in one write to one CSMS connection; a call on another is
    answered while the first is still working through them, not after."""
    peer_streams: list[Any] = []

    def capture() -> tuple[trio.abc.Stream, trio.abc.Stream]:
        station_end, csms_end = trio.testing.memory_stream_pair()
        peer_streams.append(station_end)
        return station_end, csms_end

    handled: list[object] = []
    seen_at_answer: list[int] = []
    async with (
        open_memory_pair("ocpp1.6", stream_pair_factory=capture) as (_, busy),
        open_memory_pair(
            "ocpp1.6",
            csms_handler=lambda conn: conn.handle("Heartbeat", lambda ctx: {"currentTime": "t"}),
        ) as (station, _),
    ):
        # Answers to calls never made: each is work for the reader (a bad
        # message, counted and reported) and none makes a write, which would
        # pass a schedule point of its own.
        all_handled = trio.Event()

        def count(event: object) -> None:
            handled.append(event)
            if len(handled) == 2000:
                all_handled.set()

        busy.on("message", count)
        burst = b"".join(frame(b'[3,"%d",{}]' % i) for i in range(2000))
        assert len(burst) <= RECEIVE_SIZE  # one read takes all of it
        await peer_streams[0].send_all(burst)
        assert await station.call("Heartbeat", {}) == {"currentTime": "t"}
        seen_at_answer.append(len(handled))
        with trio.fail_after(5):
            await all_handled.wait()
    assert seen_at_answer[0] < 100, seen_at_answer


async def test_queued_messages_are_returned_with_a_checkpoint_each(autojump_clock: Any) -> None:
    transport, _, _ = await accepted(REQUEST + frame(b"[]") * 3)
    for _ in range(3):
        with trio.testing.assert_checkpoints():
            assert await transport.receive() == "[]"
    await transport.abort()


# --- fragments: bounded in number, joined as they come ------------------------------------


async def test_a_fragmented_message_is_joined_and_checked_across_fragments(
    autojump_clock: Any,
) -> None:
    text = '[2,"1","DataTransfer",{"vendorId":"é€𝄞"}]'.encode()
    # 1-byte fragments split every multi-byte character between frames
    transport, _, _ = await accepted(REQUEST + fragments(text, 1) + frame(b"[]"))
    assert await transport.receive() == text.decode()
    assert await transport.receive() == "[]"
    await transport.abort()


@pytest.mark.parametrize("payload", [b"x", b""], ids=["one-byte", "empty"])
async def test_a_message_in_too_many_fragments_closes_with_1009(
    payload: bytes, autojump_clock: Any
) -> None:
    """4 million 1-byte fragments once held 226 MiB of one connection; 13 million
    empty ones grew a server by 1 MiB/s.  Frames are counted, whatever they carry."""
    ok = frame(b"[", fin=False) + frame(payload, CONT, fin=False) * (MAX_FRAGMENTS - 2)
    ok += frame(b"]", CONT)
    too_many = frame(b"[", fin=False) + frame(payload, CONT, fin=False) * MAX_FRAGMENTS
    transport, peer, buffer = await accepted(REQUEST + ok + too_many + frame(b"[]"))
    assert await transport.receive() == "[" + payload.decode() * (MAX_FRAGMENTS - 2) + "]"
    assert await fails_with(transport, 1009) == []
    assert close_code_of(bytes(buffer) + await drain(peer)) == 1009
    assert transport.failed_locally
    assert "fragments" in transport.close_reason


async def test_the_fragment_bound_is_a_parameter(autojump_clock: Any) -> None:
    transport, _, _ = await accepted(REQUEST + fragments(b"[1,2,3]", 2), max_fragments=3)
    await fails_with(transport, 1009)
    transport, _, _ = await accepted(REQUEST + fragments(b"[1,2,3]", 3), max_fragments=3)
    assert await transport.receive() == "[1,2,3]"


async def _deflating_client(
    server_stream: trio.abc.Stream, peer: trio.abc.Stream, size: int
) -> tuple[WSTransport, ClientProtocol]:
    """A websockets client protocol with permessage-deflate, upgraded against ``server_handshake``."""
    client = ClientProtocol(
        parse_uri("ws://127.0.0.1/ocpp/CP1"),
        extensions=[ClientPerMessageDeflateFactory(client_max_window_bits=True)],
    )
    client.send_request(client.connect())
    for chunk in client.data_to_send():
        await peer.send_all(chunk)
    request = await server_handshake(server_stream, max_message_size=size)
    transport = await request.accept(None)
    assert transport.compression
    client.receive_data(await peer.receive_some())
    assert client.handshake_exc is None
    client.events_received()
    return transport, client


async def test_a_fragmented_compressed_message_is_bounded_by_its_inflated_size(
    autojump_clock: Any,
) -> None:
    """1 MiB of text deflates to about 1 KiB: the bound is on what it inflates to."""
    peer, server_stream = trio.testing.memory_stream_pair()
    transport, client = await _deflating_client(server_stream, peer, size=64 * 1024)
    text = b"[" + b"0," * (512 * 1024) + b"0]"
    client.send_text(text[:100], fin=False)  # websockets compresses the message as a whole
    for start in range(100, len(text), 200_000):
        client.send_continuation(text[start : start + 200_000], fin=False)
    client.send_continuation(b"", fin=True)
    sent = b"".join(client.data_to_send())
    assert len(sent) < 64 * 1024  # small on the wire
    await peer.send_all(sent)
    await fails_with(transport, 1009)
    assert close_code_of(await drain(peer)) == 1009


async def test_a_fragmented_compressed_message_within_the_bound_is_delivered(
    autojump_clock: Any,
) -> None:
    peer, server_stream = trio.testing.memory_stream_pair()
    transport, client = await _deflating_client(server_stream, peer, size=64 * 1024)
    text = b"[" + b"0," * 10_000 + b"0]"
    client.send_text(text[:7], fin=False)
    client.send_continuation(text[7:15_000], fin=False)
    client.send_continuation(text[15_000:], fin=True)
    await peer.send_all(b"".join(client.data_to_send()))
    assert await transport.receive() == text.decode()


# --- UTF-8 and binary messages -----------------------------------------------------------


async def test_a_text_message_that_is_not_utf8_closes_with_1007(autojump_clock: Any) -> None:
    """It was handed to the RPC layer as bytes, answered with a CALLERROR, and the
    connection stayed open; RFC 6455 §8.1 fails the connection."""
    bad = b'[2,"1","Heartbeat",{"x":"\xff"}]'
    transport, peer, buffer = await accepted(REQUEST + frame(b"[]") + frame(bad) + frame(b"[1]"))
    assert await fails_with(transport, 1007) == ["[]"]  # nothing after the bad frame
    assert close_code_of(bytes(buffer) + await drain(peer)) == 1007
    assert "UTF-8" in transport.close_reason


async def test_invalid_utf8_closes_at_the_offending_fragment(autojump_clock: Any) -> None:
    """The close goes out when the second of three fragments arrives (RFC 6455 §8.1:
    fail fast), not once the message is complete."""
    transport, peer, buffer = await accepted(REQUEST + frame(b'[2,"1",', fin=False))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fails_with, transport, 1007)
        await trio.testing.wait_all_tasks_blocked()
        await peer.send_all(frame(b'"\xc3\x28"', CONT, fin=False))  # \xc3 then not a continuation
        with trio.fail_after(1):
            while close_code_of(bytes(buffer)) is None:
                buffer += await peer.receive_some()
    assert close_code_of(bytes(buffer)) == 1007
    # the third fragment was never sent


async def test_a_character_cut_off_by_the_final_fragment_closes_with_1007(
    autojump_clock: Any,
) -> None:
    message = frame(b'["\xe2\x82', fin=False) + frame(b'"]\xe2', CONT)
    transport, _, _ = await accepted(REQUEST + message)
    await fails_with(transport, 1007)


@pytest.mark.parametrize("fragmented", [False, True])
async def test_a_binary_message_closes_with_1003(fragmented: bool, autojump_clock: Any) -> None:
    """OCPP-J messages are JSON text in UTF-8 (OCPP-J 1.6 §4.1.2, 2.0.1 Part 4 §4.1.2)."""
    payload = b'[2,"1","Heartbeat",{}]'
    binary = fragments(payload, 5, BINARY) if fragmented else frame(payload, BINARY)
    transport, peer, buffer = await accepted(REQUEST + binary + frame(b"[]"))
    assert await fails_with(transport, 1003) == []
    assert close_code_of(bytes(buffer) + await drain(peer)) == 1003


async def test_a_connection_fails_with_1007_instead_of_answering_a_callerror(
    autojump_clock: Any,
) -> None:
    peer_streams: list[Any] = []

    def capture() -> tuple[trio.abc.Stream, trio.abc.Stream]:
        station_end, csms_end = trio.testing.memory_stream_pair()
        peer_streams.append(station_end)
        return station_end, csms_end

    bad: list[object] = []
    async with open_memory_pair("ocpp1.6", stream_pair_factory=capture) as (_, csms):
        csms.on("bad_message", bad.append)
        await peer_streams[0].send_all(frame(b'[2,"1","Heartbeat",{"x":"\xff"}]'))
        with trio.fail_after(5):
            await csms.wait_closed()
        assert csms.close_code == 1007
    assert bad == []


# --- frames that came with the opening handshake ------------------------------------------


async def test_a_ping_sent_with_the_upgrade_request_is_answered_after_the_101(
    autojump_clock: Any,
) -> None:
    """websockets parses it with the request and queues its pong; it went out before
    the 101 (an HTTP answer the client could not read)."""
    transport, peer, buffer = await accepted(REQUEST + frame(b"early", PING))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(transport.receive)  # the reader: it waits for input
        with trio.fail_after(1):
            while not frames_of(bytes(buffer)):
                buffer += await peer.receive_some()
        nursery.cancel_scope.cancel()
    assert frames_of(bytes(buffer)) == [(PONG, b"early")]


@pytest.mark.parametrize("with_code", [True, False])
async def test_a_close_sent_with_the_upgrade_request_is_answered_at_once(
    with_code: bool, autojump_clock: Any
) -> None:
    close = frame(struct.pack("!H", 1001) + b"bye" if with_code else b"", CLOSE)
    transport, peer, buffer = await accepted(REQUEST + frame(b"[]") + close)
    with trio.fail_after(1):
        assert await transport.receive() == "[]"  # what came before the close is delivered
        await fails_with(transport, 1001 if with_code else 1005)
        reply = bytes(buffer) + await drain(peer)
    assert frames_of(reply) == [(CLOSE, struct.pack("!H", 1001) + b"bye" if with_code else b"")]


def _accept_key(request: bytes) -> bytes:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return base64.b64encode(digest)


async def _client_against(answer: Callable[[bytes], bytes]) -> tuple[WSTransport, Any]:
    """A client transport whose server answered the upgrade with ``answer(request)`` at once."""
    client_stream, server = trio.testing.memory_stream_pair()
    result: list[WSTransport] = []
    async with trio.open_nursery() as nursery:

        async def connect() -> None:
            transport, _ = await client_handshake(
                client_stream,
                "ws://127.0.0.1/ocpp/CP1",
                subprotocols=["ocpp1.6"],
                headers=[],
                max_message_size=2**20,
                compression=False,
            )
            result.append(transport)

        nursery.start_soon(connect)
        request = await read_until(server, b"\r\n\r\n", bytearray())
        await server.send_all(answer(request))
    return result[0], server


def _switching(request: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + _accept_key(request) + b"\r\n"
        b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    )


def _client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """``(opcode, unmasked payload)`` of each frame a client sent."""
    return frames_of(data, masked=True)


async def test_a_client_answers_a_ping_that_came_with_the_101(autojump_clock: Any) -> None:
    transport, server = await _client_against(
        lambda request: _switching(request) + frame(b"hi", PING, mask=False)
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(transport.receive)
        with trio.fail_after(1):
            data = await server.receive_some()
        nursery.cancel_scope.cancel()
    assert _client_frames(data) == [(PONG, b"hi")]


async def test_a_client_answers_a_close_that_came_with_the_101(autojump_clock: Any) -> None:
    """Autobahn's client cases ended with the server's close unanswered when it came
    in the same read as the 101."""
    transport, server = await _client_against(
        lambda request: _switching(request) + frame(struct.pack("!H", 1000), CLOSE, mask=False)
    )
    with trio.fail_after(1):
        await fails_with(transport, 1000)
        data = await server.receive_some()
    assert _client_frames(data) == [(CLOSE, struct.pack("!H", 1000))]


# --- malformed HTTP: 400, then close ---------------------------------------------------------

MALFORMED = {
    "non-ascii-request-line": b"GET /ocpp/CP\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
    "transfer-encoding": REQUEST[:-2] + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "cr-in-header-value": REQUEST[:-2] + b"X-Note: a\rb\r\n\r\n",
    "not-http": b"hello there\r\n\r\n",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_request_is_answered_400(data: bytes, autojump_clock: Any) -> None:
    """RFC 9112 §2.2: a server SHOULD answer bytes that are not an HTTP request with
    400 and close; websockets closed without a word."""
    peer, server = trio.testing.memory_stream_pair()
    await peer.send_all(data)
    with pytest.raises(HandshakeFailed) as info:
        await server_handshake(server, max_message_size=2**20)
    assert info.value.status == 400
    await server.aclose()
    answer = await drain(peer)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert b"\xc3\xa9" not in answer  # the answer names no byte of the request
    assert b"Connection: close\r\n" in answer


def test_the_handshake_corpus_has_the_malformed_requests() -> None:
    expect = json.loads((CORPUS / "handshakes" / "expect.json").read_text())
    for name in ("non-ascii-request-line", "transfer-encoding", "cr-in-header-value"):
        data = (CORPUS / "handshakes" / f"{name}.bin").read_bytes()
        assert data == MALFORMED[name]
        assert expect[name] == {"outcome": "refused", "status": 400}


async def test_a_client_does_not_answer_a_malformed_response(autojump_clock: Any) -> None:
    """The 400 is the server's: a client facing garbage only gives up."""
    client_stream, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:

        async def garbage() -> None:
            await read_until(server, b"\r\n\r\n", bytearray())
            await server.send_all(b"hello there\r\n\r\n")

        nursery.start_soon(garbage)
        with pytest.raises(HandshakeFailed):
            await client_handshake(
                client_stream,
                "ws://127.0.0.1/ocpp/CP1",
                subprotocols=["ocpp1.6"],
                headers=[],
                max_message_size=2**20,
            )
    await client_stream.aclose()
    assert await drain(server) == b""


# --- the frame corpus: raw frames after a good upgrade request ---------------------------------

WSFRAMES = json.loads((CORPUS / "wsframes" / "expect.json").read_text())
WSFRAME_CASES = {k: v for k, v in WSFRAMES.items() if not k.startswith("_")}


def test_every_wsframes_file_has_an_expectation() -> None:
    files = {p.stem for p in (CORPUS / "wsframes").glob("*.bin")}
    assert files == set(WSFRAME_CASES)


@pytest.mark.parametrize("name", WSFRAME_CASES)
@pytest.mark.parametrize("pipelined", [True, False], ids=["with-the-request", "after-the-101"])
async def test_wsframes_corpus(name: str, pipelined: bool, autojump_clock: Any) -> None:
    expect = WSFRAME_CASES[name]
    data = (CORPUS / "wsframes" / f"{name}.bin").read_bytes()
    transport, peer, buffer = await accepted(REQUEST + data if pipelined else REQUEST)
    if not pipelined:
        await peer.send_all(data)
    with trio.fail_after(1):
        messages = await fails_with(transport, expect["close"])
    assert len(messages) == expect["messages"], messages
    assert close_code_of(bytes(buffer) + await drain(peer)) == expect["close"]


FRAME_FILES = {p.name: p.read_bytes() for p in sorted((CORPUS / "frames").glob("*.txt"))}


@pytest.mark.parametrize("raw", FRAME_FILES.values(), ids=FRAME_FILES.keys())
async def test_frame_files_as_text_and_as_binary(raw: bytes, autojump_clock: Any) -> None:
    """The RPC corpus's message files: text that is UTF-8 is delivered as it is, text
    that is not closes with 1007, and any of them sent as binary closes with 1003."""
    try:
        expected: str | None = raw.decode()
    except UnicodeDecodeError:
        expected = None
    close = frame(struct.pack("!H", 1000), CLOSE)
    transport, _, _ = await accepted(REQUEST + frame(raw) + close, size=2**21)
    if expected is None:
        await fails_with(transport, 1007)
    else:
        assert await fails_with(transport, 1000) == [expected]
    transport, _, _ = await accepted(REQUEST + frame(raw, BINARY) + close, size=2**21)
    await fails_with(transport, 1003)


async def test_a_large_read_is_parsed_a_slice_per_task_step(autojump_clock: Any) -> None:
    """64 KiB of small frames in one read: the parser gets it ``PARSE_SLICE`` bytes per
    step, and other tasks run in between (it used to be one step of ~2,000 frames)."""
    from ocpp_trio._websocket.driver import PARSE_SLICE

    burst = b"".join(frame(b'[2,"%d","Heartbeat",{}]' % i) for i in range(2000))
    assert len(burst) > 6 * PARSE_SLICE
    transport, peer, _ = await accepted(REQUEST)
    rounds = 0

    async def ticker() -> None:
        nonlocal rounds
        while True:
            await trio.lowlevel.checkpoint()
            rounds += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await peer.send_all(burst)
        before = rounds
        first = await transport.receive()
        during = rounds - before
        nursery.cancel_scope.cancel()
    assert first == '[2,"0","Heartbeat",{}]'
    assert during >= 5  # one schedule point per slice of the read


async def test_closing_after_a_bad_frame_sends_the_parsers_close_at_once(
    autojump_clock: Any,
) -> None:
    """A message, then a frame with a reserved bit set, in one read: the caller is
    handed the message and closes; the 1002 the parser queued goes out then, not
    after the peer sends something else (Autobahn 3.2 as a client waited 1 s)."""
    good = frame(b"[]")
    bad = frame(b"x")
    bad = bytes([bad[0] | 0x20]) + bad[1:]  # RSV2
    transport, peer, buffer = await accepted(REQUEST + good + bad)
    assert await transport.receive() == "[]"
    with trio.fail_after(1):
        await transport.aclose()
    assert close_code_of(bytes(buffer) + await drain(peer)) == 1002


async def test_a_close_between_fragments_is_echoed(autojump_clock: Any) -> None:
    """A control frame may come between the fragments of a message (RFC 6455 §5.4): a
    close there ends the connection like any close, echoed with its code; the
    unfinished message is dropped (websockets alone fails it with 1002; Autobahn 7.1.5)."""
    payload = (1000).to_bytes(2, "big") + b"bye"
    close = frame(payload, CLOSE)
    transport, peer, buffer = await accepted(REQUEST)
    await peer.send_all(frame(b'[2,"1",', fin=False) + close + frame(b"{}]", CONT))
    assert await fails_with(transport, 1000) == []
    assert frames_of(bytes(buffer) + await drain(peer)) == [(CLOSE, payload)]
