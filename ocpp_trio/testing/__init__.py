"""Helpers for testing code built on ocpp_trio: in memory, in virtual time, without sockets.

- :func:`open_memory_pair`: a station and a CSMS connection, both real, over
  memory streams.
- :func:`open_memory_server`: your ``serve_ocpp`` handler in a real
  ``OCPPServer``, with in-memory stations (``MemoryServer.connect``).
- :func:`open_raw_peer`: a real connection facing a :class:`RawPeer` that sends
  and receives raw text (framing tests).
- :func:`record_frames` / :func:`replay`: record a session to JSON lines and
  replay it against a handler.
- ``ocpp_trio.testing.strategies``: hypothesis strategies (needs hypothesis).
- ``ocpp_trio.testing.plugin``: pytest fixtures (``ocpp_pair``, ``ocpp_server``).

Nothing here imports hypothesis or pytest.
"""

from ._pair import MemoryPair as MemoryPair
from ._pair import MemoryPairKwargs as MemoryPairKwargs
from ._pair import RawPair as RawPair
from ._pair import RawPeer as RawPeer
from ._pair import open_memory_pair as open_memory_pair
from ._pair import open_raw_peer as open_raw_peer
from ._record import RecordedFrame as RecordedFrame
from ._record import Recording as Recording
from ._record import ReplayMismatch as ReplayMismatch
from ._record import record_frames as record_frames
from ._record import replay as replay
from ._server import MemoryServer as MemoryServer
from ._server import open_memory_server as open_memory_server

__all__ = [
    "MemoryPair",
    "MemoryPairKwargs",
    "MemoryServer",
    "RawPair",
    "RawPeer",
    "RecordedFrame",
    "Recording",
    "ReplayMismatch",
    "open_memory_pair",
    "open_memory_server",
    "open_raw_peer",
    "record_frames",
    "replay",
]
