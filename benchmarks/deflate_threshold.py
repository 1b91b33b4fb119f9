"""Where permessage-deflate pays off for OCPP messages: bytes saved against CPU spent.

For OCPP-J frames of typical shapes and sizes, sent one after another on one
connection (context takeover, as websockets negotiates by default, with the
server's settings: 12 window bits, memLevel 5), this measures the compressed
size and the CPU time of compressing and of decompressing each message, as
RFC 7692 does it (sync flush, the trailing 4 bytes dropped).  Prints a
Markdown table; asserts nothing.

    python benchmarks/deflate_threshold.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
import zlib
from collections.abc import Callable, Sequence

WBITS = 12
MEM_LEVEL = 5


def heartbeat() -> list[object]:
    return [2, str(uuid.uuid4()), "Heartbeat", {}]


def heartbeat_result() -> list[object]:
    return [3, str(uuid.uuid4()), {"currentTime": "2026-12-02T07:30:00.123Z"}]


def status_notification() -> list[object]:
    return [
        2,
        str(uuid.uuid4()),
        "StatusNotification",
        {
            "connectorId": 1,
            "errorCode": "NoError",
            "status": "Charging",
            "timestamp": "2026-12-02T07:30:00Z",
        },
    ]


def meter_values(samples: int) -> Callable[[], list[object]]:
    def make() -> list[object]:
        sampled = [
            {
                "value": f"{1234.5 + i:.1f}",
                "context": "Sample.Periodic",
                "measurand": measurand,
                "unit": unit,
                "phase": phase,
            }
            for i in range(samples)
            for measurand, unit, phase in (
                ("Energy.Active.Import.Register", "Wh", "L1"),
                ("Current.Import", "A", "L1"),
            )
        ]
        return [
            2,
            str(uuid.uuid4()),
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": 4711,
                "meterValue": [{"timestamp": "2026-12-02T07:30:00Z", "sampledValue": sampled}],
            },
        ]

    return make


CASES: Sequence[tuple[str, Callable[[], list[object]]]] = (
    ("Heartbeat CALL", heartbeat),
    ("Heartbeat result", heartbeat_result),
    ("StatusNotification", status_notification),
    ("MeterValues, 1 sample pair", meter_values(1)),
    ("MeterValues, 4 sample pairs", meter_values(4)),
    ("MeterValues, 12 sample pairs", meter_values(12)),
    ("MeterValues, 40 sample pairs", meter_values(40)),
)


def measure(make: Callable[[], list[object]], rounds: int) -> tuple[float, float, float, float]:
    """Mean raw bytes, mean compressed bytes, µs to compress, µs to decompress (per message)."""
    encoder = zlib.compressobj(wbits=-WBITS, memLevel=MEM_LEVEL)
    decoder = zlib.decompressobj(wbits=-WBITS)
    messages = [json.dumps(make(), separators=(",", ":")).encode() for _ in range(rounds)]
    t0 = time.perf_counter()
    compressed = [(encoder.compress(m) + encoder.flush(zlib.Z_SYNC_FLUSH))[:-4] for m in messages]
    t1 = time.perf_counter()
    for c in compressed:
        decoder.decompress(c + b"\x00\x00\xff\xff")
    t2 = time.perf_counter()
    raw = sum(map(len, messages)) / rounds
    packed = sum(map(len, compressed)) / rounds
    return raw, packed, (t1 - t0) / rounds * 1e6, (t2 - t1) / rounds * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    opts = parser.parse_args(argv)
    print("| message | bytes | compressed bytes | saved | compress µs | decompress µs |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, make in CASES:
        raw, packed, comp, decomp = measure(make, opts.rounds)
        print(
            f"| {name} | {raw:.0f} | {packed:.0f} | {raw - packed:.0f} B ({1 - packed / raw:.0%}) "
            f"| {comp:.1f} | {decomp:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
