"""Hypothesis strategies for OCPP: payloads from the schemas, frames, malformed frames.

Importing this module needs hypothesis (a test dependency, not a dependency of
ocpp_trio); ``ocpp_trio.testing`` itself does not.

Payload strategies (from the OCA JSON schemas, all actions of all three versions):

- :func:`payloads` ``(protocol, action, direction="request", *, variant=None)``:
  valid payloads (``variant="pre-errata"``: against OCPP 1.6's earlier files);
  formats (RFC 3339 date-time, uri), enums, patterns, lengths, bounds,
  ``multipleOf``, array sizes and nested definitions are respected.
- :func:`invalid_payloads`: ``(payload, error_class)``, the payload breaking
  exactly one rule and ``error_class`` the ``RPCError`` a strict receiver
  answers with (each version spells the code its own way on the wire).
- :func:`from_schema` / :func:`invalid_from_schema`: the same for any schema
  (a vendor protocol's).

Framing strategies:

- :func:`frames` ``(protocol)``: the text of well-formed frames of every type
  the version defines.
- :func:`malformed_frames` ``(protocol=None)``: :class:`MalformedFrame` objects,
  text breaking one framing rule plus the answer each version gives.
- :func:`message_ids`: valid message ids.

Budget per example.  Drawing only (hypothesis's generate phase, no
shrinking), best of three runs of 500 examples on the 2-core CI machine
(``python -m tests.testing.measure_strategies`` reproduces it):

- ``st.integers()``, hypothesis's own floor: 3,300-4,900/s (0.2-0.3 ms);
- ``payloads("ocpp1.6", "BootNotification")``: 1,100-1,600/s (0.6-0.9 ms);
- ``payloads("ocpp1.6", "MeterValues")``: 650-720/s (1.4-1.5 ms);
- ``payloads("ocpp2.0.1", "TransactionEvent")``: 600-630/s (1.6-1.7 ms);
- ``payloads("ocpp2.1", "SetChargingProfile")``: 300-360/s (2.8-3.3 ms);
- ``invalid_payloads("ocpp2.0.1", "TransactionEvent")``: 500-630/s (1.6-2 ms);
- ``frames("ocpp1.6")``, ``frames("ocpp2.1")``: 500-630/s (1.6-2 ms);
- ``malformed_frames()``: 930-1,550/s (0.65-1.1 ms).

Over every action of every version (40 examples each) the median is 0.8 ms
and the heaviest, 2.1 ``ReportChargingProfiles`` (profiles of schedules of
periods), about 8 ms.  The budget these strategies keep: **at most 10 ms per
example for any message**, so 100 examples of anything stay under a second.
Sizes are kept small on purpose for that, and so that shrinking is quick: at
most three array items (more only when ``minItems`` asks) and three optional
properties per object, short strings, now and then a string of exactly
``maxLength``.  Each optional property and each array item is its own span of
choices, so the shrinker drops them one by one.  Raise ``max_examples`` for
breadth rather than asking for bigger examples.
"""

from __future__ import annotations

from ._frame_strategies import PROTOCOLS as PROTOCOLS
from ._frame_strategies import MalformedFrame as MalformedFrame
from ._frame_strategies import frames as frames
from ._frame_strategies import malformed_frames as malformed_frames
from ._frame_strategies import message_ids as message_ids
from ._strategies import from_schema as from_schema
from ._strategies import invalid_from_schema as invalid_from_schema
from ._strategies import invalid_payloads as invalid_payloads
from ._strategies import payloads as payloads

__all__ = [
    "PROTOCOLS",
    "MalformedFrame",
    "frames",
    "from_schema",
    "invalid_from_schema",
    "invalid_payloads",
    "malformed_frames",
    "message_ids",
    "payloads",
]
