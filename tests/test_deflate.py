"""permessage-deflate with a size threshold and lazily made zlib streams (``_websocket/deflate.py``).

Two websockets Sans-I/O protocols back to back, negotiating with our
factories: what goes on the wire (the RSV1 bit), what the peer decodes, and
which zlib streams exist.
"""

from __future__ import annotations

import json

import pytest
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from ocpp_trio._websocket.deflate import ClientDeflateFactory, LazyDeflate, ServerDeflateFactory
from ocpp_trio._websocket.handshake import _server_extensions

SMALL = json.dumps([3, "1", {"currentTime": "2026-12-02T07:30:00Z"}])
BIG = json.dumps([2, "2", "DataTransfer", {"vendorId": "V", "data": "x" * 4000}])


def pair(threshold: int = 1024) -> tuple[ClientProtocol, ServerProtocol]:
    client = ClientProtocol(
        parse_uri("ws://localhost/ocpp/CP1"),
        extensions=[ClientDeflateFactory(threshold=threshold)],
    )
    server = ServerProtocol(extensions=[ServerDeflateFactory(threshold=threshold)])
    client.send_request(client.connect())
    for chunk in client.data_to_send():
        server.receive_data(chunk)
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    for chunk in server.data_to_send():
        client.receive_data(chunk)
    client.events_received()
    return client, server


def wire_frames(data: list[bytes], *, mask: bool) -> list[tuple[bool, int]]:
    """``(rsv1, payload length)`` of each frame as it is on the wire (RFC 6455 §5.2)."""
    raw = b"".join(data)
    frames = []
    at = 0
    while at < len(raw):
        first, second = raw[at], raw[at + 1]
        length = second & 0x7F
        at += 2
        if length == 126:
            length, at = int.from_bytes(raw[at : at + 2], "big"), at + 2
        elif length == 127:
            length, at = int.from_bytes(raw[at : at + 8], "big"), at + 8
        at += 4 if mask else 0
        frames.append((bool(first & 0x40), length))
        at += length
    return frames


def deflate_of(protocol: ClientProtocol | ServerProtocol) -> LazyDeflate:
    (extension,) = protocol.extensions
    assert isinstance(extension, LazyDeflate)
    return extension


def test_both_ends_negotiate_the_lazy_extension_without_zlib_streams() -> None:
    client, server = pair()
    for end in (client, server):
        extension = deflate_of(end)
        assert isinstance(extension, PerMessageDeflate)
        assert not extension.local_no_context_takeover  # context takeover as negotiated
        assert "encoder" not in vars(extension)
        assert "decoder" not in vars(extension)


@pytest.mark.parametrize("sender", ["server", "client"])
def test_small_messages_go_uncompressed_big_ones_compressed(sender: str) -> None:
    client, server = pair()
    source, sink = (server, client) if sender == "server" else (client, server)
    for text in (SMALL, BIG, SMALL, BIG):
        source.send_text(text.encode())
    sent = source.data_to_send()
    frames = wire_frames(sent, mask=sender == "client")
    assert [rsv1 for rsv1, _ in frames] == [False, True, False, True]
    assert frames[0][1] == len(SMALL)
    assert frames[1][1] < len(BIG) // 10
    for chunk in sent:
        sink.receive_data(chunk)
    assert [bytes(e.data).decode() for e in sink.events_received()] == [SMALL, BIG, SMALL, BIG]


def test_the_streams_are_made_on_first_use_only() -> None:
    client, server = pair()
    server.send_text(SMALL.encode())
    for chunk in server.data_to_send():
        client.receive_data(chunk)
    client.events_received()
    assert "encoder" not in vars(deflate_of(server))
    assert "decoder" not in vars(deflate_of(client))
    server.send_text(BIG.encode())
    for chunk in server.data_to_send():
        client.receive_data(chunk)
    client.events_received()
    assert "encoder" in vars(deflate_of(server))
    assert "decoder" in vars(deflate_of(client))
    assert "encoder" not in vars(deflate_of(client))  # the client sent nothing big


def test_a_zero_threshold_compresses_everything() -> None:
    _client, server = pair(threshold=0)
    server.send_text(SMALL.encode())
    ((rsv1, _),) = wire_frames(server.data_to_send(), mask=False)
    assert rsv1


def ws_like_pair(
    context_takeover: bool, offer: ClientPerMessageDeflateFactory | None = None
) -> tuple[ClientProtocol, ServerProtocol, str]:
    """A client offering what Node's ``ws`` offers by default, against our server's settings.

    Returns both ends and the server's ``Sec-WebSocket-Extensions`` answer.
    """
    client = ClientProtocol(
        parse_uri("ws://localhost/ocpp/CP1"),
        # ws offers `permessage-deflate; client_max_window_bits` and nothing else
        extensions=[offer or ClientPerMessageDeflateFactory(client_max_window_bits=True)],
    )
    server = ServerProtocol(extensions=_server_extensions(1024, context_takeover))
    client.send_request(client.connect())
    for chunk in client.data_to_send():
        server.receive_data(chunk)
    (request,) = server.events_received()
    response = server.accept(request)
    server.send_response(response)
    for chunk in server.data_to_send():
        client.receive_data(chunk)
    client.events_received()
    return client, server, response.headers["Sec-WebSocket-Extensions"]


def test_the_server_asks_both_ends_for_no_context_takeover_by_default() -> None:
    client, server, answer = ws_like_pair(context_takeover=False)
    params = [p.strip() for p in answer.split(";")]
    assert params[0] == "permessage-deflate"
    assert "server_no_context_takeover" in params
    assert "client_no_context_takeover" in params
    assert "client_max_window_bits=12" in params
    assert deflate_of(server).local_no_context_takeover
    assert deflate_of(server).remote_no_context_takeover
    (client_ext,) = client.extensions
    assert isinstance(client_ext, PerMessageDeflate)
    assert client_ext.local_no_context_takeover  # the client must reset per message
    # A big message each way: compressed, decoded, and no zlib stream is kept after it.
    for source, sink in ((server, client), (client, server)):
        source.send_text(BIG.encode())
        sent = source.data_to_send()
        ((rsv1, length),) = wire_frames(sent, mask=source is client)
        assert rsv1
        assert length < len(BIG) // 10
        for chunk in sent:
            sink.receive_data(chunk)
        assert [bytes(e.data).decode() for e in sink.events_received()] == [BIG]
    assert "encoder" not in vars(deflate_of(server))
    assert "decoder" not in vars(deflate_of(server))


def test_context_takeover_is_kept_when_asked_for() -> None:
    _client, server, answer = ws_like_pair(context_takeover=True)
    assert "no_context_takeover" not in answer
    assert not deflate_of(server).local_no_context_takeover
    assert not deflate_of(server).remote_no_context_takeover
    server.send_text(BIG.encode())
    server.data_to_send()
    assert "encoder" in vars(deflate_of(server))  # kept for the next message


def test_an_offer_with_its_own_parameters_is_still_answered() -> None:
    # A client that already asks for no context takeover on its side and a
    # small window: the answer keeps what it asked and adds the rest.
    offer = ClientPerMessageDeflateFactory(
        client_no_context_takeover=True, client_max_window_bits=10
    )
    _client, server, answer = ws_like_pair(context_takeover=False, offer=offer)
    assert "client_max_window_bits=10" in answer
    assert "server_no_context_takeover" in answer
    assert deflate_of(server).remote_max_window_bits == 10
