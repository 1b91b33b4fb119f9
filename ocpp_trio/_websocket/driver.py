"""A WebSocket transport driven by the task that reads it: websockets' Sans-I/O core over a Trio stream.

Theory of operation.  The WebSocket protocol itself (RFC 6455 framing,
masking, UTF-8 rules, the closing handshake, the opening handshake's HTTP,
permessage-deflate from RFC 7692) is the ``websockets`` library's Sans-I/O
``ServerProtocol``/``ClientProtocol``: bytes in, events and bytes out.  This
module shuttles bytes between it and a ``trio.abc.Stream``, with one shortcut:
the frame OCPP-J sends all the time (one whole text message in one frame,
uncompressed) is parsed and made here when nothing else is under way
(``OCPPFrames.take_plain_frames``, ``_text_frame``), at a quarter of the cost;
any other frame, or one that breaks a rule, goes to websockets, whose parser
is then exactly where it would have been.

There is no background task.  :meth:`WSTransport.receive` reads the stream
itself, feeds the parser and returns the next complete message; pings from the
peer are answered (the parser queues the pong) and pongs for our pings wake
:meth:`WSTransport.ping`, all inside that call.  The connection's reader task
is always in ``receive()``, so control frames keep flowing as long as the
connection runs; a message is answered by the same task that read it, with no
hop through a queue and another task (the trio-websocket transport costs one
task switch and one memory channel per message; see ``benchmarks/``).

Fairness.  One read of ``RECEIVE_SIZE`` bytes can hold thousands of small
messages; ``receive()`` passes a schedule point for each message it returns
from what an earlier read queued, so a peer that writes a burst is handled one
message per task step and every other connection keeps its turn.  Parsing is
bounded per step too: a read is fed to websockets' parser ``PARSE_SLICE``
bytes at a time (some 60 small frames), with a schedule point between.

What OCPP-J accepts of the peer, beyond what websockets checks.  Every OCPP-J
message is JSON text in UTF-8 (OCPP-J 1.6 §4.1.2, 2.0.1 Part 4 §4.1.2, 2.1
Part 4 §4.1.2); no binary message is defined.  So a text message that is not
UTF-8 fails the connection with 1007 (RFC 6455 §8.1), at the fragment where
the bytes go wrong (an incremental decoder), and a binary message fails it
with 1003, the code RFC 6455 §7.4.1 names for "an endpoint that understands
only text data".  A fragmented message is joined into one buffer as it comes,
and it may arrive in at most ``max_fragments`` frames: websockets bounds its
bytes (inflated ones too) by ``max_message_size``, but a frame costs a parse
and an event however few bytes it carries, so a message of millions of empty
continuation frames would cost without bound.  Past the bound the connection
fails with 1009, which RFC 6455 §7.4.1 gives to "a message that is too big
for it to process" (counted in frames here rather than bytes); 1008 is, in
its words, for when "there is no other more suitable status code".  These
checks run inside websockets' parser, frame by frame (``OCPPFrames``), so a
refused frame stops it: no later frame of the same read is parsed, answered
(a pong, a close echoed) or reported in its stead (RFC 6455 §7.1.7).

Writes from any task go through one FIFO lock, which keeps frames whole and in
order.  On a plain TCP stream (POSIX) a frame is first handed to the
non-blocking socket directly, with no task switch; only what the kernel does
not take at once goes through the stream's ``send_all`` (the common case
costs one system call: this halved the CPU time of a write, see
``benchmarks/``).  Writes are bounded by their callers' cancel scopes, never
shielded: a write cancelled before its frame's first byte leaves the queue
whole, one cancelled half-way aborts the connection (see ``_flush``).
:meth:`WSTransport.aclose` sends the close frame and waits for the peer's
(reading the stream itself when no task is in ``receive()``); callers bound it, and :meth:`WSTransport.abort` closes the stream in all cases.

The opening handshakes are in ``handshake.py``.
"""

from __future__ import annotations

import codecs
import logging
import os
from typing import Any, Final
from typing import Protocol as Interface

import trio
from websockets.client import ClientProtocol
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

try:  # websockets' C helper, which its own frames use
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a build without its C extension
    from websockets.utils import apply_mask

from .._core.errors import ConnectionClosed
from .._rpc.flag import Flag
from .deflate import LazyDeflate
from .transport import BINARY_REFUSED, CLOSE_ABNORMAL, CLOSE_UNSUPPORTED_DATA

log = logging.getLogger("ocpp_trio.websocket")


class _QuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger handed to websockets: warnings and errors only.

    websockets logs every handshake header at DEBUG (Authorization included)
    and one INFO line per connection; our own modules log what matters, and
    secrets never reach a log.
    """

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING and self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level >= logging.WARNING:
            super().log(level, msg, *args, **kwargs)


#: The logger handed to websockets' protocol objects.
quiet_logger = _QuietLogger(log, {})

#: Bytes asked of the stream per read.
RECEIVE_SIZE: Final = 65536

#: The most frames one message may come in by default (its first frame and its
#: continuations).  Peers that fragment at all do it at their buffer size (1 KiB
#: and up): 4,096 frames carry a 4 MiB message at 1 KiB a frame.
MAX_FRAGMENTS: Final = 4096

#: RFC 6455 §7.4.1 close codes this module fails a connection with.
CLOSE_NO_STATUS: Final = 1005  # a close frame without a code: echoed without one
CLOSE_INVALID_DATA: Final = 1007
CLOSE_TOO_BIG: Final = 1009

_utf8_decoder = codecs.getincrementaldecoder("utf-8")

_TEXT, _BINARY, _CONT, _PING, _PONG, _CLOSE = (
    Opcode.TEXT,
    Opcode.BINARY,
    Opcode.CONT,
    Opcode.PING,
    Opcode.PONG,
    Opcode.CLOSE,
)
_OPEN = State.OPEN
_SERVER = Side.SERVER
_UNBOUNDED: Final = 2**63
#: The parser is fed at most this much of a read per task step (see ``_parse_in_slices``).
PARSE_SLICE: Final = 2048
#: How long a client that failed the connection waits for the server to
#: close TCP before closing it itself.
CLIENT_CLOSE_WAIT: Final = 1.0


#: The close reason of a connection whose frame write was cancelled half-way.
HALF_WRITTEN: Final = "a frame write was cancelled half-way: the connection is aborted"

#: Whether a plain TCP stream's socket can be read and written with ``os.read``/``os.write``.
_DIRECT_IO: Final = os.name == "posix"


class MessageRefused(ProtocolError):
    """A message this end refuses although websockets' parser took its frames (see the module docstring).

    Raised inside websockets' parser, which stops there: nothing after the
    refused frame is parsed or answered (RFC 6455 §7.1.7).  It becomes the
    protocol's ``parser_exc``, as websockets' own parse errors do.

    Attributes:
        code: the close code the connection fails with.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class OCPPFrames(Protocol):
    """websockets' protocol, with OCPP-J's checks on each data frame as it is parsed.

    Mixed into websockets' server and client protocols below.  Complete
    messages are appended to ``messages`` as text; the checks run inside the
    parser, frame by frame, so that a refused frame stops it before any later
    frame of the same read is parsed (a ping answered, a close echoed, a
    protocol error reported instead).
    """

    ocpp_messages: list[str]
    ocpp_at_frame_start: bool
    _ocpp_max_frame: int
    _ocpp_max_fragments: int
    _ocpp_parts: bytearray | None
    _ocpp_decoder: codecs.IncrementalDecoder | None
    _ocpp_fragments: int

    def setup_messages(self, max_fragments: int = MAX_FRAGMENTS) -> None:
        """Start with no message; ``max_fragments`` bounds the frames of one."""
        # Mostly empty, or one message: a list (a deque starts at ~600 bytes).
        self.ocpp_messages = []
        self._ocpp_max_fragments = max_fragments
        self._ocpp_parts = None  # a fragmented message so far
        self._ocpp_decoder = None  # checks its UTF-8 as it comes
        self._ocpp_fragments = 0  # frames of it so far
        # Whether websockets' parser waits for the first byte of a frame with
        # nothing buffered (see take_plain_frames); unknown until it parsed one.
        self.ocpp_at_frame_start = False
        # The largest frame payload websockets' parser would take whole.
        limits = [
            size
            for size in (
                getattr(self, "max_message_size", getattr(self, "max_size", None)),
                getattr(self, "max_fragment_size", None),
            )
            if size is not None
        ]
        self._ocpp_max_frame = min(limits, default=_UNBOUNDED)

    def take_plain_frames(self, data: bytes | bytearray) -> int:
        """Parse the leading frames of ``data`` that are whole, single-frame text messages; return the bytes taken.

        The common frame of OCPP-J (a small unfragmented text message, masked
        from a client, uncompressed) is parsed here at a quarter of the cost
        of websockets' parser, which builds a ``Frame``, an event and a
        generator step per frame (``benchmarks/frame_path.py``).  Only while websockets' parser sits at a frame
        boundary with nothing buffered and the connection is open with no
        fragmented message under way; the first frame that is anything else
        (a control frame, a fragment, a continuation, RSV bits, the wrong
        masking, a 64-bit length, too big for ``max_size``, not UTF-8, or not
        whole in ``data``) stops it, and the rest of ``data`` goes to
        websockets' parser, which applies every rule of RFC 6455 to it as
        before.  The same frames, parsed either way, give the same messages.
        """
        if not self.ocpp_at_frame_start or self.state is not _OPEN or self.current_size is not None:
            return 0
        server = self.side is _SERVER
        mask_bit = 0x80 if server else 0
        largest = self._ocpp_max_frame
        messages = self.ocpp_messages
        at = 0
        end = len(data)
        while end - at >= 2:
            if data[at] != 0x81:  # FIN, no RSV bit, text
                break
            second = data[at + 1]
            if second & 0x80 != mask_bit:
                break
            length = second & 0x7F
            start = at + 2
            if length == 126:
                if end - start < 2:
                    break
                length = (data[start] << 8) | data[start + 1]
                start += 2
            elif length == 127:
                break
            if length > largest:
                break
            stop = start + 4 + length if server else start + length
            if stop > end:
                break
            payload: bytes | bytearray
            if server:
                payload = apply_mask(data[start + 4 : stop], data[start : start + 4])
            else:
                payload = data[start:stop]
            try:
                text = str(payload, "utf-8")
            except UnicodeDecodeError:
                break  # websockets' parser and _ocpp_take refuse it, with the usual close
            messages.append(text)
            at = stop
        return at

    def recv_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is _CLOSE and self.current_size is not None:
            # A close between the fragments of a message (a control frame may
            # come there, RFC 6455 §5.4) ends the connection like any close:
            # the unfinished message is dropped and the close echoed.
            # websockets would fail the connection with 1002 instead.
            self.current_size = None
            self._ocpp_parts = self._ocpp_decoder = None
        super().recv_frame(frame)  # websockets' own rules first (frame order, close)
        if opcode is _TEXT or opcode is _CONT or opcode is _BINARY:
            refusal = self._ocpp_take(frame)
            if refusal is not None:
                code, reason = refusal
                self._ocpp_parts = self._ocpp_decoder = None
                self.fail(code, reason)  # the close frame, with our code
                raise MessageRefused(code, reason)  # stops the parser
        # This frame's bytes are consumed: with none after them, the parser
        # goes back to wait for a frame's first byte.
        self.ocpp_at_frame_start = not self.reader.buffer

    def _ocpp_take(self, frame: Frame) -> tuple[int, str] | None:
        """Add a data frame to the message under way; return why it is refused, if it is."""
        opcode = frame.opcode
        if opcode is _TEXT:
            if frame.fin:
                try:
                    self.ocpp_messages.append(str(frame.data, "utf-8"))
                except UnicodeDecodeError as exc:
                    return CLOSE_INVALID_DATA, _not_utf8(exc, 0)
                return None
            checker = _utf8_decoder()
            try:
                checker.decode(frame.data)
            except UnicodeDecodeError as exc:
                return CLOSE_INVALID_DATA, _not_utf8(exc, 0)
            self._ocpp_parts = bytearray(frame.data)
            self._ocpp_decoder = checker
            self._ocpp_fragments = 1
            return None
        if opcode is _BINARY:
            return CLOSE_UNSUPPORTED_DATA, BINARY_REFUSED
        parts, decoder = self._ocpp_parts, self._ocpp_decoder
        # websockets has checked that a message is open; a binary one never is
        assert parts is not None
        assert decoder is not None
        self._ocpp_fragments += 1
        if self._ocpp_fragments > self._ocpp_max_fragments:
            return CLOSE_TOO_BIG, f"a message in more than {self._ocpp_max_fragments} fragments"
        try:
            decoder.decode(frame.data, frame.fin)
        except UnicodeDecodeError as exc:
            # the decoder holds back an unfinished character, counted again in exc.start
            held = len(decoder.getstate()[0])
            return CLOSE_INVALID_DATA, _not_utf8(exc, len(parts) - held)
        parts += frame.data
        if frame.fin:
            self._ocpp_parts = self._ocpp_decoder = None
            # valid: the decoder has just checked every byte of it
            self.ocpp_messages.append(parts.decode())
        return None


class OCPPServerProtocol(OCPPFrames, ServerProtocol):
    """websockets' server protocol with :class:`OCPPFrames`' checks."""


class OCPPClientProtocol(OCPPFrames, ClientProtocol):
    """websockets' client protocol with :class:`OCPPFrames`' checks."""


class PingListener(Interface):
    """Told of each ping the peer sends (it is answered already)."""

    def peer_ping(self, payload: bytes) -> None: ...


class WSTransport:
    """One open WebSocket over a Trio stream (see the module docstring)."""

    __slots__ = (
        "_aborted",
        "_closed",
        "_closed_event",
        "_failed",
        "_messages",
        "_out",
        "_pings",
        "_plain_below",
        "_proto",
        "_queued",
        "_read_waiter",
        "_reading",
        "_send_lock",
        "_stream",
        "_written",
        "on_ping",
    )

    def __init__(self, proto: OCPPFrames, stream: trio.abc.Stream) -> None:
        self._proto = proto
        self._stream = stream
        self._send_lock = trio.StrictFIFOLock()
        self._out: list[bytes] = []  # chunks taken from the protocol, not yet written
        self._queued = 0  # chunks put in _out so far
        self._written = 0  # chunks written (or given up on by a cancelled writer) so far
        self._failed: str | None = None  # why writing failed; nothing is written after that
        self._messages = proto.ocpp_messages  # what the parser completed, not yet returned
        self._pings: dict[bytes, trio.Event] | None = None  # our pings awaiting their pong
        self._closed: ConnectionClosed | None = None
        self._closed_event = Flag()
        self._reading = False
        self._aborted = False
        self._read_waiter: trio.Event | None = None
        #: Called with the payload of each ping the peer sends (it is answered already).
        self.on_ping: PingListener | None = None
        # Messages shorter than this go out as one plain frame made here (see send()).
        self._plain_below = _plain_below(proto)
        # Frames that arrived together with the handshake; receive() sends
        # their answers before it first waits for input.
        self._on_events()
        received = proto.close_rcvd
        if received is not None and proto.state is _OPEN and proto.close_sent is None:
            # A close frame sent along with the upgrade request was parsed
            # before the 101 made the connection open, so websockets did not
            # echo it: it is owed (RFC 6455 §5.5.1), with the same code.
            echo = b"" if received.code == CLOSE_NO_STATUS else received.serialize()
            proto.send_frame(Frame(Opcode.CLOSE, echo))
            proto.close_sent = received
            proto.close_rcvd_then_sent = True
            proto.state = State.CLOSING

    # --- facts -------------------------------------------------------------------

    @property
    def subprotocol(self) -> str | None:
        sub = self._proto.subprotocol
        return str(sub) if sub is not None else None

    @property
    def close_code(self) -> int | None:
        if self._closed is None:
            return None
        return self._closed.code

    @property
    def close_reason(self) -> str:
        return self._closed.reason if self._closed is not None else ""

    @property
    def failed_locally(self) -> bool:
        """Whether this end failed the connection (a protocol error or a too-big message)."""
        return self._proto.parser_exc is not None

    @property
    def compression(self) -> bool:
        """Whether permessage-deflate was negotiated."""
        return bool(self._proto.extensions)

    # --- receiving ---------------------------------------------------------------

    async def receive(self) -> str:
        """Return the next message (always text: see the module docstring).

        Raises:
            ConnectionClosed: the connection is closed (by the peer, by a
                protocol error or a refused message, or by the network).
        """
        messages = self._messages
        if messages:
            # Queued by an earlier read, which may have brought thousands: a
            # schedule point for each, so that one peer's burst does not hold
            # the whole event loop (a read passes one already).
            await trio.lowlevel.checkpoint()
            return messages.pop(0)
        proto = self._proto
        while not messages:
            if self._closed is not None:
                raise _fresh(self._closed)
            if proto.parser_exc is not None:
                await self._fail()
                continue
            if self._reading:
                # aclose() reads while no receive() is in progress; a stream has
                # one reader at a time, so wait for that read and look again.
                if self._read_waiter is None:
                    self._read_waiter = trio.Event()
                await self._read_waiter.wait()
                continue
            if proto.writes or proto.close_rcvd is not None:
                # Frames that came in the same read as the opening handshake
                # were parsed before this transport existed: their answers (a
                # pong, the reply to a close, RFC 6455 §5.5) go out now, not
                # with whatever is written next, and a close ends the
                # connection now, not after a read that may never return.
                await self._settle()
                continue
            await self._read_once()
        return messages.pop(0)

    async def _fail(self) -> None:
        """The parser met a protocol error (RFC 6455 §7.1.7): close now, not waiting for a close frame.

        A client still gives the server up to ``CLIENT_CLOSE_WAIT`` to close
        the TCP connection first, as RFC 6455 §7.1.1 asks.

        websockets has queued the close frame (1002, 1007, 1009...) if the
        connection was open; when the bad frame came along with the upgrade
        request it was not, so the close frame is sent here.
        """
        proto = self._proto
        if proto.state is _OPEN and proto.close_sent is None:
            # the code websockets would have sent (its parse()), or ours
            exc = proto.parser_exc
            if isinstance(exc, MessageRefused):
                proto.send_close(exc.code, str(exc))
            elif isinstance(exc, UnicodeDecodeError):
                proto.send_close(CLOSE_INVALID_DATA, "invalid UTF-8")
            elif isinstance(exc, PayloadTooBig):
                proto.send_close(CLOSE_TOO_BIG, "message too big")
            else:
                proto.send_close(1002, "protocol error")
        try:
            await self._flush()
        except ConnectionClosed:
            pass
        else:
            if proto.side is Side.CLIENT:
                # RFC 6455 §7.1.1: the server closes TCP first; a client
                # waits for that (briefly; what arrives is discarded).
                with trio.move_on_after(CLIENT_CLOSE_WAIT):
                    while self._closed is None:
                        await self._read_once()
        self._set_closed()

    async def _read_once(self) -> None:
        """Read once from the stream and feed the parser; then wake whoever waited for it.

        (One coroutine, not two: an idle connection's reader sits in here.)
        """
        proto = self._proto
        try:
            self._reading = True
            try:
                stream = self._stream
                data: bytes | bytearray
                if _DIRECT_IO and type(stream) is trio.SocketStream:
                    data = await _read_socket(stream.socket)
                else:
                    data = await stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            finally:
                self._reading = False
            if self._aborted:
                return  # abort() closed the parser meanwhile
            if not data:
                proto.receive_eof()
            elif len(data) <= PARSE_SLICE:
                self._feed(data)
            elif not await self._parse_in_slices(data):
                return  # aborted meanwhile
            self._on_events()
            await self._settle()
            if not data:
                self._set_closed()
        finally:
            waiter, self._read_waiter = self._read_waiter, None
            if waiter is not None:
                waiter.set()

    async def _parse_in_slices(self, data: bytes | bytearray) -> bool:
        """Feed a large read to the parser ``PARSE_SLICE`` bytes at a time, a schedule point between.

        websockets parses every complete frame of what it is fed at once: 64 KiB
        of small frames is some 2,000 of them and tens of milliseconds in one
        task step, which every other connection waits out (a flood from 500
        connections made that seconds per scheduling round).  Still the one
        reader: ``aclose()`` sees ``_reading`` and waits.  False when
        ``abort()`` came meanwhile (the parser is gone).
        """
        self._reading = True
        try:
            for start in range(0, len(data), PARSE_SLICE):
                if start:
                    await trio.lowlevel.checkpoint()
                    if self._aborted:
                        return False
                self._feed(data[start : start + PARSE_SLICE])
        finally:
            self._reading = False
        return True

    def _feed(self, data: bytes | bytearray) -> None:
        """Give ``data`` to the parser: whole plain text frames first (``take_plain_frames``), websockets the rest."""
        proto = self._proto
        taken = proto.take_plain_frames(data)
        if taken < len(data):
            proto.ocpp_at_frame_start = False
            proto.receive_data(data[taken:] if taken else data)

    async def _settle(self) -> None:
        """Write what the parser queued (pongs, a close reply); note a close received or sent."""
        proto = self._proto
        if proto.writes:
            try:
                await self._flush()
            except ConnectionClosed:
                pass
        if proto.close_rcvd is not None or proto.state is State.CLOSED:
            self._set_closed()

    def _on_events(self) -> None:
        """Act on the control frames the parser produced: tell of pings, wake the pings pongs answer.

        (Data frames were made into messages as they were parsed: ``OCPPFrames``.)
        """
        for frame in self._proto.events_received():
            if not isinstance(
                frame, Frame
            ):  # pragma: no cover - handshake events are taken earlier
                continue
            opcode = frame.opcode
            if opcode is _PING:
                if self.on_ping is not None:
                    self.on_ping.peer_ping(bytes(frame.data))
            elif opcode is _PONG:
                self._wake_pings(bytes(frame.data))

    def _wake_pings(self, payload: bytes) -> None:
        pings = self._pings
        if pings is None or payload not in pings:
            return
        while pings:  # a pong answers its ping and every earlier one
            key = next(iter(pings))
            pings.pop(key).set()
            if key == payload:
                break
        if not pings:
            self._pings = None

    def _set_closed(self, failure: str = "") -> None:
        """Closed: by the peer's close frame, our protocol error, or ``failure`` (1006)."""
        if self._closed is not None:
            return
        received = self._proto.close_rcvd
        if received is None and self._proto.parser_exc is not None:
            received = self._proto.close_sent  # we failed the connection: our code tells why
        if received is not None and not failure:
            code, reason = received.code, received.reason
        else:
            code, reason = CLOSE_ABNORMAL, failure
        what = f"{code}: {reason}" if reason else str(code)
        self._closed = ConnectionClosed(f"connection closed ({what})", code=code, reason=reason)
        self._closed_event.set()
        pings, self._pings = self._pings, None
        for event in (pings or {}).values():
            event.set()

    # --- sending -----------------------------------------------------------------

    def _take(self) -> int:
        """Move what the protocol has to send to the out-queue; return the number of its last chunk.

        Chunks are numbered in the order the protocol produced them (the order
        they must go out in: permessage-deflate's context depends on it).
        """
        for chunk in self._proto.data_to_send():
            if chunk and self._failed is None:
                self._out.append(chunk)
                self._queued += 1
        return self._queued

    async def _flush(self, frame: bytes | None = None) -> None:
        """Write the queued chunks, in order, until this caller's own are written.

        ``frame``, made by the caller, is queued after what the protocol has
        to send.

        Each caller learns whether *its* bytes went out: it returns once the
        chunks up to its own are written, even when a later chunk (another
        caller's) then fails, and raises ``ConnectionClosed`` only when its own
        were not written.  A ``send()`` that returned means the frame reached
        the kernel; one that raised means it did not.

        Cancellation (Trio's rule for a stream whose ``send_all`` was
        cancelled: its state is unknown).  A caller cancelled while it waits
        for the lock, or before the first byte of the chunk at the head of the
        queue is written, leaves the queue whole: its frame goes out with the
        next write (the holder of the lock writes everything queued, so
        nothing is stranded behind it).  A caller cancelled once a chunk is on
        its way has left a frame half-written: the connection is aborted at
        once (no later frame could be parsed by the peer), with that reason.
        No write is shielded; the caller's own cancel scopes bound it.
        """
        upto = self._take()
        if frame is not None and self._failed is None:
            self._out.append(frame)
            upto = self._queued = upto + 1
        # A free lock is taken without the schedule point acquire() adds (the
        # nowait form refuses while anyone is queued, so the order stays
        # FIFO); a write the kernel takes at once makes no switch at all.
        lock = self._send_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            out = self._out
            # Everything queued, not only up to our own chunk: a writer
            # cancelled while waiting for the lock has left its frame here.
            while self._written < self._queued:
                if self._failed is not None:
                    break
                chunk = out[0]
                sent = self._write_now(chunk)
                if sent < len(chunk):
                    if not sent:
                        # Nothing of it is on the wire yet: a cancellation
                        # here leaves the queue whole.
                        await trio.lowlevel.checkpoint_if_cancelled()
                    try:
                        await self._stream.send_all(memoryview(chunk)[sent:])
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        self._failed = f"connection lost while sending: {exc or type(exc).__name__}"
                    except trio.Cancelled:
                        self._failed = HALF_WRITTEN
                        out.clear()
                        self._set_closed(HALF_WRITTEN)
                        with trio.CancelScope(shield=True):  # bounded: closes at once
                            await self.abort()
                        raise
                if self._failed is not None:
                    break
                del out[0]
                self._written += 1
            if self._written < upto:
                assert self._failed is not None
                out.clear()
                self._set_closed(self._failed)
                raise ConnectionClosed(self._failed, code=CLOSE_ABNORMAL, reason=self._failed)
        finally:
            lock.release()

    def _write_now(self, chunk: bytes) -> int:
        """Hand ``chunk`` to a plain TCP socket at once; return how many bytes it took.

        The socket is non-blocking, so this never waits: 0 when the kernel's
        buffer is full, when the stream is not a plain ``trio.SocketStream``
        (TLS has state of its own), or on an error, which ``send_all`` then
        meets and reports as usual.  ``fileno()`` is -1 once the socket is
        closed, so a file descriptor number reused since is never written.
        """
        stream = self._stream
        if not _DIRECT_IO or type(stream) is not trio.SocketStream:
            return 0
        fd = stream.socket.fileno()
        if fd < 0:
            return 0
        try:
            return os.write(fd, chunk)
        except OSError:
            return 0

    async def send(self, text: str) -> None:
        if self._closed is not None:
            raise _fresh(self._closed)
        proto = self._proto
        if proto.state is not _OPEN:
            raise ConnectionClosed("connection is closing", code=proto.close_code or CLOSE_ABNORMAL)
        data = text.encode()
        if len(data) < self._plain_below and not proto.expect_continuation_frame:
            # The frame websockets would make (one uncompressed text frame:
            # no extension, or permessage-deflate below its threshold),
            # without its Frame object and checks (benchmarks/frame_path.py).
            await self._flush(_text_frame(data, proto.side is _SERVER))
        else:
            proto.send_text(data)
            await self._flush()

    async def ping(self, payload: bytes) -> None:
        if self._closed is not None:
            raise _fresh(self._closed)
        if self._pings is not None and payload in self._pings:
            raise ValueError("a ping with this payload is already in flight")
        if self._proto.state is not _OPEN:
            # closing or closed, and the reader has not said so yet (it is
            # flushing): websockets would raise InvalidState (found by the soak)
            raise ConnectionClosed(
                "connection is closing", code=self._proto.close_code or CLOSE_ABNORMAL
            )
        event = trio.Event()
        if self._pings is None:
            self._pings = {}
        self._pings[payload] = event
        self._proto.send_ping(payload)
        await self._flush()
        await event.wait()
        if self._closed is not None:
            raise _fresh(self._closed)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        try:
            proto = self._proto
            if self._closed is None and proto.parser_exc is not None:
                # The parser failed the connection and queued its close frame
                # (1002, 1007...) after messages the caller was still handed:
                # that close goes out now, not after a read.
                await self._fail()
            if self._closed is None and proto.state is _OPEN:
                proto.send_close(code, reason)
                try:
                    await self._flush()
                except ConnectionClosed:
                    return
            while self._closed is None:
                if self._reading:  # the reader task will see the peer's close
                    await self._closed_event.wait()
                else:
                    await self._read_once()
        finally:
            await self.abort()

    async def abort(self) -> None:
        self._set_closed()
        self._aborted = True
        release(self._proto)
        await trio.aclose_forcefully(self._stream)


async def _read_socket(sock: trio.socket.SocketType) -> bytes:
    """Read what a plain TCP socket has (at most ``RECEIVE_SIZE`` bytes); b"" at EOF or error.

    What ``SocketStream.receive_some`` does, without its layers of coroutines
    and context managers: an idle connection's reader waits in here, and each
    level of its stack is memory every idle station holds (about 1 KiB).  A
    checkpoint either way, as ``receive_some`` is.  Raises
    ``trio.ClosedResourceError`` when the socket is closed meanwhile
    (``abort()``).
    """
    fd = sock.fileno()
    if fd < 0:  # closed (a descriptor number reused since is never read)
        await trio.lowlevel.checkpoint()
        return b""
    try:
        data = os.read(fd, RECEIVE_SIZE)
    except BlockingIOError:
        pass
    except OSError:  # reset by the peer, or the like: the end of this stream
        await trio.lowlevel.checkpoint()
        return b""
    else:
        await trio.lowlevel.checkpoint()
        return data
    while True:
        await trio.lowlevel.wait_readable(sock)
        fd = sock.fileno()
        if fd < 0:
            return b""
        try:
            return os.read(fd, RECEIVE_SIZE)
        except BlockingIOError:
            continue
        except OSError:
            return b""


def _plain_below(proto: Protocol) -> int:
    """The size under which a text message goes out as a plain frame (``WSTransport.send``)."""
    extensions = proto.extensions
    if not extensions:
        return _UNBOUNDED
    if len(extensions) == 1 and isinstance(extensions[0], LazyDeflate):
        return extensions[0].threshold  # below it, sent uncompressed (deflate.py)
    return 0  # an extension of another kind: websockets makes every frame


def _text_frame(data: bytes, server: bool) -> bytes:
    """One whole text frame carrying ``data``, masked unless a server sends it (RFC 6455 §5.2)."""
    length = len(data)
    if length < 126:
        head = bytes((0x81, length | (0 if server else 0x80)))
    elif length < 65536:
        head = bytes((0x81, 126 if server else 254)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127 if server else 255)) + length.to_bytes(8, "big")
    if server:
        return head + data
    mask = os.urandom(4)
    return head + mask + apply_mask(data, mask)


def release(proto: Protocol) -> None:
    """Break the reference cycles of a websockets protocol that is done with.

    Its parser is a generator that refers to the protocol, a server's
    ``select_subprotocol`` hook is bound to it, and the errors that stopped
    the handshake or the parser hold tracebacks whose frames refer to it.
    Left alone, a closed connection (its buffers, its zlib contexts) would
    wait for one of the garbage collector's full passes, which stall the event
    loop for a long time on a server with a large heap.
    """
    proto.parser.close()
    vars(proto).pop("select_subprotocol", None)
    for exc in (proto.parser_exc, getattr(proto, "handshake_exc", None)):
        if exc is not None:
            exc.__traceback__ = None


def _fresh(exc: ConnectionClosed) -> ConnectionClosed:
    """A new exception like ``exc``: the stored one is never raised, so it never
    holds a traceback, whose frames would hold the transport in a reference
    cycle that only the garbage collector's full passes free."""
    return ConnectionClosed(str(exc), code=exc.code, reason=exc.reason)


def _not_utf8(exc: UnicodeDecodeError, offset: int) -> str:
    """The close reason for a text message that is not UTF-8 (``offset``: bytes before this frame)."""
    return f"invalid UTF-8 at byte {offset + exc.start} of a text message"
