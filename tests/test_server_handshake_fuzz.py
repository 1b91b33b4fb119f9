"""Property test: no upgrade request, however malformed, hurts the server.

Hypothesis writes raw requests (random paths with percent sequences, header
names and values, subprotocol lists, garbage bytes) over raw trio TCP streams
at ONE running server.  Each example runs in its own ``trio.run`` (Hypothesis
drives a sync function), so the server runs in a thread with its own Trio
loop.  The properties: every answer is an HTTP status line or nothing, never
a 5xx; the server logs no WARNING (which would mean an unexpected failure in
a stream's task); and a good station still connects afterwards.
"""

from __future__ import annotations

import logging
import string
import threading
from functools import partial

import trio
import trio.lowlevel
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ocpp_trio import open_ocpp_client
from ocpp_trio.server import OCPPServer, serve_ocpp

from .conftest import status_of, upgrade_request

TIMEOUT = 10.0
PATIENCE = 0.2

# --- strategies (module constants) ---------------------------------------------

PATH_PIECES = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=1, max_size=8),
    st.sampled_from(["/", "%", "%2F", "%2f", "%ZZ", "%FF", "%C3%A9", "%00", "?", "&", "=", "#"]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=6),
)
PATHS = st.lists(PATH_PIECES, max_size=12).map(lambda parts: "/" + "".join(parts))
SUBPROTOCOL_LISTS = st.lists(
    st.sampled_from(["ocpp1.6", "ocpp2.0.1", "ocpp2.1", "ocpp1.5", "", " ", "x" * 300, "é"]),
    max_size=5,
).map(lambda names: ",".join(names))
HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            "Authorization",
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Version",
            "Sec-WebSocket-Extensions",
            "Connection",
            "Upgrade",
            "Host",
            "Content-Length",
            "Transfer-Encoding",
        ]
    ),
    st.text(alphabet="abcXYZ-_:\r\n ", min_size=1, max_size=10),
)
HEADER_VALUES = st.one_of(
    st.sampled_from(["Basic Q1AwMDE6c2VjcmV0", "Basic", "13", "8", "permessage-deflate", "0"]),
    st.text(alphabet=st.characters(max_codepoint=255), max_size=40),
)
GARBAGE = st.binary(max_size=200)


@st.composite
def upgrade_requests(draw: st.DrawFn) -> bytes:
    """A WebSocket upgrade request with some of its parts fuzzed, or pure garbage."""
    if draw(st.integers(0, 9)) == 0:
        return draw(GARBAGE)
    method = "GET" if draw(st.integers(0, 9)) else draw(st.sampled_from(["POST", "get", "G\x00T"]))
    version = "HTTP/1.1" if draw(st.integers(0, 9)) else draw(st.sampled_from(["HTTP/1.0", "X"]))
    lines = [f"{method} {draw(PATHS)} {version}"]
    base = [
        ("Host", "127.0.0.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    for name, value in base:
        if draw(st.integers(0, 19)) > 0:  # usually keep each required header
            lines.append(f"{name}: {value}")
    if draw(st.booleans()):
        lines.append(f"Sec-WebSocket-Protocol: {draw(SUBPROTOCOL_LISTS)}")
    for name, value in draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=4)):
        lines.append(f"{name}: {value}")
    head = "\r\n".join(lines).encode("utf-8", "surrogatepass")
    end = b"\r\n\r\n" if draw(st.integers(0, 9)) else draw(st.sampled_from([b"\r\n", b"\n\n"]))
    tail = b"" if draw(st.integers(0, 3)) else draw(GARBAGE)
    return head + end + tail


# --- the server, in a thread of its own ----------------------------------------


class ThreadedServer:
    """``serve_ocpp`` running in its own thread and Trio loop."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.server: OCPPServer | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        self.thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.ready.set()

    async def _main(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self.server = await nursery.start(
                partial(
                    serve_ocpp,
                    None,
                    0,
                    host="127.0.0.1",
                    handshake_timeout=0.5,
                    close_timeout=0.5,
                    ping_interval=0,
                )
            )
            self.ready.set()

    def start(self) -> int:
        self.thread.start()
        assert self.ready.wait(TIMEOUT)
        assert self.error is None, self.error
        assert self.server is not None
        return self.server.port

    def stop(self) -> None:
        if self.server is not None and self.token is not None and self.thread.is_alive():
            trio.from_thread.run(self.server.close, trio_token=self.token)
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()


class Warnings(logging.Handler):
    """Collects ocpp_trio log records at WARNING and above (from any thread)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def send_request(port: int, data: bytes) -> bytes:
    """Send ``data`` and read the answer's head (or until the server closes).

    A request the server cannot finish leaves it waiting; we hang up after
    ``PATIENCE`` seconds rather than wait for its handshake timeout.
    """
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = bytearray()
    async with stream:
        with trio.move_on_after(PATIENCE):
            try:
                await stream.send_all(data)
                while b"\r\n\r\n" not in received and (chunk := await stream.receive_some()):
                    received += chunk
            except trio.BrokenResourceError:
                pass
    return bytes(received)


async def good_station(port: int) -> str | None:
    with trio.fail_after(TIMEOUT):
        async with open_ocpp_client(
            f"ws://127.0.0.1:{port}/ocpp",
            identity="GOOD",
            reconnect=False,
            ping_interval=0,
            connect_timeout=5,
        ) as client:
            return client.protocol


def test_malformed_handshakes_never_hurt_the_server() -> None:
    logger = logging.getLogger("ocpp_trio")
    warnings = Warnings()
    logger.addHandler(warnings)
    served = ThreadedServer()
    statuses: set[int | None] = set()
    try:
        port = served.start()

        @settings(
            max_examples=100,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(request=upgrade_requests())
        @example(request=upgrade_request("/ocpp/EXAMPLE"))
        @example(request=upgrade_request("/ocpp/%ZZ"))
        def one_request(request: bytes) -> None:
            response = trio.run(send_request, port, request)
            status = status_of(response)
            assert response == b"" or status is not None, response[:100]
            # 5xx would be the server's own trouble; 505 answers the peer's HTTP version.
            assert status is None or status < 500 or status == 505, response[:200]
            statuses.add(status)

        one_request()
        assert trio.run(good_station, port) == "ocpp1.6"
    finally:
        served.stop()
        logger.removeHandler(warnings)
    assert served.error is None, served.error
    assert not warnings.records, [r.getMessage() for r in warnings.records]
    assert {101, 400} <= statuses  # both sides of the decision were exercised
