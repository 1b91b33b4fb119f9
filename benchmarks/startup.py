"""(f) Start-up: import time of ``ocpp_trio`` and the latency of the first call with strict mode.

Each figure comes from a fresh interpreter (median of several), so it includes
what a freshly started CSMS or station pays: imports, then the first strict
call over an in-memory pair (compiling the schemas of that message on first
use).  Prints a Markdown table; asserts nothing.

    python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {root!r})
    t0 = time.perf_counter()
    import ocpp_trio
    import_ms = (time.perf_counter() - t0) * 1e3
    import trio
    from ocpp_trio.testing import open_memory_pair

    async def main():
        async with open_memory_pair({protocol!r}, strict_mode=True) as (station, csms):
            csms.handle("BootNotification", lambda ctx: {result!r})
            t1 = time.perf_counter()
            await station.call("BootNotification", {params!r})
            first = (time.perf_counter() - t1) * 1e3
            t2 = time.perf_counter()
            await station.call("BootNotification", {params!r})
            second = (time.perf_counter() - t2) * 1e3
        return first, second

    first, second = trio.run(main)
    print(json.dumps({{"import_ms": import_ms, "first_ms": first, "second_ms": second}}))
    """
)

CASES = {
    "ocpp1.6": (
        {"chargePointVendor": "V", "chargePointModel": "M"},
        {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300},
    ),
    "ocpp2.0.1": (
        {"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"},
        {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300},
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    opts = parser.parse_args()
    print("| protocol | import ocpp_trio ms | first strict call ms | second call ms |")
    print("| --- | --- | --- | --- |")
    for protocol, (params, result) in CASES.items():
        code = CHILD.format(root=str(ROOT), protocol=protocol, params=params, result=result)
        rows = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True
                ).stdout
            )
            for _ in range(opts.runs)
        ]
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"| {protocol} | {med['import_ms']:.0f} | {med['first_ms']:.1f} | {med['second_ms']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
