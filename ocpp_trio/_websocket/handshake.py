"""The WebSocket opening handshakes (RFC 6455 §4) over websockets' Sans-I/O protocol.

:func:`server_handshake` reads one HTTP upgrade request and gives a
:class:`ServerHandshake` to accept (101, with the subprotocol the caller
chose) or reject (an HTTP status); :func:`client_handshake` sends the request
and checks the answer.  Malformed requests get an HTTP error answer:
websockets' own (400, 414, 431...), or 400 where websockets gives up on the
bytes without one (RFC 9112 §2.2).  Callers bound both with cancel scopes.
Both end in a :class:`~ocpp_trio._websocket.driver.WSTransport` over the same
stream; frames that came in the same read as the handshake are its first
input, answered before it first waits for more.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Final

import trio
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.http11 import Request, Response
from websockets.protocol import Protocol
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from .deflate import DEFAULT_COMPRESSION_THRESHOLD, ClientDeflateFactory, ServerDeflateFactory
from .driver import (
    MAX_FRAGMENTS,
    RECEIVE_SIZE,
    OCPPClientProtocol,
    OCPPServerProtocol,
    WSTransport,
    quiet_logger,
    release,
)


class HandshakeFailed(Exception):
    """The opening handshake could not complete (garbage, EOF, a bad answer).

    Attributes:
        status: the HTTP status of the answer to the upgrade request, when
            there was one (a server's error answer, sent or received); else None.
    """

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


async def _feed_until_event(proto: Protocol, stream: trio.abc.Stream) -> Any:
    """Read until the parser yields its first event (the request or the response)."""
    while True:
        events = proto.events_received()
        if events:
            first = events[0]
            proto.events = events[1:] + proto.events  # frames that came along stay queued
            return first
        if proto.writes:  # the parser answered on its own: a malformed handshake
            status = _status_of(proto.writes[0])
            if status is None and isinstance(proto, ServerProtocol):
                status = _bad_request(proto)
            await _send_writes(proto, stream)
            raise HandshakeFailed(str(proto.handshake_exc or "malformed handshake"), status)
        if proto.handshake_exc is not None:
            raise HandshakeFailed(str(proto.handshake_exc))
        try:
            data = await stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise HandshakeFailed(
                f"connection lost during the handshake ({type(exc).__name__})"
            ) from exc
        if not data:
            proto.receive_eof()
            raise HandshakeFailed("the peer closed the connection during the handshake")
        proto.receive_data(data)


#: The body of the answer to bytes that are not an HTTP request.
_BAD_REQUEST_BODY: Final = "Failed to open a WebSocket connection: not a valid HTTP request.\n"


def _bad_request(proto: ServerProtocol) -> int:
    """Queue a 400 answer to bytes websockets could not parse as an HTTP request; return 400.

    websockets gives up on such a request (a line without CRLF, bytes that
    are not ASCII in the request line, a CR or NUL in a header value, a
    ``Transfer-Encoding`` or a body) by closing without a word; RFC 9112 §2.2
    asks a server for a 400 and a close, which tells a misconfigured client
    what went wrong.  The body names no byte of the request: its header values
    may hold credentials.
    """
    proto.data_to_send()  # only websockets' end-of-output mark: the stream is closed after this
    proto.writes.append(proto.reject(400, _BAD_REQUEST_BODY).serialize())
    return 400


def _status_of(chunk: bytes) -> int | None:
    """The status code of an HTTP answer the parser queued, or None (e.g. only an EOF)."""
    head = chunk[:13]  # b"HTTP/1.1 400 "
    if head.startswith(b"HTTP/1.1 ") and head[9:12].isdigit():
        return int(head[9:12])
    return None


async def _send_writes(proto: Protocol, stream: trio.abc.Stream) -> None:
    try:
        for chunk in proto.data_to_send():
            if chunk:
                await stream.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise HandshakeFailed(
            f"connection lost during the handshake ({type(exc).__name__})"
        ) from exc


def _offered_subprotocols(headers: Headers) -> tuple[str, ...]:
    offered: list[str] = []
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        offered.extend(p.strip() for p in value.split(",") if p.strip())
    return tuple(offered)


class ServerHandshake:
    """A station's upgrade request, read and waiting to be accepted or rejected."""

    def __init__(
        self, proto: OCPPServerProtocol, stream: trio.abc.Stream, request: Request
    ) -> None:
        self._proto = proto
        self._stream = stream
        self._request = request
        self._chosen: str | None = None

    @property
    def method(self) -> str:
        """The request method as sent (an upgrade must be ``GET``)."""
        return self._request.method

    @property
    def http_version(self) -> str:
        """The HTTP version of the request line as sent (an upgrade must be ``HTTP/1.1``)."""
        return self._request.protocol

    @property
    def path(self) -> str:
        """The request target (path and query) as sent."""
        return self._request.path

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The request headers as sent, as (name, value) byte pairs."""
        return [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in self._request.headers.raw_items()
        ]

    @property
    def proposed_subprotocols(self) -> tuple[str, ...]:
        """The subprotocols the client offered, in its order."""
        return _offered_subprotocols(self._request.headers)

    async def accept(
        self, subprotocol: str | None, extra_headers: Sequence[tuple[str, str]] = ()
    ) -> WSTransport:
        """Answer 101 with ``subprotocol`` (None: no Sec-WebSocket-Protocol header).

        Raises:
            HandshakeFailed: the request is not a valid WebSocket upgrade (it
                was answered with an HTTP error: the exception's ``status``),
                or the peer went away (``status`` None).
        """
        self._chosen = subprotocol
        proto = self._proto
        proto._ocpp_handshake = self  # type: ignore[attr-defined]  # for _select, just now
        try:
            response = proto.accept(self._request)
        finally:
            del proto._ocpp_handshake  # type: ignore[attr-defined]  # no cycle, no request kept
        for name, value in extra_headers:
            response.headers[name] = value
        # Frames pipelined after the request were parsed with it, and a ping
        # among them has its pong queued already: it goes out after the 101
        # (an answer to a refused upgrade carries nothing after it).
        early = self._proto.data_to_send()
        send_response(self._proto, response)
        if response.status_code == 101:
            self._proto.writes += early
        await _send_writes(self._proto, self._stream)
        if response.status_code != 101:
            release(self._proto)
            raise HandshakeFailed(
                f"not a valid WebSocket upgrade: {self._proto.handshake_exc}",
                response.status_code,
            )
        # websockets' parser keeps the request for the connection's life (a
        # local of its suspended generator); its headers are not needed now.
        self._request.headers.clear()
        return WSTransport(self._proto, self._stream)

    async def reject(
        self,
        status: int,
        extra_headers: Sequence[tuple[str | bytes, str | bytes]] = (),
        body: str = "",
    ) -> None:
        """Answer with an HTTP error status; the stream is to be closed afterwards."""
        response = self._proto.reject(status, body)
        for name, value in extra_headers:
            response.headers[_text(name)] = _text(value)
        self._proto.data_to_send()  # pongs for pipelined pings: nothing follows an HTTP error
        send_response(self._proto, response)
        try:
            await _send_writes(self._proto, self._stream)
        finally:
            release(self._proto)


def send_response(proto: ServerProtocol, response: Response) -> None:
    """``proto.send_response(response)``, also after the parser failed on what followed the request.

    Bytes pipelined after the upgrade request are parsed as frames; when they
    are not valid frames websockets fails the connection, which marks the
    end of our output as sent, and its ``send_response`` then trips on an
    assertion for any answer but 101.  The HTTP error is still owed: it is
    queued as is, and the stream is closed after it anyway.
    """
    if proto.eof_sent and response.status_code != 101:
        proto.writes.append(response.serialize())
        return
    proto.send_response(response)


def _select(proto: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    # Our server picks the subprotocol itself before accepting (in its own
    # order of preference, and None when there is none in common, which
    # OCPP-J answers with a 101 without the header and a close).
    handshake = getattr(proto, "_ocpp_handshake", None)
    chosen = handshake._chosen if handshake is not None else None
    return Subprotocol(chosen) if chosen is not None else None


@functools.cache
def _server_extensions(threshold: int, context_takeover: bool) -> tuple[ServerDeflateFactory, ...]:
    """permessage-deflate as the server accepts it (``deflate.py``).

    One factory per setting for every connection: it holds settings only
    (each negotiation makes an extension of its own), and nothing changes it.
    12 window bits and memLevel 5 bound what a compressing connection holds.

    Without ``context_takeover`` (the default) the answer carries
    ``server_no_context_takeover`` and ``client_no_context_takeover``, which a
    server may add to any offer (RFC 7692 §7.1.1): each message is compressed
    on its own, so neither end keeps a zlib stream between messages, and
    Node's ``ws`` (the WebSocket of most station simulators and of
    ocpp-ws-io and ocpp-rpc) applies its 1 KiB threshold only then: with
    context takeover it compresses every message, a Heartbeat included,
    which its CPU and ours pay for (``benchmarks/README.md``).
    """
    return (
        ServerDeflateFactory(
            server_no_context_takeover=not context_takeover,
            client_no_context_takeover=not context_takeover,
            server_max_window_bits=12,
            client_max_window_bits=12,
            compress_settings={"memLevel": 5},
            threshold=threshold,
        ),
    )


async def server_handshake(
    stream: trio.abc.Stream,
    *,
    max_message_size: int,
    compression: bool = True,
    compression_threshold: int = DEFAULT_COMPRESSION_THRESHOLD,
    compression_context_takeover: bool = False,
    max_fragments: int = MAX_FRAGMENTS,
) -> ServerHandshake:
    """Read one HTTP upgrade request from ``stream`` (callers bound the wait).

    ``max_message_size`` bounds an inbound message's bytes (inflated ones,
    with permessage-deflate), ``max_fragments`` the frames it may come in.

    Raises:
        HandshakeFailed: garbage (answered with an HTTP error, the exception's
            ``status``, or dropped), EOF, or a lost stream.
    """
    proto = OCPPServerProtocol(
        extensions=(
            _server_extensions(compression_threshold, compression_context_takeover)
            if compression
            else None
        ),
        select_subprotocol=_select,
        max_size=max_message_size,
        logger=quiet_logger,
    )
    proto.setup_messages(max_fragments)
    try:
        request = await _feed_until_event(proto, stream)
    except BaseException:
        release(proto)
        raise
    if not isinstance(request, Request):  # pragma: no cover - the server parser yields a Request
        raise HandshakeFailed("expected an HTTP request")
    return ServerHandshake(proto, stream, request)


class HandshakeRejectedStatus(HandshakeFailed):
    """The server answered the upgrade with an HTTP status other than 101."""

    status: int

    def __init__(self, status: int) -> None:
        super().__init__(f"server answered HTTP {status}", status)


async def client_handshake(
    stream: trio.abc.Stream,
    url: str,
    *,
    subprotocols: Sequence[str],
    headers: Sequence[tuple[str, str]],
    max_message_size: int,
    compression: bool = True,
    compression_threshold: int = DEFAULT_COMPRESSION_THRESHOLD,
    compression_context_takeover: bool = False,
    max_fragments: int = MAX_FRAGMENTS,
) -> tuple[WSTransport, Response]:
    """Send the upgrade request for ``url`` and check the answer (callers bound the wait).

    ``max_message_size`` and ``max_fragments`` bound inbound messages as for
    :func:`server_handshake`.

    Raises:
        HandshakeRejectedStatus: the server answered with an HTTP error status.
        HandshakeFailed: anything else that stopped the handshake.
    """
    proto = OCPPClientProtocol(
        parse_uri(url),
        extensions=[
            ClientDeflateFactory(
                # Without context takeover both ways (see _server_extensions):
                # a server that cannot do that declines the offer, and the
                # connection runs uncompressed (RFC 7692 §5).
                server_no_context_takeover=not compression_context_takeover,
                client_no_context_takeover=not compression_context_takeover,
                compress_settings={"memLevel": 5},
                threshold=compression_threshold,
            )
        ]
        if compression
        else None,
        subprotocols=[Subprotocol(p) for p in subprotocols] or None,
        max_size=max_message_size,
        logger=quiet_logger,
    )
    proto.setup_messages(max_fragments)
    request = proto.connect()
    for name, value in headers:
        request.headers[name] = value
    proto.send_request(request)
    await _send_writes(proto, stream)
    response = await _feed_until_event(proto, stream)
    exc = proto.handshake_exc
    if exc is not None:
        if isinstance(exc, InvalidStatus):
            raise HandshakeRejectedStatus(exc.response.status_code)
        if isinstance(exc, InvalidHandshake):
            raise HandshakeFailed(str(exc)) from exc
        raise HandshakeFailed(str(exc)) from exc
    assert isinstance(response, Response)
    return WSTransport(proto, stream), response
