"""Prometheus exposition of the metrics, for those who run no OpenTelemetry pipeline.

Built on OpenTelemetry's own Prometheus exporter rather than a second set of
instruments: the library records through one API (``Telemetry``), an SDK
``MeterProvider`` with a ``PrometheusMetricReader`` aggregates, and
``prometheus_client`` writes the text format.  Nothing of the exposition is
written here, the names are the same in both pipelines, and a process that
later adds an OpenTelemetry exporter keeps its Prometheus series.  The reader
writes to a registry of its own (not ``prometheus_client``'s global one), so
two servers in one process, or two tests, never share series.

Needs the ``prometheus`` extra (``opentelemetry-sdk``,
``opentelemetry-exporter-prometheus``, ``prometheus-client``).
"""

from __future__ import annotations

from typing import Any

from .telemetry import Telemetry

__all__ = ["CONTENT_TYPE", "PrometheusMetrics"]

#: The Content-Type of :meth:`PrometheusMetrics.exposition` (the text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class PrometheusMetrics:
    """Metrics for Prometheus to scrape: a meter provider and its exposition.

    ``metrics = PrometheusMetrics()``, then ``serve_ocpp(...,
    telemetry=metrics.telemetry())`` and serve :meth:`exposition` at
    ``/metrics`` (``ocpp-trio serve --ops-port`` and
    :func:`~ocpp_trio.observability.ops_app` do).

    Args:
        station_label: as for :class:`Telemetry` (small fleets only).

    Attributes:
        meter_provider: the SDK ``MeterProvider`` (give it to other
            instrumentation too, if you like).
        registry: the ``prometheus_client`` registry the reader writes to.

    Raises:
        ImportError: the ``prometheus`` extra is not installed.
    """

    def __init__(self, *, station_label: bool = False) -> None:
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from opentelemetry.sdk.metrics import MeterProvider
            from prometheus_client import CollectorRegistry
        except ImportError:  # pragma: no cover - installed in the tests
            raise ImportError(
                "Prometheus metrics need: pip install 'ocpp-trio[prometheus]'"
            ) from None
        self.station_label = station_label
        self.registry: Any = CollectorRegistry(auto_describe=True)
        self._reader = PrometheusMetricReader(registry=self.registry, disable_target_info=True)
        self.meter_provider: Any = MeterProvider(metric_readers=[self._reader])
        self._telemetry: Telemetry | None = None

    def telemetry(self, *, traces: bool = False, tracer_provider: Any = None) -> Telemetry:
        """The ``Telemetry`` that records into these metrics (one, made on first use).

        ``traces=True`` also records spans, to ``tracer_provider`` or the global one.
        """
        if self._telemetry is None:
            self._telemetry = Telemetry(
                meter_provider=self.meter_provider,
                tracer_provider=tracer_provider,
                traces=traces,
                station_label=self.station_label,
            )
        return self._telemetry

    def exposition(self) -> bytes:
        """The current metrics in Prometheus's text format (see :data:`CONTENT_TYPE`)."""
        from prometheus_client import generate_latest

        data: bytes = generate_latest(self.registry)
        return data

    def shutdown(self) -> None:
        """Stop the meter provider (at the end of the process, or of a test)."""
        self.meter_provider.shutdown()
