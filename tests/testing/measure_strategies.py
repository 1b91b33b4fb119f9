"""Examples per second of the payload and frame strategies (not a test).

Run ``.venv/bin/python -m tests.testing.measure_strategies``.  Each line times
hypothesis drawing ``N`` examples (the generate phase only, no shrinking, no
database) with a test body that does nothing, best of three runs, so it is the
cost a property test pays per example before its own work.
"""

from __future__ import annotations

import math
import time
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ocpp_trio.testing.strategies import frames, invalid_payloads, malformed_frames, payloads

N = 500

CASES: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("baseline: st.integers()", st.integers()),
    ("payloads ocpp1.6 BootNotification", payloads("ocpp1.6", "BootNotification")),
    ("payloads ocpp1.6 MeterValues", payloads("ocpp1.6", "MeterValues")),
    ("payloads ocpp2.0.1 TransactionEvent", payloads("ocpp2.0.1", "TransactionEvent")),
    ("payloads ocpp2.1 SetChargingProfile", payloads("ocpp2.1", "SetChargingProfile")),
    ("payloads ocpp2.1 NotifyEVChargingNeeds", payloads("ocpp2.1", "NotifyEVChargingNeeds")),
    (
        "invalid_payloads ocpp2.0.1 TransactionEvent",
        invalid_payloads("ocpp2.0.1", "TransactionEvent"),
    ),
    ("frames ocpp1.6", frames("ocpp1.6")),
    ("frames ocpp2.1", frames("ocpp2.1")),
    ("malformed_frames()", malformed_frames()),
]


def rate(strategy: st.SearchStrategy[Any]) -> float:
    @settings(
        max_examples=N,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(value: Any) -> None:
        pass

    run()  # warm-up: schema loading, strategy construction
    best = math.inf
    for _ in range(3):  # best of three: the machine may be shared
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return N / best


def main() -> None:
    for name, strategy in CASES:
        per_second = rate(strategy)
        print(f"{name:45} {per_second:8.0f} examples/s  {1000 / per_second:6.2f} ms/example")


if __name__ == "__main__":
    main()
