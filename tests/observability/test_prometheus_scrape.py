"""A real Prometheus scrapes ``ocpp-trio serve --ops-port`` and sees the series we document.

``serve`` runs as a subprocess with its operations endpoints on a loopback
port; a station connects from this process (BootNotification, Heartbeat, a
call the CSMS refuses) and a plain HTTP request is refused at the OCPP port;
Debian's ``prometheus`` scrapes every second into a temporary TSDB, and its
query API is polled (real time: it is a real process) until the series appear
with their labels and values, within a bound.  Both processes are killed on
the way out.  Loopback only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trio

from ocpp_trio import CallErrorReceived, open_ocpp_client

from ..asgi.helpers import http_request
from ..conftest import free_tcp_port
from .helpers import serving_with_ops
from .test_dashboard import load, queries

#: How long Prometheus may take to start and scrape what we look for.
DEADLINE = 60.0
POLL = 0.5
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
#: Skipped (with a word on how to get it) where it is not installed; a skip
#: inside a Trio test would lose its reason.
PROMETHEUS = shutil.which("prometheus")
PROMETHEUS = shutil.which("prometheus")


@contextmanager
def prometheus(binary: str, target: str, tmp: Path) -> Iterator[int]:
    """Run Prometheus scraping ``target`` every second; its HTTP port."""
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: ocpp_trio\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n",
        encoding="utf-8",
    )
    port = free_tcp_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


async def query(port: int, promql: str) -> list[dict[str, Any]]:
    """The instant vector ``promql`` selects now ([] while Prometheus is not up yet)."""
    try:
        answer = await http_request(port, f"/api/v1/query?query={quote(promql)}")
    except OSError:
        return []
    if answer.status != 200:
        return []
    result: list[dict[str, Any]] = json.loads(answer.body)["data"]["result"]
    return result


def grafana_to_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables given values (every job and instance)."""
    return expr.replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*")


async def check_promql(port: int, where: str, promql: str) -> None:
    answer = await http_request(port, f"/api/v1/query?query={quote(promql)}")
    assert answer.status == 200, f"{where}: {promql}: {answer.body!r}"
    assert json.loads(answer.body)["status"] == "success"


async def until(port: int, promql: str, want: float, log: Path) -> dict[str, str]:
    """Poll until ``promql`` selects one series of value ``want``; its labels."""
    seen: list[dict[str, Any]] = []
    with trio.move_on_after(DEADLINE):
        while True:
            seen = await query(port, promql)
            if len(seen) == 1 and float(seen[0]["value"][1]) == want:
                labels: dict[str, str] = seen[0]["metric"]
                return labels
            await trio.sleep(POLL)
    tail = (await trio.Path(log).read_text(encoding="utf-8", errors="replace"))[-3000:]
    pytest.fail(f"Prometheus did not see {promql} == {want} within {DEADLINE} s: {seen}\n{tail}")


@pytest.mark.slow
@pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus is not installed (Debian package 'prometheus'); .ci/run installs it",
)
async def test_prometheus_scrapes_the_ops_port(tmp_path: Path) -> None:
    binary = PROMETHEUS
    assert binary is not None
    with serving_with_ops("--protocols", "ocpp1.6") as served:
        ops_port = served.ops_port
        with prometheus(binary, f"127.0.0.1:{ops_port}", tmp_path) as port:
            await scrape_and_check(served.url, port, tmp_path / "prometheus.log")
    assert served.returncode == 0, served.err
    assert served.lines[0] == f"listening on {served.url}"
    assert served.lines[2] == (
        f"operations endpoints on http://127.0.0.1:{ops_port} (/health, /ready, /metrics)"
    )


async def scrape_and_check(url: str, port: int, log: Path) -> None:
    """Make some traffic at ``url``, then poll Prometheus until it has seen it all."""
    ocpp_port = int(url.rsplit(":", 1)[1].split("/")[0])
    refused = await http_request(ocpp_port, "/ocpp/CP2")  # not a WebSocket upgrade
    assert refused.status == 426
    async with open_ocpp_client(url, identity="CP1", protocols=["ocpp1.6"]) as client:
        await client.call("BootNotification", BOOT)
        await client.call("Heartbeat", {})
        with pytest.raises(CallErrorReceived):
            await client.call("Reset", {"type": "Soft"})  # a CSMS does not take it

        assert await until(port, 'up{job="ocpp_trio"}', 1, log)
        labels = await until(port, "ocpp_connections_open", 1, log)
        assert (labels["protocol"], labels["role"]) == ("ocpp1.6", "csms")
        labels = await until(
            port,
            'ocpp_messages_total{direction="in",message_type="CALL",action="BootNotification"}',
            1,
            log,
        )
        assert (labels["protocol"], labels["role"]) == ("ocpp1.6", "csms")
        await until(
            port,
            'ocpp_messages_total{direction="out",message_type="CALLRESULT",action="Heartbeat"}',
            1,
            log,
        )
        await until(
            port,
            'ocpp_call_duration_seconds_count{direction="in",action="BootNotification",'
            'outcome="ok"}',
            1,
            log,
        )
        await until(
            port, 'ocpp_call_duration_seconds_bucket{action="BootNotification",le="+Inf"}', 1, log
        )
        labels = await until(port, 'ocpp_callerrors_total{direction="out"}', 1, log)
        assert labels["code"]
        await until(port, 'ocpp_handshakes_rejected_total{reason="not_websocket"}', 1, log)
        # Every query of the Grafana dashboard is PromQL this Prometheus runs.
        for where, expr in queries(load()):
            await check_promql(port, where, grafana_to_promql(expr))
    await until(port, "ocpp_connections_open", 0, log)
