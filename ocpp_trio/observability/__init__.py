"""Observability: metrics and traces (OpenTelemetry), Prometheus, the structured frame log.

Give a server or a client ``telemetry=Telemetry()`` (metrics and spans through
the OpenTelemetry API, to the providers an SDK set up) and/or
``frame_log=FrameLog()`` (one JSON object per frame through ``logging``);
without them the runtime records nothing and pays nothing.
:class:`PrometheusMetrics` serves the same metrics to Prometheus without an
OpenTelemetry pipeline of your own.

The metric names and attributes: :data:`METRICS`; the causes of refused
handshakes: :data:`REJECTION_CAUSES`; call outcomes: :data:`CALL_OUTCOMES`.
"""

from __future__ import annotations

from ._names import (
    CALL_OUTCOMES as CALL_OUTCOMES,
)
from ._names import (
    MESSAGE_TYPES as MESSAGE_TYPES,
)
from ._names import (
    METRICS as METRICS,
)
from ._names import (
    REJECTION_CAUSES as REJECTION_CAUSES,
)
from ._names import (
    RejectionCause as RejectionCause,
)
from .framelog import FrameLog as FrameLog
from .ops import OpsApp as OpsApp
from .ops import ops_app as ops_app
from .ops import serve_ops as serve_ops
from .prometheus import PrometheusMetrics as PrometheusMetrics
from .telemetry import Telemetry as Telemetry

__all__ = [
    "CALL_OUTCOMES",
    "MESSAGE_TYPES",
    "METRICS",
    "REJECTION_CAUSES",
    "FrameLog",
    "OpsApp",
    "PrometheusMetrics",
    "RejectionCause",
    "Telemetry",
    "ops_app",
    "serve_ops",
]
