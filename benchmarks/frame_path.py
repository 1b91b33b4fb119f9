"""What one plain text frame costs the driver, parsed and made by it, against websockets' own path.

The driver (``ocpp_trio/_websocket/driver.py``) parses a whole, unfragmented,
uncompressed text frame itself (``OCPPFrames.take_plain_frames``) and makes
such a frame itself (``WSTransport.send``); everything else goes through
websockets' Sans-I/O protocol.  This measures both ways on a server-side
protocol in the open state, for a Heartbeat CALL (what a server reads) and
its CALLRESULT (what it writes): microseconds per frame, best of 7 runs.
Asserts nothing.

    python benchmarks/frame_path.py [--frames 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import timeit

import trio.testing
from websockets.protocol import State
from websockets.utils import apply_mask

from ocpp_trio._websocket.driver import OCPPServerProtocol, WSTransport, _text_frame

REQUEST = b'[2,"19223201-7a4f-4d83-9b5c-5d6b0c36a1c2","Heartbeat",{}]'
ANSWER = b'[3,"19223201-7a4f-4d83-9b5c-5d6b0c36a1c2",{"currentTime":"2026-12-02T18:00:00Z"}]'
UPGRADE = (
    b"GET /ocpp/CP1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def open_server() -> OCPPServerProtocol:
    proto = OCPPServerProtocol()
    proto.setup_messages()
    proto.receive_data(UPGRADE)
    (request,) = proto.events_received()
    proto.send_response(proto.accept(request))
    proto.data_to_send()
    assert proto.state is State.OPEN
    return proto


def masked(payload: bytes) -> bytes:
    key = os.urandom(4)
    return bytes((0x81, 0x80 | len(payload))) + key + apply_mask(payload, key)


def best(fn: object, frames: int) -> float:
    return min(timeit.repeat(fn, number=frames, repeat=7)) / frames * 1e6  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=20000)
    opts = parser.parse_args()
    frame = masked(REQUEST)

    websockets_alone = open_server()

    def parse_websockets() -> None:
        websockets_alone.receive_data(frame)
        websockets_alone.events_received()
        websockets_alone.ocpp_messages.pop()

    driver = open_server()
    transport = WSTransport(driver, trio.testing.memory_stream_pair()[0])
    transport._feed(frame)  # websockets parses the first frame; the driver the next ones
    driver.ocpp_messages.pop()

    def parse_driver() -> None:
        transport._feed(frame)
        driver.ocpp_messages.pop()

    sender = open_server()

    def make_websockets() -> None:
        sender.send_text(ANSWER)
        sender.data_to_send()

    def make_driver() -> None:
        _text_frame(ANSWER, True)

    print(f"# one plain text frame, {platform.python_version()} on {platform.machine()}")
    print("| step | websockets | driver |")
    print("| --- | ---: | ---: |")
    print(
        f"| parse a Heartbeat CALL ({len(frame)} bytes) | {best(parse_websockets, opts.frames):.2f} µs"
        f" | {best(parse_driver, opts.frames):.2f} µs |"
    )
    print(
        f"| make its CALLRESULT ({len(ANSWER)} bytes) | {best(make_websockets, opts.frames):.2f} µs"
        f" | {best(make_driver, opts.frames):.2f} µs |"
    )


if __name__ == "__main__":
    main()
