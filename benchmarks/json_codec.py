"""JSON for OCPP frames: the codec ocpp_trio uses (stdlib ``json``) against orjson.

    python benchmarks/json_codec.py          # needs orjson importable (pip install orjson)

Per frame shape, microseconds per decode and per encode, best of 7 runs of a
fixed number of loops, in one process, back to back:

- ``stdlib``: what ``ocpp_trio._core.frames`` does (``json.JSONDecoder`` with
  finite-float and constant checks; the C encoder built once, compact,
  ``ensure_ascii=False``);
- ``orjson``: ``orjson.loads`` and ``orjson.dumps(...).decode()`` (a
  ``str`` is what the transport sends; orjson refuses NaN and lone
  surrogates by itself).

The last column is what one server round trip (decode a CALL, encode its
CALLRESULT) would save, to set against the server's CPU per call in
``benchmarks/RESULTS.md`` (its common-client tables).  Nothing is asserted.
"""

from __future__ import annotations

import json
import platform
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocpp_trio._core.frames import _dumps, _loads

NOW = "2026-12-02T10:00:00.000Z"
SAMPLES = [
    {
        "value": 1234.5 + i,
        "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": {"unit": "Wh"},
        "context": "Sample.Periodic",
    }
    for i in range(12)
]
CALLS: dict[str, list[Any]] = {
    "Heartbeat CALL (1.6)": [2, "19223201", "Heartbeat", {}],
    "BootNotification CALL (2.0.1)": [
        2,
        "b2c7f0b1-9a1e-4b0e-8d4a-3f2f1c5e6a7b",
        "BootNotification",
        {
            "reason": "PowerUp",
            "chargingStation": {
                "model": "SingleSocketCharger",
                "vendorName": "VendorX",
                "serialNumber": "SN-000123",
                "firmwareVersion": "1.4.2",
            },
        },
    ],
    "MeterValues CALL, 12 samples (2.0.1)": [
        2,
        "7f3a2c10-5b8e-4f4a-9d7e-2a1b3c4d5e6f",
        "MeterValues",
        {"evseId": 1, "meterValue": [{"timestamp": NOW, "sampledValue": SAMPLES}]},
    ],
}
RESULTS: dict[str, list[Any]] = {
    "Heartbeat CALL (1.6)": [3, "19223201", {"currentTime": NOW}],
    "BootNotification CALL (2.0.1)": [
        3,
        "b2c7f0b1-9a1e-4b0e-8d4a-3f2f1c5e6a7b",
        {"currentTime": NOW, "interval": 300, "status": "Accepted"},
    ],
    "MeterValues CALL, 12 samples (2.0.1)": [3, "7f3a2c10-5b8e-4f4a-9d7e-2a1b3c4d5e6f", {}],
}


def best_us(fn: Any, loops: int) -> float:
    return min(timeit.repeat(fn, number=loops, repeat=7)) / loops * 1e6


def main() -> int:
    try:
        import orjson
    except ImportError:
        print("orjson is not installed: nothing to compare (pip install orjson)")
        return 0
    print(
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"orjson {orjson.__version__}; microseconds, best of 7\n"
    )
    print("| frame | bytes | decode stdlib | decode orjson | encode answer stdlib "
          "| encode answer orjson | saved per round trip |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, call in CALLS.items():
        text = json.dumps(call, separators=(",", ":"))
        answer = RESULTS[name]
        assert _loads(text) == orjson.loads(text) == call
        assert _dumps(answer) == orjson.dumps(answer).decode()
        loops = 20_000
        d_std = best_us(lambda text=text: _loads(text), loops)
        d_or = best_us(lambda text=text: orjson.loads(text), loops)
        e_std = best_us(lambda answer=answer: _dumps(answer), loops)
        e_or = best_us(lambda answer=answer: orjson.dumps(answer).decode(), loops)
        saved = (d_std + e_std) - (d_or + e_or)
        print(
            f"| {name} | {len(text)} | {d_std:.2f} | {d_or:.2f} | {e_std:.2f} | {e_or:.2f} "
            f"| {saved:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
