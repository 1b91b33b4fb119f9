"""Fuzz target: the server's reading of an HTTP upgrade request, without sockets.

The bytes go through what the server runs on a real stream: websockets'
Sans-I/O ``ServerProtocol`` (configured as ``ocpp_trio._websocket.handshake.server_handshake``
configures it), then ``ocpp_trio._server.admission``'s decisions (identity from the
path, Basic Auth for profiles 0 and 1, subprotocol choice), then the 101 or
the HTTP error.  The property: nothing raises but a ``Refusal`` with a
4xx/5xx status; whatever goes back to the peer is an HTTP/1.1 status line.

Run it three ways:

- coverage-guided, with atheris (``pip install atheris``)::

      python fuzz/fuzz_handshake.py -atheris_runs=1000000 fuzz/corpus-handshakes/

- as a long hypothesis run (no extra dependency)::

      python fuzz/fuzz_handshake.py --hypothesis --examples 100000

- a short hypothesis run is part of the test suite (``tests/test_corpus.py``).

The end-to-end replay against a running server is ``tests/corpus/handshakes/``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # ocpp_trio from this tree
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _instrument

from _instrument import fuzz_main, instrumented

with instrumented():  # coverage for atheris; nothing otherwise
    from websockets.http11 import Request
    from websockets.server import ServerProtocol

    from ocpp_trio._server.admission import (
        Refusal,
        check_credentials,
        header_map,
        parse_target,
        select_protocol,
    )
    from ocpp_trio._websocket.handshake import _offered_subprotocols, send_response
    from ocpp_trio.security import SecurityProfile
    from ocpp_trio.server import DEFAULT_PROTOCOLS

MAX_SIZE = 65536


def _answer(proto: ServerProtocol) -> bytes:
    return b"".join(proto.data_to_send())


def _check_status_line(out: bytes) -> None:
    if out:
        assert out.startswith(b"HTTP/1.1 "), out[:40]
        status = int(out[9:12])
        assert status == 101 or 400 <= status <= 599, out[:40]


def check_handshake(data: bytes, cuts: tuple[int, ...] = ()) -> None:
    """The property for one input (fed in pieces at ``cuts``)."""
    proto = ServerProtocol(max_size=MAX_SIZE)
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        proto.receive_data(data[start:cut])
        start = cut
    events = proto.events_received()
    request = events[0] if events else None
    if not isinstance(request, Request):
        _check_status_line(_answer(proto))
        return
    for profile in (SecurityProfile(0), SecurityProfile(1)):
        status = 0
        try:
            target = parse_target(request.path)
            headers = header_map(
                [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.raw_items()]
            )
            check_credentials(profile, target.identity, headers, None)
            select_protocol(DEFAULT_PROTOCOLS, _offered_subprotocols(request.headers))
        except Refusal as exc:
            status = exc.status
        assert status == 0 or 400 <= status <= 599, status
    response = proto.accept(request)
    send_response(proto, response)
    out = _answer(proto)
    _check_status_line(out)
    if response.status_code != 101:
        return
    # refusing instead works as well
    other = ServerProtocol(max_size=MAX_SIZE)
    other.receive_data(data)
    other.events_received()
    send_response(other, other.reject(400, "bad request"))
    _check_status_line(_answer(other))


def _atheris_input(data: bytes) -> None:
    cut = data[0] if data else 0
    check_handshake(data[1:], (cut,))


def _strategy() -> Any:
    from hypothesis import strategies as st

    token = st.text(alphabet="abcdefgXYZ-_:%/?&=.~ \t\r\n\x00\xe9", max_size=12)
    header = st.tuples(
        st.sampled_from(
            [
                "Host",
                "Upgrade",
                "Connection",
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Version",
                "Sec-WebSocket-Protocol",
                "Sec-WebSocket-Extensions",
                "Authorization",
                "Content-Length",
                "Transfer-Encoding",
            ]
        )
        | token,
        st.sampled_from(
            [
                "websocket",
                "Upgrade",
                "13",
                "dGhlIHNhbXBsZSBub25jZQ==",
                "ocpp1.6, ocpp2.0.1",
                "permessage-deflate; client_max_window_bits",
                "Basic Q1AxOnNlY3JldA==",
                "Basic %%%",
                "0",
                "chunked",
            ]
        )
        | token,
    )
    good = [
        ("Host", "x"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    path = st.lists(
        st.sampled_from(["/", "ocpp", "CP1", "%", "%2F", "%ZZ", "%FF", "%00", "?", "&", "a=b", "é"])
        | token,
        max_size=8,
    ).map(lambda parts: "/" + "".join(parts))

    def build(method: str, target: str, version: str, headers: list[tuple[str, str]]) -> bytes:
        head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        return (head + "\r\n").encode("utf-8", "replace")

    requests = st.builds(
        build,
        st.sampled_from(["GET", "POST", "get", "GET GET"]),
        path,
        st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1"]),
        st.lists(header, max_size=6).map(lambda extra: good + extra) | st.lists(header, max_size=8),
    )
    return st.tuples(
        st.one_of(
            requests,
            st.builds(lambda r, tail: r + tail, requests, st.binary(max_size=40)),
            st.builds(lambda r, n: r[: n % (len(r) + 1)], requests, st.integers(0, 400)),
            st.binary(max_size=300),
        ),
        st.lists(st.integers(0, 400), max_size=3).map(tuple),
    )


def run_hypothesis(examples: int, *, seed: int | None = None) -> None:
    """Check :func:`check_handshake` on ``examples`` drawn requests."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as set_seed

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_strategy())
    def prop(case: tuple[bytes, tuple[int, ...]]) -> None:
        check_handshake(*case)

    if seed is not None:
        prop = set_seed(seed)(prop)
    prop()


def main(argv: list[str] | None = None) -> None:
    fuzz_main("fuzz_handshake", __doc__.split("\n", 1)[0], run_hypothesis, _atheris_input, argv)


if __name__ == "__main__":
    main()
