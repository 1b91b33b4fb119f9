"""The names operators see: metrics, their attributes, and the closed lists of their values.

Kept apart from the code that records them so that the dashboard, the docs and
the tests read one list.  No OpenTelemetry import here.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "CALL_BUCKETS",
    "CALL_OUTCOMES",
    "INSTRUMENTATION_NAME",
    "KIND_NAMES",
    "MESSAGE_TYPES",
    "METRICS",
    "REJECTION_CAUSES",
    "RejectionCause",
]

#: The instrumentation scope of every meter and tracer this library makes.
INSTRUMENTATION_NAME: Final = "ocpp_trio"

#: Every metric: OpenTelemetry name -> (instrument, unit, attributes, what it counts).
#: The Prometheus exposition writes them with ``_`` for ``.``, the unit as a
#: suffix where it has one (``_seconds``) and ``_total`` after counters.
METRICS: Final[dict[str, tuple[str, str, tuple[str, ...], str]]] = {
    "ocpp.connections.open": (
        "updowncounter",
        "{connection}",
        ("protocol", "role"),
        "OCPP connections open now (role: csms = the server side, station = the client side)",
    ),
    "ocpp.handshakes.rejected": (
        "counter",
        "{handshake}",
        ("reason",),
        "connection attempts turned away, by cause (REJECTION_CAUSES)",
    ),
    "ocpp.messages": (
        "counter",
        "{message}",
        ("direction", "message_type", "action", "protocol", "role"),
        "OCPP-J frames received (in) and sent (out), by message type and action",
    ),
    "ocpp.call.duration": (
        "histogram",
        "s",
        ("direction", "action", "outcome", "protocol", "role"),
        "calls from start to answer: out = ours (from the CALL's turn on an open "
        "connection to its answer), in = the peer's (from its CALL to our answer)",
    ),
    "ocpp.callerrors": (
        "counter",
        "{message}",
        ("direction", "code", "protocol", "role"),
        "CALLERRORs (and 2.1 CALLRESULTERRORs) received (in) and sent (out), by error code",
    ),
    "ocpp.validation.failures": (
        "counter",
        "{payload}",
        ("direction", "action", "rule", "outcome", "protocol", "role"),
        "strict-mode schema failures, by the JSON-schema keyword that failed and what "
        "became of the payload (reject, report, ignore, relaxed)",
    ),
    "ocpp.limits.hit": (
        "counter",
        "{event}",
        ("limit", "protocol", "role"),
        "times a limit was reached, by the option's name (the limit event)",
    ),
    "ocpp.reconnects": (
        "counter",
        "{attempt}",
        (),
        "the client's reconnection attempts after a lost or failed connection",
    ),
    "ocpp.ping.rtt": (
        "histogram",
        "s",
        ("protocol", "role"),
        "WebSocket ping round trips (ping sent to pong received)",
    ),
    "ocpp.outbox.depth": (
        "gauge",
        "{message}",
        (),
        "messages waiting in the station's outbox",
    ),
    "ocpp.outbox.age": (
        "gauge",
        "s",
        (),
        "age of the oldest message waiting in the station's outbox (0 when empty)",
    ),
}

#: ``outcome`` of ``ocpp.call.duration`` and of a call's span.
CALL_OUTCOMES: Final = (
    "ok",  # answered with a CALLRESULT (that passed strict mode)
    "error",  # a CALLERROR (received for ours, sent for theirs)
    "timeout",  # no answer within the call's timeout
    "cancelled",  # cancelled from outside before its answer
    "closed",  # the connection closed before the answer
    "invalid",  # strict mode refused our params, or their result
    "failed",  # anything else (an unencodable payload, a bad argument)
)

#: Message type number -> its name in metrics and the frame log (0: not OCPP-J).
KIND_NAMES: Final = {
    0: "invalid",
    2: "CALL",
    3: "CALLRESULT",
    4: "CALLERROR",
    5: "CALLRESULTERROR",
    6: "SEND",
}

#: ``message_type`` of ``ocpp.messages``; ``invalid`` is a frame that is not OCPP-J.
MESSAGE_TYPES: Final = ("CALL", "CALLRESULT", "CALLERROR", "CALLRESULTERROR", "SEND", "invalid")

RejectionCause = Literal[
    "tls",
    "not_websocket",
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "no_subprotocol",
    "duplicate",
    "capacity",
    "closing",
    "timeout",
    "peer_gone",
    "server_error",
    "other",
]

#: The ``cause`` of a ``handshake_rejected`` event (the ``reason`` attribute of
#: ``ocpp.handshakes.rejected``): a closed list.
REJECTION_CAUSES: Final[dict[str, str]] = {
    "tls": "the TLS handshake failed (no common cipher, a bad or missing client certificate)",
    "not_websocket": "not a WebSocket upgrade (wrong method, HTTP version, headers)",
    "bad_request": "HTTP 400: a bad path or station identity, or a malformed request",
    "unauthorized": "HTTP 401: missing or wrong credentials, no client certificate naming it",
    "forbidden": "HTTP 403: the security profile forbids it (e.g. plain ws:// for profile 2)",
    "not_found": "HTTP 404: the application does not know the station",
    "no_subprotocol": "no OCPP version in common (refused, or closed with 1002)",
    "duplicate": "HTTP 409: a connection with this identity is open (duplicate_policy)",
    "capacity": "max_connections / max_pending_handshakes reached, or the process is out "
    "of file descriptors",
    "closing": "the server is shutting down",
    "timeout": "the handshake (or auth, profile_for) took longer than handshake_timeout",
    "peer_gone": "the peer went away during the handshake",
    "server_error": "HTTP 5xx: an auth or profile_for callback failed",
    "other": "any other HTTP status an auth callback chose",
}


def cause_for_status(status: int | None) -> RejectionCause:
    """The cause that an HTTP refusal status stands for, when the site did not name one."""
    if status is None:
        return "peer_gone"
    match status:
        case 400:
            return "bad_request"
        case 401:
            return "unauthorized"
        case 403:
            return "forbidden"
        case 404:
            return "not_found"
        case 409:
            return "duplicate"
        case 405 | 426 | 505:
            return "not_websocket"
        case 503:
            return "capacity"
    if 500 <= status < 600:
        return "server_error"
    return "other"


#: Histogram buckets (seconds) for call durations and ping round trips.
CALL_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
