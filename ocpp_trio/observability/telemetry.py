"""Metrics and traces through the OpenTelemetry API.

``Telemetry()`` takes a ``MeterProvider`` and a ``TracerProvider`` (by default
the global ones that an OpenTelemetry SDK set up), makes the instruments of
:data:`~ocpp_trio.observability.METRICS` and a tracer, and is handed to a
server or client as ``telemetry=``.  With only the API installed and no SDK
configured, every instrument is OpenTelemetry's no-op; without ``telemetry=``
nothing of this module runs at all.

Attributes are made once and reused: one dict per (direction, message type,
action) and so on, per protocol and role (and per station with
``station_label=True``, for small fleets: every series then multiplies by the
number of stations).

Spans: one per call in both directions, named ``<protocol>/<action>``
(OpenTelemetry's RPC convention), kind CLIENT for ours and SERVER for the
peer's, with ``rpc.system=ocpp``, ``rpc.method``, ``ocpp.action``,
``ocpp.message_id``, ``ocpp.identity``, ``ocpp.protocol``, ``ocpp.outcome``
and, for a CALLERROR, ``ocpp.error_code``; a span whose outcome is not ``ok``
has status ERROR.  The span of our call is current while it runs, so the
trace context travels with it (``server.call_station`` through the cluster
carries it to the instance that holds the station); the span of the peer's
call is current while its handler runs.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import trio

from ._names import CALL_BUCKETS, INSTRUMENTATION_NAME, KIND_NAMES, METRICS

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["Telemetry"]

T = TypeVar("T")


def _import_otel() -> Any:
    try:
        from opentelemetry import context, metrics, propagate, trace
    except ImportError:  # pragma: no cover - the extra is installed in the tests
        raise ImportError(
            "ocpp_trio's telemetry needs the OpenTelemetry API: pip install 'ocpp-trio[otel]'"
        ) from None
    return context, metrics, propagate, trace


class _Counter:
    """A count per attribute set, kept here and read by an observable instrument.

    Recording through the SDK costs some 10 µs per measurement (it cleans and
    hashes the attributes each time); a message would pay that two or three
    times.  So the counters are plain integers in cells made once per
    attribute set, and the SDK reads them when it collects (a scrape, an
    export): an asynchronous instrument, cumulative as OpenTelemetry asks.
    Histograms (call durations, ping round trips) have no asynchronous form
    and are recorded as they happen.
    """

    __slots__ = ("cells",)

    def __init__(self) -> None:
        #: frozenset of the attributes -> [attributes, value]
        self.cells: dict[frozenset[tuple[str, str]], list[Any]] = {}

    def cell(self, attrs: dict[str, str]) -> list[Any]:
        key = frozenset(attrs.items())
        found = self.cells.get(key)
        if found is None:
            found = self.cells[key] = [attrs, 0]
        return found

    def observe(self, options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [Observation(value, attrs) for attrs, value in list(self.cells.values())]


class _Attrs:
    """The attributes of one (protocol, role[, station]), and the dicts made from them."""

    __slots__ = ("base", "cache", "cells", "identity", "protocol", "role", "span_base")

    def __init__(self, protocol: str, role: str, identity: str, station: bool) -> None:
        self.protocol = protocol
        self.role = role
        self.identity = identity
        self.base: dict[str, str] = {"protocol": protocol, "role": role}
        if station:
            self.base["station"] = identity
        self.span_base: dict[str, str] = {
            "rpc.system": "ocpp",
            "ocpp.identity": identity,
            "ocpp.protocol": protocol,
        }
        self.cache: dict[tuple[Any, ...], dict[str, str]] = {}
        #: (counter, key) -> that counter's cell for these attributes.
        self.cells: dict[tuple[Any, ...], list[Any]] = {}

    def cell(self, counter: _Counter, *key: str) -> list[Any]:
        """``counter``'s cell for the attributes of ``key`` (as :meth:`get`)."""
        found = self.cells.get((counter, *key))
        if found is None:
            found = self.cells[(counter, *key)] = counter.cell(self.get(*key))
        return found

    def get(self, *key: str) -> dict[str, str]:
        """The attribute dict for ``key``: pairs (name, value) flattened, with the base."""
        attrs = self.cache.get(key)
        if attrs is None:
            attrs = dict(self.base)
            for i in range(0, len(key), 2):
                attrs[key[i]] = key[i + 1]
            self.cache[key] = attrs
        return attrs


class Telemetry:
    """OpenTelemetry metrics and traces for a server or a client (``telemetry=``).

    Args:
        meter_provider: where the metrics go; the global one by default.
        tracer_provider: where the spans go; the global one by default.
        metrics: record metrics.
        traces: record spans.
        station_label: add a ``station`` attribute (the identity) to every
            metric: for small fleets only (every series multiplies by the
            number of stations).

    Without providers of its own it records through the global ones, and
    only once an OpenTelemetry SDK has set them: it looks when each
    connection opens, so an SDK set up at start is used by every connection,
    one set up later by the connections opened after it.  With the API alone
    it records nothing and costs next to nothing.

    Raises:
        ImportError: ``opentelemetry-api`` is not installed (the ``otel`` extra).
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        metrics: bool = True,
        traces: bool = True,
        station_label: bool = False,
    ) -> None:
        context, otel_metrics, propagate, trace = _import_otel()
        self._context = context
        self._propagate = propagate
        self._trace = trace
        self.station_label = station_label
        self._shared: dict[tuple[str, str], _Attrs] = {}
        self._empty: dict[str, str] = {}
        self._want_metrics = metrics
        self._want_traces = traces
        self._own_meter = meter_provider is not None
        self._own_tracer = tracer_provider is not None
        #: Whether metrics / spans are recorded now (see :meth:`_refresh`).
        self.metrics = metrics
        self.traces = traces
        meter = (
            meter_provider.get_meter(INSTRUMENTATION_NAME)
            if meter_provider is not None
            else otel_metrics.get_meter(INSTRUMENTATION_NAME)
        )
        self._tracer = (
            tracer_provider.get_tracer(INSTRUMENTATION_NAME)
            if tracer_provider is not None
            else trace.get_tracer(INSTRUMENTATION_NAME)
        )
        self._client_kind = trace.SpanKind.CLIENT
        self._server_kind = trace.SpanKind.SERVER
        self._error_status = trace.Status(trace.StatusCode.ERROR)

        def make(name: str) -> Any:
            kind, unit, _, description = METRICS[name]
            if kind in ("counter", "updowncounter"):
                counter = _Counter()
                create = (
                    meter.create_observable_counter
                    if kind == "counter"
                    else meter.create_observable_up_down_counter
                )
                create(name, callbacks=[counter.observe], unit=unit, description=description)
                return counter
            return meter.create_histogram(
                name,
                unit=unit,
                description=description,
                explicit_bucket_boundaries_advisory=list(CALL_BUCKETS),
            )

        self._meter = meter
        self._open = make("ocpp.connections.open")
        self._rejected = make("ocpp.handshakes.rejected")
        self._messages = make("ocpp.messages")
        self._duration = make("ocpp.call.duration")
        self._callerrors = make("ocpp.callerrors")
        self._validation = make("ocpp.validation.failures")
        self._limits = make("ocpp.limits.hit")
        self._reconnects = make("ocpp.reconnects")
        self._rtt = make("ocpp.ping.rtt")
        self._actions: dict[str, set[str]] = {}
        self._refresh()
        self._outboxes: list[Any] = []
        self._outbox_gauges = False

    # --- attributes ---------------------------------------------------------------

    def _refresh(self) -> None:
        """Record through the global providers only once an SDK has set them.

        With the API alone (no SDK configured) every instrument and span is a
        no-op, yet making them would still cost some microseconds per call;
        so without providers of its own, a ``Telemetry`` looks at the global
        ones when a connection opens (an application sets them up at start)
        and records nothing while they are the API's placeholders.
        """
        if self._want_metrics and not self._own_meter:
            from opentelemetry.metrics import NoOpMeterProvider, get_meter_provider
            from opentelemetry.metrics._internal import _ProxyMeterProvider

            provider = get_meter_provider()
            self.metrics = not isinstance(provider, NoOpMeterProvider | _ProxyMeterProvider)
        if self._want_traces and not self._own_tracer:
            trace = self._trace
            provider = trace.get_tracer_provider()
            self.traces = not isinstance(
                provider, trace.NoOpTracerProvider | trace.ProxyTracerProvider
            )

    def connection_attributes(self, identity: str, protocol: str, role: str) -> _Attrs:
        self._refresh()
        if self.station_label:
            return _Attrs(protocol, role, identity, True)
        shared = self._shared.get((protocol, role))
        if shared is None:
            shared = self._shared[(protocol, role)] = _Attrs(protocol, role, "", False)
        # The span attributes name the station even when the metrics do not.
        attrs = _Attrs.__new__(_Attrs)
        attrs.protocol, attrs.role, attrs.identity = protocol, role, identity
        attrs.base, attrs.cache, attrs.cells = shared.base, shared.cache, shared.cells
        attrs.span_base = {
            "rpc.system": "ocpp",
            "ocpp.identity": identity,
            "ocpp.protocol": protocol,
        }
        return attrs

    # --- metrics ------------------------------------------------------------------

    def connection_opened(self, attrs: _Attrs) -> None:
        if self.metrics:
            attrs.cell(self._open)[1] += 1

    def connection_closed(self, attrs: _Attrs) -> None:
        if self.metrics:
            attrs.cell(self._open)[1] -= 1

    def handshake_rejected(self, cause: str) -> None:
        if self.metrics:
            self._rejected.cell({"reason": cause})[1] += 1

    def reconnect(self, identity: str) -> None:
        if self.metrics:
            self._reconnects.cell({"station": identity} if self.station_label else {})[1] += 1

    def message(self, attrs: _Attrs, direction: str, kind: int, action: str) -> None:
        if self.metrics:
            attrs.cell(
                self._messages,
                "direction",
                direction,
                "message_type",
                KIND_NAMES.get(kind, "invalid"),
                "action",
                self._action(attrs, action),
            )[1] += 1

    def callerror(self, attrs: _Attrs, direction: str, code: str) -> None:
        if self.metrics:
            attrs.cell(
                self._callerrors, "direction", direction, "code", code if code in _CODES else OTHER
            )[1] += 1

    def validation_failed(
        self, attrs: _Attrs, action: str, outbound: bool, rule: str, outcome: str
    ) -> None:
        if self.metrics:
            direction = "out" if outbound else "in"
            attrs.cell(
                self._validation,
                "direction",
                direction,
                "action",
                self._action(attrs, action),
                "rule",
                rule,
                "outcome",
                outcome,
            )[1] += 1

    def limit(self, attrs: _Attrs, name: str) -> None:
        if self.metrics:
            attrs.cell(self._limits, "limit", name)[1] += 1

    def _action(self, attrs: _Attrs, action: str) -> str:
        """``action`` as a label: a name the peer chose is kept only if the protocol knows it.

        Otherwise a hostile peer sending CALLs with ever new action names
        would grow a series per name.  A built-in protocol's actions are its
        schemas'; a vendor protocol gets its first ``MAX_VENDOR_ACTIONS``
        names, then ``other``.
        """
        known = self._actions.get(attrs.protocol)
        if known is None:
            known = self._actions[attrs.protocol] = _known_actions(attrs.protocol)
        if action in known or not action:
            return action
        if attrs.protocol in _BUILTIN or len(known) >= MAX_VENDOR_ACTIONS:
            return OTHER
        known.add(action)
        return action

    def ping_rtt(self, attrs: _Attrs, rtt: float) -> None:
        if self.metrics:
            self._rtt.record(rtt, attrs.base)

    def watch_outbox(
        self, depth: Callable[[], tuple[int, float]], identity: str
    ) -> Callable[[], None]:
        """Report an outbox's depth and age (``depth()`` -> (messages, oldest age in s)).

        Returns the function that stops it (when the client ends).
        """
        entry = (depth, {"station": identity} if self.station_label else self._empty)
        self._outboxes.append(entry)
        if self.metrics and not self._outbox_gauges:
            self._outbox_gauges = True
            _, unit_d, _, desc_d = METRICS["ocpp.outbox.depth"]
            _, unit_a, _, desc_a = METRICS["ocpp.outbox.age"]
            self._meter.create_observable_gauge(
                "ocpp.outbox.depth",
                callbacks=[self._observe_depth],
                unit=unit_d,
                description=desc_d,
            )
            self._meter.create_observable_gauge(
                "ocpp.outbox.age", callbacks=[self._observe_age], unit=unit_a, description=desc_a
            )

        def stop() -> None:
            if entry in self._outboxes:
                self._outboxes.remove(entry)

        return stop

    def _observations(self, index: int) -> list[Any]:
        from opentelemetry.metrics import Observation

        totals: dict[tuple[tuple[str, str], ...], float] = {}
        for depth, attrs in list(self._outboxes):
            try:
                value = depth()[index]
            except Exception:  # a closed store: nothing to say
                continue
            key = tuple(sorted(attrs.items()))
            totals[key] = max(totals.get(key, 0.0), value) if index else totals.get(key, 0) + value
        return [Observation(value, dict(key)) for key, value in totals.items()]

    def _observe_depth(self, options: Any) -> list[Any]:
        return self._observations(0)

    def _observe_age(self, options: Any) -> list[Any]:
        return self._observations(1)

    # --- calls --------------------------------------------------------------------

    def _call_span(self, attrs: _Attrs, action: str, kind: Any, **extra: str) -> Span:
        """A new span for a call of ``action`` (not current yet)."""
        span_attrs: dict[str, str] = dict(attrs.span_base)
        span_attrs["rpc.method"] = span_attrs["ocpp.action"] = action
        span_attrs.update(extra)
        return self._tracer.start_span(
            f"{attrs.protocol}/{action}", kind=kind, attributes=span_attrs
        )

    def inbound_call_started(self, attrs: _Attrs, action: str, mid: str) -> Span | None:
        if not self.traces:
            return None
        return self._call_span(attrs, action, self._server_kind, **{"ocpp.message_id": mid})

    def inbound_call_done(
        self,
        attrs: _Attrs,
        span: Span | None,
        action: str,
        elapsed: float,
        outcome: str,
        code: str,
    ) -> None:
        if span is not None:
            self._end_span(span, outcome, code)
        if self.metrics and action:
            self._duration.record(
                elapsed,
                attrs.get(
                    "direction", "in", "action", self._action(attrs, action), "outcome", outcome
                ),
            )

    def outbound_call_sent(self, mid: str) -> None:
        if self.traces:
            span = self._trace.get_current_span()
            if span.is_recording():
                span.set_attribute("ocpp.message_id", mid)

    async def outbound_call(
        self, attrs: _Attrs, action: str, deadline: float, run: Callable[[], Awaitable[T]]
    ) -> T:
        started = trio.current_time()
        span = self._call_span(attrs, action, self._client_kind) if self.traces else None
        outcome = ["failed"]
        try:
            return await self._in_span(span, run, deadline, outcome)
        finally:
            if self.metrics:
                self._duration.record(
                    trio.current_time() - started,
                    attrs.get(
                        "direction",
                        "out",
                        "action",
                        self._action(attrs, action),
                        "outcome",
                        outcome[0],
                    ),
                )

    async def _in_span(
        self,
        span: Span | None,
        run: Callable[[], Awaitable[T]],
        deadline: float,
        outcome: list[str],
    ) -> T:
        """``run()`` with ``span`` (if any) current; its outcome into ``outcome[0]`` and the span.

        Cancelled once ``deadline`` passed is a timeout (the call's own deadline).
        """
        token = (
            None if span is None else self._context.attach(self._trace.set_span_in_context(span))
        )
        code = ""
        try:
            result = await run()
            outcome[0] = "ok"
            return result
        except BaseException as exc:
            outcome[0], code = classify(exc)
            if outcome[0] == "cancelled" and trio.current_time() >= deadline:
                outcome[0] = "timeout"
            raise
        finally:
            if token is not None:
                self._context.detach(token)
            if span is not None:
                self._end_span(span, outcome[0], code)

    def _end_span(self, span: Span, outcome: str, code: str) -> None:
        span.set_attribute("ocpp.outcome", outcome)
        if code:
            span.set_attribute("ocpp.error_code", code)
        if outcome != "ok":
            span.set_status(self._error_status)
        span.end()

    def enter_span(self, span: Span) -> object:
        return self._context.attach(self._trace.set_span_in_context(span))

    def exit_span(self, token: object) -> None:
        self._context.detach(token)

    # --- the cluster -----------------------------------------------------------------

    async def cluster_call(
        self, identity: str, action: str, body: dict[str, Any], run: Callable[[], Awaitable[T]]
    ) -> T:
        """``server.call_station`` through the cluster: a span, its context in ``body["trace"]``.

        The instance that holds the station continues the trace: its call
        span is a child of this one.
        """
        span = self._tracer.start_span(
            f"call_station/{action}",
            kind=self._client_kind,
            attributes={"rpc.system": "ocpp", "rpc.method": action, "ocpp.identity": identity},
        )

        async def carried() -> T:
            carrier: dict[str, str] = {}
            self._propagate.inject(carrier)  # the span is current here
            body["trace"] = carrier
            return await run()

        return await self._in_span(span, carried, math.inf, ["failed"])

    def extract(self, carrier: Mapping[str, str]) -> object:
        """Make the trace context in ``carrier`` current; a token for :meth:`exit_span`."""
        return self._context.attach(self._propagate.extract(carrier))


#: The label of an action or error code outside the known ones (see ``Telemetry._action``).
OTHER = "other"

#: Action names a vendor protocol may add to the labels before the rest are ``other``.
MAX_VENDOR_ACTIONS = 200

_BUILTIN = frozenset({"ocpp1.6", "ocpp2.0.1", "ocpp2.1"})


def _known_actions(protocol: str) -> set[str]:
    if protocol not in _BUILTIN:
        return set()
    from .._core.validation import get_validator

    return set(get_validator(protocol).actions)


def _error_codes() -> frozenset[str]:
    from .._core.errors import ErrorCode

    return frozenset(code.value for code in ErrorCode)


_CODES: Final = _error_codes()


def classify(exc: BaseException) -> tuple[str, str]:
    """The outcome (and CALLERROR code) of a call that raised ``exc``."""
    from .._core.errors import (
        CallErrorReceived,
        CallTimeout,
        ConnectionClosed,
        ValidationError,
    )

    if isinstance(exc, CallErrorReceived):
        return "error", exc.code
    if isinstance(exc, CallTimeout):
        return "timeout", ""
    if isinstance(exc, trio.Cancelled):
        return "cancelled", ""
    if isinstance(exc, ConnectionClosed | trio.ClosedResourceError):
        return "closed", ""
    if isinstance(exc, ValidationError):
        return "invalid", ""
    return "failed", ""
