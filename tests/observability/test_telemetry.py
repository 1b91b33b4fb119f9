"""Metrics and spans, read back with the OpenTelemetry SDK's in-memory reader and exporter.

Each test scripts a session and checks that every metric and span it should
move moved, by exactly how much: successes, CALLERRORs both ways, timeouts,
cancellations, strict-mode failures, bad frames, limits, refused handshakes,
pings, reconnects, the outbox, and the trace across two cluster instances.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ocpp_trio import (
    CallErrorReceived,
    CallTimeout,
    HandshakeRejected,
    OCPPConnection,
    RPCSecurityError,
    open_ocpp_client,
)
from ocpp_trio.cluster import LocalAdapter, LocalHub
from ocpp_trio.observability import METRICS, REJECTION_CAUSES, Telemetry
from ocpp_trio.observability._names import cause_for_status
from ocpp_trio.outbox import MemoryStore
from ocpp_trio.routing import HandlerContext
from ocpp_trio.server import OCPPServer
from ocpp_trio.testing import open_memory_server

TIMEOUT = 10.0


class Sink:
    """One telemetry's metrics and spans, in memory."""

    def __init__(self, **options: Any) -> None:
        self.reader = InMemoryMetricReader()
        self.exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer_provider = tracer_provider
        self.telemetry = Telemetry(
            meter_provider=MeterProvider(metric_readers=[self.reader]),
            tracer_provider=tracer_provider,
            **options,
        )

    def points(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """The data points of metric ``name`` by attributes: a number, or a histogram point."""
        assert name in METRICS
        found: dict[frozenset[tuple[str, Any]], Any] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        key = frozenset(point.attributes.items())  # type: ignore[union-attr]
                        found[key] = point if isinstance(point, HistogramDataPoint) else point.value
        return found

    def value(self, name: str, **attrs: str) -> float:
        """The sum over the points of ``name`` whose attributes include ``attrs``."""
        total = 0.0
        for key, point in self.points(name).items():
            if set(attrs.items()) <= key:
                total += point.count if isinstance(point, HistogramDataPoint) else point
        return total

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]


def boot(ctx: HandlerContext) -> dict[str, Any]:
    return {"currentTime": "2026-01-01T00:00:00Z", "interval": 300, "status": "Accepted"}


async def csms(conn: OCPPConnection) -> None:
    conn.handle("BootNotification")(boot)
    conn.handle("StatusNotification")(lambda ctx: {})

    @conn.handle("Authorize")
    def authorize(ctx: HandlerContext) -> dict[str, Any]:
        if ctx.params["idTag"] == "STOLEN":
            raise RPCSecurityError("stolen card")
        return {"idTagInfo": {"status": "Accepted"}}

    @conn.handle("DataTransfer")
    async def data_transfer(ctx: HandlerContext) -> dict[str, Any]:
        # An async handler: its task runs under the span of the call.
        HANDLER_SPANS.append(trace.get_current_span().get_span_context().span_id)
        await trio.sleep(0.5)
        return {"status": "Accepted"}


#: The span current in the DataTransfer handler, each time it ran.
HANDLER_SPANS: list[int] = []


@asynccontextmanager
async def station_of(srv: Any, identity: str = "CP1", **options: Any) -> AsyncIterator[Any]:
    async with srv.connect(identity, **options) as station:

        @station.handle("Reset")
        def reset(ctx: HandlerContext) -> dict[str, Any]:
            return {"status": "Accepted"}

        @station.handle("GetConfiguration")
        async def stuck(ctx: HandlerContext) -> dict[str, Any]:
            await trio.sleep_forever()
            raise AssertionError

        yield station


async def test_a_csms_session_moves_every_metric_and_span(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = Sink()
    async with open_memory_server(
        csms, telemetry=sink.telemetry, strict_mode=True, call_timeout=5
    ) as srv:
        async with station_of(srv) as station:
            assert sink.value("ocpp.connections.open", role="csms") == 1
            await station.call(
                "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
            )
            await station.call("Authorize", {"idTag": "ABC"})
            with pytest.raises(CallErrorReceived):
                await station.call("Authorize", {"idTag": "STOLEN"})
            with pytest.raises(CallErrorReceived):  # no handler: NotImplemented / NotSupported
                await station.call("Heartbeat", {})
            await station.call("DataTransfer", {"vendorId": "X"})
            # strict mode refuses a payload the station sends unchecked
            await station.send_raw('[2,"bad-1","Authorize",{}]')
            # not OCPP-J at all
            await station.send_raw("garbage")
            conn = srv.server.clients["CP1"]
            assert await conn.call("Reset", {"type": "Soft"}) == {"status": "Accepted"}
            with pytest.raises(CallTimeout):
                await conn.call("GetConfiguration", {}, timeout=1)
            with trio.move_on_after(0.5):
                await conn.call("GetConfiguration", {})
            with pytest.raises(CallErrorReceived):
                await conn.call("UnlockConnector", {"connectorId": 1})
            await trio.sleep(0.1)
        await trio.sleep(0.1)
        assert sink.value("ocpp.connections.open", role="csms") == 0

    msgs = "ocpp.messages"
    csms_in = {"role": "csms", "direction": "in", "protocol": "ocpp1.6"}
    assert sink.value(msgs, **csms_in, message_type="CALL", action="BootNotification") == 1
    assert sink.value(msgs, **csms_in, message_type="CALL", action="Authorize") == 3
    assert sink.value(msgs, **csms_in, message_type="invalid") == 1
    assert sink.value(msgs, role="csms", direction="out", message_type="CALLRESULT") == 3
    assert sink.value(msgs, role="csms", direction="out", message_type="CALLERROR") == 4
    assert sink.value(msgs, role="csms", direction="out", message_type="CALL") == 4
    assert sink.value(msgs, **csms_in, message_type="CALLRESULT", action="Reset") == 1
    assert sink.value(msgs, **csms_in, message_type="CALLERROR", action="UnlockConnector") == 1

    dur = "ocpp.call.duration"
    assert sink.value(dur, direction="in", action="Authorize", outcome="ok") == 1
    assert sink.value(dur, direction="in", action="Authorize", outcome="error") == 2
    assert sink.value(dur, direction="in", action="Heartbeat", outcome="error") == 1
    assert sink.value(dur, direction="in", action="DataTransfer", outcome="ok") == 1
    assert sink.value(dur, direction="out", action="Reset", outcome="ok") == 1
    assert sink.value(dur, direction="out", action="GetConfiguration", outcome="timeout") == 1
    assert sink.value(dur, direction="out", action="GetConfiguration", outcome="cancelled") == 1
    assert sink.value(dur, direction="out", action="UnlockConnector", outcome="error") == 1
    # the async handler's half second, in virtual time
    (point,) = [
        p
        for k, p in sink.points(dur).items()
        if ("action", "DataTransfer") in k and ("direction", "in") in k
    ]
    assert 0.5 <= point.sum < 0.6

    errors = "ocpp.callerrors"
    assert sink.value(errors, direction="out", code="SecurityError") == 1
    assert sink.value(errors, direction="out") == 4
    assert sink.value(errors, direction="in", code="NotSupported") == 1
    assert (
        sink.value(
            "ocpp.validation.failures",
            direction="in",
            action="Authorize",
            rule="required",
            outcome="reject",
        )
        == 1
    )

    boot_span = sink.spans("ocpp1.6/BootNotification")[-1]
    assert boot_span.kind is trace.SpanKind.SERVER
    assert boot_span.attributes is not None
    assert boot_span.attributes["ocpp.identity"] == "CP1"
    assert boot_span.attributes["ocpp.outcome"] == "ok"
    assert boot_span.attributes["ocpp.message_id"]
    stolen = [
        s
        for s in sink.spans("ocpp1.6/Authorize")
        if s.attributes and s.attributes["ocpp.outcome"] == "error"
    ]
    assert len(stolen) == 2
    assert {s.attributes["ocpp.error_code"] for s in stolen if s.attributes} >= {"SecurityError"}
    assert all(s.status.status_code is trace.StatusCode.ERROR for s in stolen)
    (reset_span,) = sink.spans("ocpp1.6/Reset")
    assert reset_span.kind is trace.SpanKind.CLIENT
    outcomes = sorted(
        str(s.attributes["ocpp.outcome"])
        for s in sink.spans("ocpp1.6/GetConfiguration")
        if s.attributes
    )
    assert outcomes == ["cancelled", "timeout"]
    # the handler's task runs with the call's span current (its own spans nest under it)
    (transfer,) = sink.spans("ocpp1.6/DataTransfer")
    assert transfer.context is not None
    assert HANDLER_SPANS[-1] == transfer.context.span_id


async def test_limits_and_rejections_are_counted(autojump_clock: trio.testing.MockClock) -> None:
    sink = Sink()

    def auth(request: Any) -> bool:
        return request.identity != "INTRUDER"

    async with open_memory_server(
        csms,
        telemetry=sink.telemetry,
        auth=auth,
        duplicate_policy="reject",
        max_inbound_call_rate=1,
        inbound_call_burst=1,
    ) as srv:
        with pytest.raises(HandshakeRejected):
            async with srv.connect("INTRUDER", reconnect=False):
                pass
        async with srv.connect("CP1") as station:
            with pytest.raises(HandshakeRejected):
                async with srv.connect("CP1", reconnect=False):
                    pass
            await station.call("Authorize", {"idTag": "A"})
            with pytest.raises(CallErrorReceived):
                await station.call("Authorize", {"idTag": "B"})  # over the rate
    assert sink.value("ocpp.handshakes.rejected", reason="unauthorized") == 1
    assert sink.value("ocpp.handshakes.rejected", reason="duplicate") == 1
    assert sink.value("ocpp.limits.hit", limit="max_inbound_call_rate") == 1
    # refused over the rate, before its payload was read: still a CALL and an error answer
    assert sink.value("ocpp.messages", direction="in", message_type="CALL", action="Authorize") == 2
    assert (
        sink.value("ocpp.call.duration", direction="in", action="Authorize", outcome="error") == 1
    )


async def test_a_station_counts_its_pings_reconnects_and_outbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = Sink()
    store = MemoryStore()
    async with (
        open_memory_server(csms, ping_interval=0) as srv,
        srv.connect(
            "CP1",
            telemetry=sink.telemetry,
            ping_interval=10,
            backoff_min=1,
            backoff_max=1,
            outbox=store,
        ) as station,
    ):
        await station.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        await trio.sleep(25)  # two pings
        assert sink.value("ocpp.ping.rtt", role="station") == 2
        assert sink.value("ocpp.connections.open", role="station") == 1
        assert sink.value("ocpp.outbox.depth") == 0
        await srv.server.clients["CP1"].close(1001, "going away")
        await trio.lowlevel.checkpoint()
        # offline: queued, counted, ageing
        handle = await station.enqueue(
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
        )
        assert sink.value("ocpp.outbox.depth") in (0, 1)
        await handle.result()
        await trio.sleep(1)
    assert sink.value("ocpp.reconnects") >= 1
    assert sink.value("ocpp.connections.open", role="station") == 0
    assert sink.value("ocpp.outbox.depth") == 0
    assert (
        sink.value("ocpp.messages", role="station", direction="out", action="StatusNotification")
        == 1
    )


async def test_the_outbox_depth_and_age_while_offline() -> None:
    sink = Sink()
    async with open_ocpp_client(
        "ws://127.0.0.1:1/ocpp",
        identity="CP1",
        protocols=["ocpp1.6"],
        telemetry=sink.telemetry,
        outbox=MemoryStore(),
        wait_connected=False,
        backoff_min=60,
        backoff_max=60,
    ) as station:
        for connector in (1, 2, 3):
            await station.enqueue(
                "StatusNotification",
                {"connectorId": connector, "errorCode": "NoError", "status": "Available"},
            )
        assert sink.value("ocpp.outbox.depth") == 3
        assert sink.value("ocpp.outbox.age") >= 0


async def call_across(
    adapters: list[Any], identity: str = "CP9"
) -> tuple[ReadableSpan, ReadableSpan]:
    """Two instances (one per adapter), a station on the second, ``call_station`` from the first.

    Returns the first one's ``call_station`` span and the second one's call span.
    """
    sinks = [Sink(), Sink()]
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            servers = []
            for sink, adapter in zip(sinks, adapters, strict=True):
                server = OCPPServer(None, ping_interval=0, telemetry=sink.telemetry)
                server.set_adapter(adapter)
                await nursery.start(server.listen, 0, "127.0.0.1")
                servers.append(server)
            a, b = servers
            async with open_ocpp_client(
                f"ws://127.0.0.1:{b.port}/ocpp",
                identity=identity,
                protocols=["ocpp1.6"],
                reconnect=False,
                ping_interval=0,
            ) as station:
                station.handle("Reset")(lambda ctx: {"status": "Accepted"})
                for _ in range(200):  # presence may take a moment to reach the first
                    if await a.locate_station(identity) is not None:
                        break
                    await trio.sleep(0.05)
                answer = await a.call_station(identity, "Reset", {"type": "Soft"})
                assert answer == {"status": "Accepted"}
            for server in servers:
                await server.close()
    (outer,) = sinks[0].spans("call_station/Reset")
    (inner,) = sinks[1].spans("ocpp1.6/Reset")
    assert outer.context is not None
    assert inner.context is not None
    assert inner.context.trace_id == outer.context.trace_id
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert inner.attributes is not None
    assert inner.attributes["ocpp.outcome"] == "ok"
    return outer, inner


async def test_call_station_carries_the_trace_to_the_instance_of_the_station() -> None:
    hub = LocalHub()
    await call_across([LocalAdapter(hub, instance_id="i0"), LocalAdapter(hub, instance_id="i1")])


async def test_station_label_is_opt_in(autojump_clock: trio.testing.MockClock) -> None:
    plain, labelled = Sink(), Sink(station_label=True)
    for sink in (plain, labelled):
        async with open_memory_server(csms, telemetry=sink.telemetry) as srv:
            for identity in ("CP1", "CP2"):
                async with srv.connect(identity) as station:
                    await station.call("Authorize", {"idTag": "A"})
    assert all("station" not in dict(k) for k in plain.points("ocpp.messages"))
    assert {dict(k)["station"] for k in labelled.points("ocpp.messages")} == {"CP1", "CP2"}
    # spans always name the station
    assert {s.attributes["ocpp.identity"] for s in plain.spans() if s.attributes} == {"CP1", "CP2"}


def test_the_rejection_causes_are_a_closed_list() -> None:
    for status in (None, 400, 401, 403, 404, 405, 409, 426, 500, 503, 505, 418):
        assert cause_for_status(status) in REJECTION_CAUSES


async def test_metrics_only_or_traces_only(autojump_clock: trio.testing.MockClock) -> None:
    metrics_only, traces_only = Sink(traces=False), Sink(metrics=False)
    for sink in (metrics_only, traces_only):
        async with (
            open_memory_server(csms, telemetry=sink.telemetry) as srv,
            srv.connect("CP1") as station,
        ):
            await station.call("Authorize", {"idTag": "A"})
    assert metrics_only.spans() == []
    assert metrics_only.value("ocpp.messages") > 0
    assert traces_only.points("ocpp.messages") == {}
    assert traces_only.spans()


async def test_names_a_peer_chooses_do_not_grow_the_series(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = Sink()
    async with (
        open_memory_server(csms, telemetry=sink.telemetry) as srv,
        srv.connect("CP1") as station,
    ):
        for i in range(300):
            await station.send_raw(f'[2,"m{i}","Invented{i}",{{}}]')
        conn = srv.server.clients["CP1"]
        await trio.sleep(1)
        with pytest.raises(CallErrorReceived):
            await conn.call("Reset", {"type": "Soft"})  # the station has no handler
    actions = {dict(k)["action"] for k in sink.points("ocpp.messages")}
    assert "other" in actions
    assert not any(a.startswith("Invented") for a in actions)
    assert sink.value("ocpp.messages", direction="in", message_type="CALL", action="other") == 300
    codes = {dict(k)["code"] for k in sink.points("ocpp.callerrors")}
    assert codes <= {"NotImplemented", "NotSupported", "other"}


def test_error_codes_outside_the_specs_are_other() -> None:
    sink = Sink()
    attrs = sink.telemetry.connection_attributes("CP1", "ocpp1.6", "csms")
    for code in ("NotSupported", "VendorSpecificThing", "x" * 100):
        sink.telemetry.callerror(attrs, "in", code)
    assert {dict(k)["code"] for k in sink.points("ocpp.callerrors")} == {"NotSupported", "other"}
    # a vendor protocol's own actions are kept, up to a bound
    vendor = sink.telemetry.connection_attributes("CP1", "acme1.0", "csms")
    sink.telemetry.message(vendor, "in", 2, "Frobnicate")
    assert sink.value("ocpp.messages", protocol="acme1.0", action="Frobnicate") == 1


def test_without_an_sdk_nothing_is_recorded_until_one_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import opentelemetry.metrics
    import opentelemetry.trace

    telemetry = Telemetry()  # the global providers: the API's placeholders here
    attrs = telemetry.connection_attributes("CP1", "ocpp1.6", "csms")
    assert not telemetry.metrics
    assert not telemetry.traces
    assert telemetry.inbound_call_started(attrs, "Heartbeat", "1") is None
    sink = Sink()
    monkeypatch.setattr(opentelemetry.metrics, "get_meter_provider", lambda: sink.reader)
    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", lambda: sink.tracer_provider)
    telemetry.connection_attributes("CP2", "ocpp1.6", "csms")  # looks again when one opens
    assert telemetry.metrics
    assert telemetry.traces


async def test_the_memory_pair_reports_both_ends(autojump_clock: trio.testing.MockClock) -> None:
    from ocpp_trio.testing import open_memory_pair

    sink = Sink()
    async with open_memory_pair(csms_handler=csms, telemetry=sink.telemetry) as (station, _):
        await station.call("Authorize", {"idTag": "A"})
    assert sink.value("ocpp.call.duration", role="station", direction="out", outcome="ok") == 1
    assert sink.value("ocpp.call.duration", role="csms", direction="in", outcome="ok") == 1
    assert {s.kind for s in sink.spans("ocpp1.6/Authorize")} == {
        trace.SpanKind.CLIENT,
        trace.SpanKind.SERVER,
    }


def test_the_package_imports_without_the_extras() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('opentelemetry', 'prometheus_client'): sys.modules[name] = None\n"
        "import ocpp_trio, ocpp_trio.server, ocpp_trio.client, ocpp_trio.cli.serve\n"
        "from ocpp_trio.observability import FrameLog, Telemetry\n"
        "FrameLog()\n"
        "try:\n"
        "    Telemetry()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'ocpp-trio[otel]'" in done.stdout
