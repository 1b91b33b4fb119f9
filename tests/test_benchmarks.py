"""The benchmark scripts keep working: ``benchmarks/run.py`` on tiny sizes, every system.

Nothing here measures anything; it checks that each system's server and
client peers still run every workload, (d) over TLS included, and that the
report has its tables.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="the script reads /proc"),
]


#: The tiny sizes every run here uses.
TINY = ("--runs=1", "--calls-a=30", "--stations-b=2", "--calls-b=5")


def run_py(*args: str) -> subprocess.CompletedProcess[str]:
    """``benchmarks/run.py`` on tiny sizes with ``args``; it must succeed."""
    done = subprocess.run(
        [sys.executable, str(RUN), *TINY, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_run_py_runs_every_workload_on_tiny_sizes(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    done = run_py(
        "--idle=5", "--connect=6", "--connect-concurrency=3", "--strict=off", f"--out={out}"
    )
    assert "failed" not in done.stderr, done.stderr[-3000:]
    report = out.read_text(encoding="utf-8")
    assert "(d) stations/s" in report
    assert "(d) TLS stations/s" in report
    rows = {
        line.split("|")[1].strip(): line
        for line in report.splitlines()
        if line.startswith("| ") and "(d)" not in line and "---" not in line
    }
    for system in (
        "ocpp_trio",
        "ocpp_trio (trio-websocket transport)",
        "mobilityhouse ocpp 2.1.0",
        "raw trio-websocket (floor)",
        "ocpp_trio's WebSocket driver, no OCPP layer (limit)",
    ):
        assert system in rows, report
    ours = [line for line in report.splitlines() if line.startswith("| ocpp_trio |")]
    # ocpp_trio has a figure in every column of both tables, (d) over TLS too.
    assert len(ours) == 2, report
    assert all("—" not in line for line in ours), report


def test_run_py_measures_the_instrumentation(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS-observability.md"
    run_py("--workloads=calls", "--strict=on", "--observability", f"--out={out}")
    report = out.read_text(encoding="utf-8")
    for system in (
        "| ocpp_trio |",
        "| ocpp_trio, Telemetry() without an SDK |",
        "| ocpp_trio, PrometheusMetrics (SDK) |",
        "| ocpp_trio, PrometheusMetrics + spans (SDK, no exporter) |",
    ):
        (row,) = [line for line in report.splitlines() if line.startswith(system)][:1]
        assert "—" not in row, report


def test_targets_table_says_met_and_not_met() -> None:
    sys.path.insert(0, str(RUN.parent))
    try:
        import run  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(RUN.parent))
    results = {
        "ocpp-ws-io": {
            run.OURS: [{"a_calls_s": 3000, "a_server_us": 100, "idle_kib_1000": 14.0}],
            run.PEER: [{"a_calls_s": 4000, "a_server_us": 120}],
            run.FLOOR: [{"d_conn_s": 100.0}],
        },
        "ocpp_trio-nodeflate": {run.OURS: [{"idle_kib_1000": 17.0}]},
    }
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in run.targets_text(results)
        if line.startswith("| (")
    }
    assert rows["(a) calls/s, ours / ocpp-ws-io"] == [">= 1.0x", "0.75x", "**not met**"]
    assert rows["(a) server CPU per call, ours / ocpp-ws-io"] == ["<= 1.0x", "0.83x", "**met**"]
    assert rows["(b) calls/s, ours / ocpp-ws-io"][1:] == ["—", "not measured"]
    assert rows["(c) KiB per idle station, permessage-deflate negotiated"][2] == "**met**"
    assert rows["(c) KiB per idle station, no compression"][1:] == ["17.0 KiB", "**not met**"]
    assert rows["(a) calls/s, ours / limit"][2] == "not measured"


@pytest.mark.skipif(
    not (ROOT / "tests" / "interop" / "node" / "node_modules" / "ocpp-ws-io").is_dir(),
    reason="needs the node peers (make node-deps)",
)
def test_the_matrix_is_appended_with_the_targets(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmarks, the default run\n", encoding="utf-8")
    run_py(
        "--matrix",
        "--strict=on",
        "--workloads=calls,idle",
        "--idle=3",
        "--only=ocpp_trio,ocpp-ws-io",
        "--append",
        f"--out={out}",
    )
    report = out.read_text(encoding="utf-8")
    assert report.startswith("# Benchmarks, the default run\n")
    assert "\n## Benchmarks, " in report  # the appended run's title, one level down
    assert "## The targets (strict mode on" in report
    table = report[report.index("## The targets") :]
    assert "| (a) calls/s, ours / ocpp-ws-io | >= 1.0x | " in table
    assert "| (c) KiB per idle station, no compression | <= 16 KiB | " in table
