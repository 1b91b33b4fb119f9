"""Fuzz target: the OCPP-J frame decoder and the RPC core's answer to any inbound message.

The property, for every input and every protocol version: ``RPCProtocol.receive``
returns an event and never raises; a reply, when there is one, is a CALLERROR
(or 2.1 CALLRESULTERROR) that our own decoder reads back and that encodes as
UTF-8; ``decode`` raises nothing but ``FrameDecodeError``.

Run it three ways:

- coverage-guided, with atheris (``pip install atheris``)::

      python fuzz/fuzz_frames.py -atheris_runs=1000000 fuzz/corpus-frames/

- as a long hypothesis run (no extra dependency)::

      python fuzz/fuzz_frames.py --hypothesis --examples 100000

- a short hypothesis run is part of the test suite (``tests/test_corpus.py``).

A crash found by either is a new file in ``tests/corpus/frames/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # ocpp_trio from this tree
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _instrument

from _instrument import fuzz_main, instrumented

with instrumented():  # coverage for atheris; nothing otherwise
    from ocpp_trio._core.errors import FrameDecodeError
    from ocpp_trio._core.frames import CallError, CallResultError, decode
    from ocpp_trio._core.protocol import BadMessage, Role, RPCProtocol

PROTOCOLS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")


def check_frame(data: bytes | str) -> None:
    """The property for one input; raises AssertionError (or the unexpected error)."""
    try:
        decode(data)
    except FrameDecodeError:
        pass
    for protocol in PROTOCOLS:
        proto = RPCProtocol(protocol=protocol, role=Role.SERVER)
        # a pending call of ours, so that answers can name one
        proto.send_call("Reset", {}, message_id="1")
        event = proto.receive(data)
        if isinstance(event, BadMessage) and event.reply is not None:
            event.reply.encode("utf-8")
            reply = decode(event.reply)
            assert isinstance(reply, CallError | CallResultError), (protocol, event.reply)


def _atheris_input(data: bytes) -> None:
    # Half the inputs as text (the usual WebSocket message), half as raw bytes.
    if data[:1] == b"\x00":
        check_frame(data[1:])
    else:
        check_frame(data.decode("utf-8", "replace"))


def _strategy() -> Any:
    from hypothesis import strategies as st

    from ocpp_trio.testing.strategies import frames, malformed_frames

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
        lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    )

    def mutate(text: str, cut: int, junk: str) -> str:
        cut = cut % (len(text) + 1)
        return text[:cut] + junk + text[cut:]

    valid = st.one_of(*(frames(p) for p in PROTOCOLS))
    return st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        json_values.map(lambda v: json.dumps(v, allow_nan=True)),
        st.lists(json_values, max_size=6).map(json.dumps),
        malformed_frames().map(lambda f: f.text),
        st.builds(mutate, valid, st.integers(0, 500), st.text(max_size=4)),
        st.builds(
            lambda t, n: t.replace('"', "\\ud800", n % 3),
            malformed_frames().map(lambda f: f.text),
            st.integers(0, 5),
        ),
    )


def run_hypothesis(examples: int, *, seed: int | None = None) -> None:
    """Check :func:`check_frame` on ``examples`` drawn inputs."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as set_seed

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_strategy())
    def prop(data: bytes | str) -> None:
        check_frame(data)

    if seed is not None:
        prop = set_seed(seed)(prop)
    prop()


def main(argv: list[str] | None = None) -> None:
    fuzz_main("fuzz_frames", __doc__.split("\n", 1)[0], run_hypothesis, _atheris_input, argv)


if __name__ == "__main__":
    main()
