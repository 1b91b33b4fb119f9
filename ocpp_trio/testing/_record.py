"""Record a connection's frames to JSON lines, and replay them against a handler.

A recording is what one connection saw: every WebSocket message it sent
(``out``) or received (``in``), with the time since the recording started on
the Trio clock (virtual under a ``MockClock``).  The file format, one JSON
object per line::

    {"format": "ocpp_trio.recording", "version": 1, "protocol": "ocpp1.6",
     "identity": "CP001", "role": "server"}
    {"t": 0.0, "dir": "in", "text": "[2,\\"1\\",\\"Heartbeat\\",{}]"}
    {"t": 0.0, "dir": "out", "text": "[3,\\"1\\",{\\"currentTime\\":...}]"}

Replaying runs the *peer's* side of a recording as a script against a fresh
connection in the recorded role (see :func:`replay`): it sends the recorded
inbound frames and checks that the connection under test sends the recorded
outbound frames, in order.  The ids of the calls the connection under test
makes are new in each run; the replay maps them, so the recorded answers still
reach the right calls.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Unpack, final

import trio

from .._core.protocol import Role
from .._rpc.connection import OCPPConnection
from .._rpc.options import ConnectionKwargs
from ..client import OCPPClient
from ..events import MessageEvent
from ._pair import ConnectionHandler, open_raw_peer

__all__ = ["RecordedFrame", "Recording", "ReplayMismatch", "record_frames", "replay"]

FORMAT: Final = "ocpp_trio.recording"
VERSION: Final = 1
_ROLES: Final = ("client", "server")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedFrame:
    """One WebSocket message of a recording.

    Attributes:
        time: seconds since the recording started (Trio clock).
        outbound: True when the recorded connection sent it.
        text: the message as sent (a binary message as its ``repr``).
    """

    time: float
    outbound: bool
    text: str


@final
@dataclass(slots=True, kw_only=True)
class Recording:
    """The frames one connection exchanged; see :func:`record_frames`.

    Attributes:
        protocol: the negotiated subprotocol.
        identity: the station identity.
        role: ``"client"`` (the station) or ``"server"`` (the CSMS).
        frames: the messages, in the order the connection saw them.
    """

    protocol: str
    identity: str
    role: Literal["client", "server"]
    frames: list[RecordedFrame] = field(default_factory=list)

    def dumps(self) -> str:
        """The recording as JSON lines (a header line, then one line per frame)."""
        header = {
            "format": FORMAT,
            "version": VERSION,
            "protocol": self.protocol,
            "identity": self.identity,
            "role": self.role,
        }
        lines = [json.dumps(header, ensure_ascii=False)]
        lines += [
            json.dumps(
                {"t": f.time, "dir": "out" if f.outbound else "in", "text": f.text},
                ensure_ascii=False,
            )
            for f in self.frames
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def loads(cls, text: str) -> Recording:
        """Parse :meth:`dumps`'s output.

        Raises:
            ValueError: not a recording (names the line).
        """
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise ValueError("empty recording")
        try:
            header = json.loads(lines[0])
        except ValueError:
            raise ValueError("line 1: not JSON") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"line 1: not an {FORMAT} header")
        if header.get("version") != VERSION:
            raise ValueError(f"line 1: unsupported version {header.get('version')!r}")
        role = header.get("role")
        if role not in _ROLES:
            raise ValueError(f"line 1: role must be 'client' or 'server', got {role!r}")
        frames = []
        for number, line in enumerate(lines[1:], start=2):
            try:
                item = json.loads(line)
                frames.append(
                    RecordedFrame(
                        time=float(item["t"]),
                        outbound={"out": True, "in": False}[item["dir"]],
                        text=str(item["text"]),
                    )
                )
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"line {number}: not a recorded frame") from None
        return cls(
            protocol=str(header["protocol"]),
            identity=str(header["identity"]),
            role=role,
            frames=frames,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`dumps` to ``path`` (UTF-8)."""
        Path(path).write_text(self.dumps(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recording:
        """Read a recording written by :meth:`save`."""
        return cls.loads(Path(path).read_text(encoding="utf-8"))


@contextmanager
def record_frames(
    conn: OCPPConnection | OCPPClient, path: str | os.PathLike[str] | None = None
) -> Iterator[Recording]:
    """Record every message ``conn`` sends or receives until the block ends.

    ``with record_frames(conn, "session.jsonl") as rec:`` hooks the
    connection's ``message`` event; on exit the callback is removed and, with
    ``path``, the recording is saved (also when the block raises).  With an
    ``OCPPClient`` the recording spans reconnects; the protocol is the one
    negotiated first.
    """
    role: Literal["client", "server"]
    role = "server" if isinstance(conn, OCPPConnection) and conn.role is Role.SERVER else "client"
    recording = Recording(protocol=conn.protocol or "", identity=conn.identity, role=role)
    start = trio.current_time()

    def on_message(event: MessageEvent) -> None:
        if not recording.protocol and conn.protocol:
            recording.protocol = conn.protocol
        recording.frames.append(
            RecordedFrame(
                time=trio.current_time() - start, outbound=event.outbound, text=event.text
            )
        )

    conn.on("message", on_message)
    try:
        yield recording
    finally:
        conn.off("message", on_message)
        if path is not None:
            recording.save(path)


class ReplayMismatch(AssertionError):
    """The connection under test did not send what the recording says.

    Attributes:
        index: the position of the frame in ``recording.frames``.
        expected: the recorded text.
        actual: what was sent instead (None: nothing, or the connection closed).
    """

    def __init__(self, index: int, expected: str, actual: str | None, why: str) -> None:
        super().__init__(f"frame {index}: {why}\n  expected: {expected}\n  actual:   {actual}")
        self.index = index
        self.expected = expected
        self.actual = actual


_IGNORED: Final = "<ignored>"


def _mask(value: Any, keys: Collection[str]) -> Any:
    if isinstance(value, dict):
        return {k: _IGNORED if k in keys else _mask(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, keys) for v in value]
    return value


def _parse(text: str) -> list[Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, list) and len(data) >= 2 else None


async def replay(
    recording: Recording,
    handler: ConnectionHandler | None = None,
    *,
    timing: bool = False,
    ignore_keys: Collection[str] = (),
    timeout: float = 10.0,
    **options: Unpack[ConnectionKwargs],
) -> list[tuple[RecordedFrame, str]]:
    """Replay the peer's side of ``recording`` against a fresh connection.

    The connection under test has the recorded role and protocol and runs
    ``handler(conn)`` (sync or async, as ``serve_ocpp`` runs it: install your
    handlers there).  A raw peer then walks the recording: each inbound
    frame is sent as recorded (an answer to one of the connection's calls
    gets that call's new id); at each outbound frame the next message the
    connection sends is compared with it, as JSON, ignoring the values of
    ``ignore_keys`` (at any depth, e.g. ``{"currentTime"}``) and the ids of
    the connection's own calls.

    Args:
        recording: what to replay (``Recording.load(path)``).
        handler: sets up the connection under test.
        timing: send each inbound frame at its recorded time (virtual under a
            ``MockClock``) instead of as soon as its turn comes.
        ignore_keys: payload keys whose values are not compared.
        timeout: how long to wait for each expected frame.
        **options: the connection's options (``strict_mode``...).

    Returns:
        ``(recorded frame, actual text)`` for each outbound frame.

    Raises:
        ReplayMismatch: a frame differs, did not come within ``timeout``, or
            the connection closed first.
    """
    under_test: Literal["csms", "station"] = "csms" if recording.role == "server" else "station"
    keys = frozenset(ignore_keys)
    id_map: dict[str, str] = {}
    matched: list[tuple[RecordedFrame, str]] = []
    async with open_raw_peer(
        recording.protocol,
        under_test=under_test,
        handler=handler,
        identity=recording.identity,
        **options,
    ) as (peer, _conn):
        start = trio.current_time()
        for index, frame in enumerate(recording.frames):
            if not frame.outbound:
                if timing:
                    await trio.sleep_until(start + frame.time)
                await peer.send(_rewrite_inbound(frame.text, id_map))
                continue
            try:
                actual = await peer.receive(timeout)
            except trio.TooSlowError:
                raise ReplayMismatch(
                    index, frame.text, None, f"nothing sent within {timeout} s"
                ) from None
            except Exception as exc:
                raise ReplayMismatch(index, frame.text, None, f"connection closed: {exc}") from None
            _compare(index, frame.text, actual, id_map, keys)
            matched.append((frame, actual))
    return matched


def _rewrite_inbound(text: str, id_map: dict[str, str]) -> str:
    data = _parse(text)
    if data is None or data[0] not in (3, 4) or not isinstance(data[1], str):
        return text
    new_id = id_map.get(data[1])
    if new_id is None:
        return text
    data[1] = new_id
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _compare(
    index: int, expected_text: str, actual_text: str, id_map: dict[str, str], keys: frozenset[str]
) -> None:
    expected, actual = _parse(expected_text), _parse(actual_text)
    if expected is None or actual is None:
        if expected_text != actual_text:
            raise ReplayMismatch(index, expected_text, actual_text, "the texts differ")
        return
    if expected[0] in (2, 6) and actual[0] == expected[0] and isinstance(actual[1], str):
        id_map[str(expected[1])] = actual[1]  # the connection's own call: a new id
        expected, actual = expected[:1] + expected[2:], actual[:1] + actual[2:]
    elif isinstance(expected[1], str):
        expected = [expected[0], id_map.get(expected[1], expected[1]), *expected[2:]]
    if _mask(expected, keys) != _mask(actual, keys):
        raise ReplayMismatch(index, expected_text, actual_text, "the frames differ")
