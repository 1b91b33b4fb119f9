"""Shared bits of the benchmark peers: argument parsing and the result line."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Sequence

HEARTBEAT_RESULT = {"currentTime": "2024-01-01T00:00:00Z"}


def client_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--stations", type=int, default=1)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per station")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument(
        "--idle", type=float, default=0.0, help="hold the connections idle this long"
    )
    return parser.parse_args(argv)


def server_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strict", action="store_true")
    return parser.parse_args(argv)


def announce_port(port: int) -> None:
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)


def report(latencies: list[float], seconds: float, **extra: object) -> None:
    """Print one JSON line: calls, seconds, calls/s, p50/p99 latency in ms."""
    latencies.sort()
    n = len(latencies)
    out = {
        "calls": n,
        "seconds": seconds,
        "calls_per_s": n / seconds if seconds else 0.0,
        "p50_ms": 1000 * latencies[n // 2] if n else None,
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None,
        "mean_ms": 1000 * statistics.fmean(latencies) if n else None,
        **extra,
    }
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
