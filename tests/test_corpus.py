"""The hostile-input corpus (``tests/corpus/``), replayed; and short runs of the fuzz targets.

- ``corpus/frames/malformed.jsonl``: one frame a line, ``{"rule", "text",
  "expect": {protocol: [reply id, error code] | null | "accept"}}``; null: not
  answered.  Replayed at the sans-IO core and over a connection (the reply on
  the wire is the expected one, the connection stays open).
- ``corpus/frames/*.txt``: one message a file (big or binary ones): the core
  never raises, a reply is a CALLERROR that reads back.
- ``corpus/handshakes/*.bin``: raw bytes sent to a running server on port 0;
  ``expect.json`` says what each gets (an HTTP error, a drop, a timeout...).
  After all of them at once, a good station still connects and is answered.

Every bug the corpus or the fuzzers find becomes a new file here.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio

from ocpp_trio import ConnectionClosed, open_ocpp_client, serve_ocpp
from ocpp_trio._core.frames import CallError, decode
from ocpp_trio._core.protocol import BadMessage, Role, RPCProtocol
from ocpp_trio.server import HandshakeRejectedEvent, OCPPServer
from ocpp_trio.testing import open_raw_peer

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"
PROTOCOLS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
HANDSHAKE_TIMEOUT = 0.5


def _frame_cases() -> list[dict[str, Any]]:
    lines = (CORPUS / "frames" / "malformed.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


FRAME_CASES = _frame_cases()
FRAME_FILES = sorted((CORPUS / "frames").glob("*.txt"))
HANDSHAKE_EXPECT: dict[str, dict[str, Any]] = {
    name: value
    for name, value in json.loads((CORPUS / "handshakes" / "expect.json").read_text()).items()
    if not name.startswith("_")
}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "fuzz" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- frames: the sans-IO core ----------------------------------------------------


def test_every_handshake_file_has_an_expectation() -> None:
    files = {p.stem for p in (CORPUS / "handshakes").glob("*.bin")}
    assert files == set(HANDSHAKE_EXPECT)


@pytest.mark.parametrize("case", FRAME_CASES, ids=[c["rule"] for c in FRAME_CASES])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_frame_corpus_at_the_core(case: dict[str, Any], protocol: str) -> None:
    expect = case["expect"][protocol]
    event = RPCProtocol(protocol=protocol, role=Role.SERVER).receive(case["text"])
    if expect == "accept":
        assert not isinstance(event, BadMessage), event
        return
    assert isinstance(event, BadMessage), event
    if expect is None:
        assert event.reply is None
    else:
        assert event.reply is not None
        assert json.loads(event.reply)[:3] == [4, *expect]


@pytest.mark.parametrize("path", FRAME_FILES, ids=[p.name for p in FRAME_FILES])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_frame_files_at_the_core(path: Path, protocol: str) -> None:
    data = path.read_bytes()
    for message in (data, data.decode("utf-8", "replace")):
        event = RPCProtocol(protocol=protocol, role=Role.SERVER).receive(message)
        if isinstance(event, BadMessage) and event.reply is not None:
            assert isinstance(decode(event.reply), CallError)


# --- frames: over a connection ----------------------------------------------------


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_frame_corpus_over_a_connection(protocol: str, autojump_clock: Any) -> None:
    """Each bad frame, then a sentinel CALL: what came before the sentinel's answer is the reply."""

    def install(conn: Any) -> None:
        conn.handle("Heartbeat", lambda ctx: {"currentTime": "2026-01-01T00:00:00Z"})

    bad: list[Any] = []
    cases = [c for c in FRAME_CASES if c["expect"][protocol] != "accept"]
    # Files that are not UTF-8 can only go as binary messages, which close the
    # connection (1003): test_binary_corpus_files_close_with_1003.
    files = [raw for raw in (p.read_bytes() for p in FRAME_FILES) if _is_utf8(raw)]
    # Some corpus frames (nested-objects, many-keys) are larger than the default
    # max_message_size: here they must reach the decoder, not close the connection.
    async with open_raw_peer(protocol, handler=install, max_message_size=2**20) as (peer, conn):
        conn.on("bad_message", bad.append)
        messages: list[tuple[str | bytes, Any]] = [
            (c["text"], c["expect"][protocol]) for c in cases
        ]
        messages += [(raw.decode(), "any") for raw in files]
        for index, (message, expect) in enumerate(messages):
            await peer.send(message)
            sentinel = f"sentinel-{index}"
            await peer.send(json.dumps([2, sentinel, "Heartbeat", {}]))
            replies = []
            while (frame := await peer.receive_json())[1] != sentinel:
                replies.append(frame)
            assert frame[0] == 3, frame
            if expect == "any":
                assert all(r[0] == 4 for r in replies), replies
            elif expect is None:
                assert replies == [], (message, replies)
            else:
                assert [r[:3] for r in replies] == [[4, *expect]], (message, replies)
        assert conn.state.name == "OPEN"
    assert len(bad) == len(messages) - sum(
        1
        for raw in files
        if RPCProtocol(protocol=protocol).receive(raw).__class__ is not BadMessage
    )


@pytest.mark.parametrize(
    "path", [p for p in FRAME_FILES if not _is_utf8(p.read_bytes())], ids=lambda p: p.name
)
async def test_binary_corpus_files_close_with_1003(path: Path, autojump_clock: Any) -> None:
    """A message that is not UTF-8 text goes as a binary message: the connection
    closes with 1003 (OCPP-J messages are text), nothing is answered."""
    message = path.read_bytes()  # noqa: ASYNC240 (a small file, read once)
    async with open_raw_peer("ocpp2.0.1") as (peer, conn):
        await peer.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            await peer.receive()
        assert closed.value.code == 1003
        await conn.wait_closed()


# --- handshakes: a real server on port 0 --------------------------------------------


async def _replay(port: int, data: bytes, expect: dict[str, Any]) -> tuple[int, str]:
    """Send ``data``; check the outcome; return our local port and a summary."""
    outcome = expect["outcome"]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    local_port: int = stream.socket.getsockname()[1]
    received = bytearray()
    started = trio.current_time()
    async with stream:
        with trio.fail_after(HANDSHAKE_TIMEOUT + 5):
            try:
                await stream.send_all(data)
            except trio.BrokenResourceError:  # pragma: no cover - dropped before we finished
                pass
            try:
                while chunk := await stream.receive_some():
                    received += chunk
                    if outcome == "upgraded" and b"\r\n\r\n" in received:
                        break
            except trio.BrokenResourceError:  # reset after an HTTP error: fine
                pass
    elapsed = trio.current_time() - started
    head = bytes(received).split(b"\r\n", 1)[0]
    summary = f"{outcome}: got {head[:60]!r} after {elapsed:.2f} s"
    if outcome == "refused":
        assert head.startswith(b"HTTP/1.1 %d " % expect["status"]), summary
    elif outcome == "dropped":
        assert received == b"", summary
        assert elapsed < HANDSHAKE_TIMEOUT, summary
    elif outcome == "timeout":
        assert received == b"", summary
        assert elapsed >= HANDSHAKE_TIMEOUT * 0.9, summary
    elif outcome == "upgraded":
        assert head.startswith(b"HTTP/1.1 101 "), summary
    else:
        assert outcome == "upgraded_then_closed"
        assert head.startswith(b"HTTP/1.1 101 "), summary
        frames = bytes(received).split(b"\r\n\r\n", 1)[1]
        assert frames[:1] == b"\x88", summary  # a close frame
        assert frames[2:4] == (1002).to_bytes(2, "big"), summary
    return local_port, summary


async def test_handshake_corpus_against_a_running_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ocpp_trio")
    rejected: list[HandshakeRejectedEvent] = []
    ports: dict[str, int] = {}
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server: OCPPServer = await nursery.start(
                partial(
                    serve_ocpp,
                    None,
                    0,
                    host="127.0.0.1",
                    handshake_timeout=HANDSHAKE_TIMEOUT,
                    ping_interval=0,
                )
            )
            server.on("handshake_rejected", rejected.append)

            async def one(name: str) -> None:
                data = (CORPUS / "handshakes" / f"{name}.bin").read_bytes()
                ports[name], _ = await _replay(server.port, data, HANDSHAKE_EXPECT[name])

            async with trio.open_nursery() as cases:  # all at once, as an attacker would
                for name in HANDSHAKE_EXPECT:
                    cases.start_soon(one, name)

            # the server carries on
            async with open_ocpp_client(
                f"ws://127.0.0.1:{server.port}/ocpp",
                identity="GOOD1",
                reconnect=False,
                ping_interval=0,
            ) as client:
                with pytest.raises(Exception, match=r"NotImplemented|NotSupported"):
                    await client.call("Heartbeat", {})
            await server.close()
    by_port = {e.remote[1]: e for e in rejected if e.remote is not None}
    for name, expect in HANDSHAKE_EXPECT.items():
        if expect["outcome"] in ("refused", "dropped", "timeout"):
            assert ports[name] in by_port, f"{name}: no handshake_rejected event"
            # the event carries the status that was sent, or None when nothing was
            event = by_port[ports[name]]
            assert event.status == expect.get("status"), f"{name}: {event}"
    # a WARNING from the server means a stream's task failed unexpectedly
    server_warnings = [r for r in caplog.records if r.name == "ocpp_trio.server"]
    assert [r.getMessage() for r in server_warnings if r.levelno >= logging.WARNING] == []


# --- the fuzz targets, briefly --------------------------------------------------------


def test_fuzz_frames_short_run() -> None:
    _load("fuzz_frames").run_hypothesis(300, seed=11)


def test_fuzz_handshake_short_run() -> None:
    _load("fuzz_handshake").run_hypothesis(300, seed=11)


def test_fuzz_targets_accept_the_corpus() -> None:
    frames, handshake = _load("fuzz_frames"), _load("fuzz_handshake")
    for case in FRAME_CASES:
        frames.check_frame(case["text"])
    for path in FRAME_FILES:
        frames.check_frame(path.read_bytes())
    for path in sorted((CORPUS / "handshakes").glob("*.bin")):
        handshake.check_handshake(path.read_bytes(), (17,))
