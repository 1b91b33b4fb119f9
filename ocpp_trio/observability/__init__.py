"""Observability: metrics and traces (OpenTelemetry), Prometheus, the structured frame log.

Give a server or a client ``telemetry=Telemetry()`` (metrics and spans through
the OpenTelemetry API, to the providers an SDK set up) and/or
``frame_log=FrameLog()`` (one JSON object per frame through ``logging``,
redacted; :class:`StationFileHandler` writes them to one file per station);
without them the runtime records nothing and pays nothing.
:class:`PrometheusMetrics` serves the same metrics to Prometheus without an
OpenTelemetry pipeline of your own.

The metric names and attributes: :data:`METRICS`; the causes of refused
handshakes: :data:`REJECTION_CAUSES`; call outcomes: :data:`CALL_OUTCOMES`.
"""

from __future__ import annotations

from ._names import CALL_OUTCOMES, MESSAGE_TYPES, METRICS, REJECTION_CAUSES, RejectionCause
from .framelog import FrameLog, StationFileHandler
from .ops import OpsApp, ops_app, serve_ops
from .prometheus import PrometheusMetrics
from .telemetry import Telemetry

__all__ = [
    "CALL_OUTCOMES",
    "MESSAGE_TYPES",
    "METRICS",
    "REJECTION_CAUSES",
    "FrameLog",
    "OpsApp",
    "PrometheusMetrics",
    "RejectionCause",
    "StationFileHandler",
    "Telemetry",
    "ops_app",
    "serve_ops",
]
