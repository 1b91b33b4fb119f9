"""The operations endpoints: ``OCPPServer.readiness``, ``serve_ops`` on loopback, ``ops_app``.

``serve_ops`` is spoken to over real sockets with an h11 client (the ASGI
tests' ``http_request``) and, for what a well-behaved client never sends,
with raw bytes; ``ops_app`` is called directly with ASGI messages and, once,
mounted in Starlette under Hypercorn's Trio worker.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount

from ocpp_trio import OCPPServer, open_ocpp_client
from ocpp_trio.asgi import OCPPASGIApp
from ocpp_trio.cluster import LocalAdapter
from ocpp_trio.observability import PrometheusMetrics, ops_app, serve_ops
from ocpp_trio.observability.ops import _serve_connection
from ocpp_trio.observability.prometheus import CONTENT_TYPE

from ..asgi.helpers import http_request, hypercorn
from ..test_cli_commands import ocpp_trio, one_line_error
from .helpers import serving_with_ops

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


class FlakyAdapter:
    """A cluster adapter whose backend comes and goes: ``LocalAdapter`` with a ``healthy`` switch."""

    def __init__(self) -> None:
        self.inner = LocalAdapter()
        self.healthy = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def on_station(conn: Any) -> None:
    conn.handle(
        "BootNotification",
        lambda ctx: {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 60},
    )


@asynccontextmanager
async def ops(
    server: OCPPServer | None = None, metrics: PrometheusMetrics | None = None, **bounds: Any
) -> AsyncIterator[tuple[OCPPServer, int]]:
    """A listening OCPP server (unless given one) and its operations endpoints; their ports."""
    if server is None:
        server = OCPPServer(
            on_station,
            protocols=["ocpp1.6"],
            telemetry=metrics.telemetry() if metrics is not None else None,
        )
        listen = True
    else:
        listen = False
    async with trio.open_nursery() as nursery:
        if listen:
            await nursery.start(server.listen, 0, "127.0.0.1")
        port = await nursery.start(partial(serve_ops, server, metrics, 0, **bounds))
        yield server, port
        await server.close()
        nursery.cancel_scope.cancel()


async def raw(port: int, data: bytes) -> bytes:
    """Send ``data`` over a fresh connection; everything until the server closes it."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        received = b""
        while chunk := await stream.receive_some():
            received += chunk
    return received


# --- readiness ---------------------------------------------------------------------------


async def test_readiness_follows_the_server_from_creation_to_close() -> None:
    server = OCPPServer(on_station)
    assert server.readiness() == (False, "the server is not serving yet")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.listen, 0, "127.0.0.1")
        assert server.readiness() == (True, "ready")
        await server.close()
        assert server.readiness() == (False, "the server is shutting down")


async def test_readiness_is_false_once_the_listener_is_gone() -> None:
    server = OCPPServer(on_station)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.listen, 0, "127.0.0.1")
        nursery.cancel_scope.cancel()
    assert server.readiness() == (False, "the server stopped listening")


def clustered() -> tuple[OCPPServer, FlakyAdapter]:
    """A server in a cluster whose backend the test can take away."""
    server = OCPPServer(on_station)
    adapter = FlakyAdapter()
    server.set_adapter(adapter)  # type: ignore[arg-type]
    return server, adapter


async def test_readiness_follows_the_cluster_adapter() -> None:
    server, adapter = clustered()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.listen, 0, "127.0.0.1")
        assert server.readiness() == (True, "ready")
        adapter.healthy = False
        assert server.readiness() == (False, "the cluster backend is unreachable")
        adapter.healthy = True
        assert server.readiness() == (True, "ready")
        await server.close()


async def test_readiness_of_a_server_hosted_by_the_asgi_front_end() -> None:
    front = OCPPASGIApp(OCPPServer(on_station))
    assert front.server.readiness()[0] is False
    async with front.running() as server:
        assert server.readiness() == (True, "ready")
    assert front.server.readiness() == (False, "the server is shutting down")


# --- serve_ops ------------------------------------------------------------------------------


async def test_health_ready_and_metrics() -> None:
    metrics = PrometheusMetrics()
    async with ops(metrics=metrics) as (server, port):
        health = await http_request(port, "/health")
        assert (health.status, health.body) == (200, b"ok\n")
        assert health.headers["content-type"] == "text/plain; charset=utf-8"
        ready = await http_request(port, "/ready?verbose=1")  # a query string changes nothing
        assert (ready.status, ready.body) == (200, b"ready\n")

        url = f"ws://127.0.0.1:{server.port}/ocpp"
        async with open_ocpp_client(url, identity="CP1", protocols=["ocpp1.6"]) as client:
            await client.call("BootNotification", BOOT)
            scraped = await http_request(port, "/metrics")
        assert scraped.status == 200
        assert scraped.headers["content-type"] == CONTENT_TYPE
        text = scraped.body.decode()
        assert 'ocpp_connections_open{otel_scope_name="ocpp_trio"' in text
        assert (
            'ocpp_messages_total{action="BootNotification",direction="in",message_type="CALL",'
            in text
        )
        assert int(scraped.headers["content-length"]) == len(scraped.body)
    metrics.shutdown()


async def test_ready_is_503_with_the_reason_while_the_cluster_is_unreachable() -> None:
    server, adapter = clustered()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.listen, 0, "127.0.0.1")
        async with ops(server) as (_, port):
            adapter.healthy = False
            ready = await http_request(port, "/ready")
            assert (ready.status, ready.body) == (503, b"the cluster backend is unreachable\n")
            assert (await http_request(port, "/health")).status == 200


async def test_ready_is_503_before_the_server_listens_and_after_it_closed() -> None:
    server = OCPPServer(on_station)
    async with ops(server) as (_, port):
        ready = await http_request(port, "/ready")
        assert (ready.status, ready.body) == (503, b"the server is not serving yet\n")
        await server.close()
        ready = await http_request(port, "/ready")
        assert (ready.status, ready.body) == (503, b"the server is shutting down\n")


async def test_unknown_paths_methods_and_head() -> None:
    async with ops() as (_, port):  # no metrics: /metrics is not there
        for path in ("/metrics", "/", "/health/", "/healthz"):
            answer = await http_request(port, path)
            assert answer.status == 404, path
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            answer = await http_request(port, "/health", method=method)
            assert answer.status == 405, method
            assert answer.headers["allow"] == "GET, HEAD"
        head = await http_request(port, "/ready", method="HEAD")
        assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "6")


async def test_keep_alive_answers_several_requests_on_one_connection() -> None:
    async with ops() as (_, port):
        one = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
        last = b"GET /ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        answer = await raw(port, one + one + last)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert answer.endswith(b"ready\n")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\n\r\n",  # HTTP/1.1 without a host
        b"GET /health HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n",
        b"GET /health HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n",
    ],
    ids=["not-http", "tls-hello", "no-host", "bad-header", "bad-length"],
)
async def test_garbage_gets_400_and_a_close(request_bytes: bytes) -> None:
    async with ops() as (_, port):
        answer = await raw(port, request_bytes)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
        assert b"connection: close\r\n" in answer
        assert (await http_request(port, "/health")).status == 200  # and the server carries on


async def test_a_huge_header_is_refused_within_the_bound() -> None:
    async with ops(max_request_size=1024) as (_, port):
        huge = b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 1_000_000 + b"\r\n\r\n"
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        answer = b""
        async with stream:
            # The server answers and closes long before the whole header is
            # sent; the close may reset the connection under the answer.
            try:
                await stream.send_all(huge)
                while chunk := await stream.receive_some():
                    answer += chunk
            except trio.BrokenResourceError:
                pass
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer
        answer = await raw(port, b"GET /health HTTP/1.1\r\nhost: x\r\nx: " + b"a" * 2000 + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert (await http_request(port, "/health")).status == 200


async def test_a_body_past_the_bound_gets_413() -> None:
    async with ops(max_request_size=1024) as (_, port):
        body = b"x" * 4096
        request = b"GET /health HTTP/1.1\r\nhost: x\r\ncontent-length: 4096\r\n\r\n" + body
        answer = await raw(port, request)
    assert answer.startswith(b"HTTP/1.1 413 "), answer


async def test_a_silent_connection_is_closed_at_the_request_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with ops(request_timeout=5.0) as (_, port):
        start = trio.current_time()
        answer = await raw(port, b"GET /health HTTP/1.1\r\n")  # never finished
        assert answer == b""
        assert 5.0 <= trio.current_time() - start < 6.0


async def test_connections_beyond_the_bound_wait_for_a_free_slot() -> None:
    async with ops(max_connections=1) as (_, port):
        first = await trio.open_tcp_stream("127.0.0.1", port)
        answered = trio.Event()

        async def second() -> None:
            assert (await http_request(port, "/health")).status == 200
            answered.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(second)
            with trio.move_on_after(0.3):
                await answered.wait()
            assert not answered.is_set()  # the first connection holds the only slot
            await first.aclose()
            with trio.fail_after(5):
                await answered.wait()


@pytest.mark.parametrize(
    "bounds",
    [{"max_connections": 0}, {"request_timeout": 0}, {"max_request_size": 0}],
)
async def test_bounds_must_be_positive(bounds: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        await serve_ops(OCPPServer(), None, 0, **bounds)


# --- ops_app ----------------------------------------------------------------------------------


async def asgi_call(app: Any, scope: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Run ``app`` for one HTTP scope; the status, headers and body it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "root_path": "", **scope}, receive, send)
    start, body = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, body["body"]


async def test_ops_app_answers_as_serve_ops_does() -> None:
    metrics = PrometheusMetrics()
    server = OCPPServer(on_station, telemetry=metrics.telemetry())
    app = ops_app(server, metrics)
    assert await asgi_call(app, {"path": "/health"}) == (
        200,
        {
            "content-type": "text/plain; charset=utf-8",
            "cache-control": "no-store",
            "content-length": "3",
        },
        b"ok\n",
    )
    status, _, body = await asgi_call(app, {"path": "/ready"})
    assert (status, body) == (503, b"the server is not serving yet\n")
    # Starlette's Mount keeps the whole path and sets root_path; older servers strip it.
    status, headers, _ = await asgi_call(app, {"path": "/ops/metrics", "root_path": "/ops"})
    assert (status, headers["content-type"]) == (200, CONTENT_TYPE)
    status, headers, body = await asgi_call(app, {"path": "/metrics", "root_path": "/ops"})
    assert status == 200
    status, headers, body = await asgi_call(app, {"path": "/health", "method": "HEAD"})
    assert (status, headers["content-length"], body) == (200, "3", b"")
    status, headers, _ = await asgi_call(app, {"path": "/health", "method": "POST"})
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    assert (await asgi_call(ops_app(server), {"path": "/metrics"}))[0] == 404
    assert (await asgi_call(app, {"path": "/elsewhere"}))[0] == 404
    metrics.shutdown()


async def test_ops_app_acknowledges_lifespan_and_refuses_websockets() -> None:
    app = ops_app(OCPPServer())
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    await app({"type": "websocket", "path": "/health"}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
        "websocket.close",
    ]
    with pytest.raises(ValueError, match="unsupported ASGI scope type 'webtransport'"):
        await app({"type": "webtransport"}, receive, send)


async def test_ops_app_mounted_in_starlette_beside_the_ocpp_app() -> None:
    metrics = PrometheusMetrics()
    front = OCPPASGIApp(
        OCPPServer(on_station, protocols=["ocpp1.6"], telemetry=metrics.telemetry())
    )
    app = Starlette(
        routes=[Mount("/ocpp", app=front), Mount("/ops", app=ops_app(front.server, metrics))],
        lifespan=front.lifespan,
    )
    async with hypercorn(app) as running:
        ready = await http_request(running.port, "/ops/ready")
        assert (ready.status, ready.body) == (200, b"ready\n")
        url = f"ws://127.0.0.1:{running.port}/ocpp"
        async with open_ocpp_client(url, identity="CP1", protocols=["ocpp1.6"]) as client:
            await client.call("BootNotification", BOOT)
            scraped = await http_request(running.port, "/ops/metrics")
        assert scraped.status == 200
        assert (
            'action="BootNotification",direction="in",message_type="CALL"' in scraped.body.decode()
        )
        assert (await http_request(running.port, "/ops/nothing")).status == 404
    metrics.shutdown()


# --- ocpp-trio serve --ops-port --------------------------------------------------------------


async def test_serve_with_an_ops_port_answers_and_says_where() -> None:
    with serving_with_ops("--json") as served:
        port = served.ops_port
        assert (await http_request(port, "/ready")).status == 200
        scraped = await http_request(port, "/metrics")
        assert scraped.status == 200
        assert scraped.headers["content-type"] == CONTENT_TYPE
    assert served.returncode == 0, served.err
    records = [json.loads(line) for line in served.lines]
    assert [r["event"] for r in records] == ["listening", "ops_listening", "summary"]
    assert {
        "event": "ops_listening",
        "url": f"http://127.0.0.1:{port}",
        "paths": ["/health", "/ready", "/metrics"],
    }.items() <= records[1].items()


def test_serve_ops_options_are_checked() -> None:
    error = one_line_error(ocpp_trio("serve", "--ops-host", "0.0.0.0"), "serve", 2)
    assert error.endswith("--ops-host is only used with --ops-port")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error = one_line_error(
            ocpp_trio("serve", "--port", "0", "--ops-port", str(port)), "serve", 1
        )
    assert f"cannot listen on 127.0.0.1:{port}" in error


# --- whatever a client sends ------------------------------------------------------------------

METHODS = st.sampled_from(["GET", "HEAD", "POST", "get", "G\x00T", "", "GET GET", "\xff"])
TARGETS = st.one_of(
    st.sampled_from(["/health", "/ready", "/metrics", "/", "*", "http://x/health", "/%00"]),
    st.text(max_size=40),
)
VERSIONS = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", "", "http/1.1"])
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(["host", "content-length", "transfer-encoding", "connection", "x", ""]),
        st.one_of(st.sampled_from(["x", "0", "5", "-1", "chunked", "close", "99999"]), st.text()),
    ),
    max_size=6,
)
REQUESTS = st.lists(
    st.builds(
        lambda method, target, version, headers, body: (
            (
                f"{method} {target} {version}\r\n"
                + "".join(f"{name}: {value}\r\n" for name, value in headers)
                + "\r\n"
            ).encode("utf-8", "surrogatepass")
            + body
        ),
        METHODS,
        TARGETS,
        VERSIONS,
        HEADERS,
        st.binary(max_size=64),
    ),
    min_size=1,
    max_size=3,
).map(b"".join)
ANY_BYTES = st.one_of(REQUESTS, st.binary(max_size=2048))
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [A-Za-z ]+\r\n")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_BYTES)
def test_whatever_a_client_sends_gets_http_answers_or_a_close(data: bytes) -> None:
    server = OCPPServer()

    async def exchange() -> bytes:
        client, ours = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(_serve_connection, ours, server, None, request_timeout=5.0, limit=1024)
            )
            await client.send_all(data)
            await client.send_eof()
            answer = b""
            while chunk := await client.receive_some():
                answer += chunk
        return answer

    answer = trio.run(exchange, clock=trio.testing.MockClock(autojump_threshold=0))
    statuses = {int(status) for status in STATUS_LINE.findall(answer)}
    assert statuses <= {200, 400, 404, 405, 413, 431, 501, 503, 505}, answer
    assert answer == b"" or STATUS_LINE.match(answer), answer


def test_ops_app_runs_under_asyncio_too() -> None:
    metrics = PrometheusMetrics()
    app = ops_app(OCPPServer(telemetry=metrics.telemetry()), metrics)
    status, headers, _ = asyncio.run(asgi_call(app, {"path": "/metrics"}))
    assert (status, headers["content-type"]) == (200, CONTENT_TYPE)
    assert asyncio.run(asgi_call(app, {"path": "/health"}))[0] == 200
    metrics.shutdown()
