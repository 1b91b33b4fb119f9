"""What a validation policy costs on the hot path.

Two measurements, each with no policy and with a policy holding rules and
every relaxation:

* per message: ``Link.validate``, the step every strict-mode message takes on
  a connection (best of several timeit runs, µs per call), on a valid 1.6
  MeterValues (three samples), and on failing ones: a refused payload (no
  policy), a reported one, and one the relaxations repair (``connectorId``
  sent as ``"1"``);
* end to end: sequential MeterValues calls per second over an in-memory
  station/CSMS pair, the CSMS in strict mode (median of runs interleaved
  in alternating order).

Prints a table; asserts nothing.

    python benchmarks/validation_policy.py [--calls 3000] [--runs 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import timeit
from typing import Any

import trio

from ocpp_trio import HandlerContext, PolicyRule, ValidationPolicy
from ocpp_trio._core.protocol import RPCProtocol
from ocpp_trio._core.validation import get_validator
from ocpp_trio._rpc.link import Link
from ocpp_trio._rpc.options import ConnectionOptions
from ocpp_trio.events import EventEmitter
from ocpp_trio.routing import Router
from ocpp_trio.testing import open_memory_pair

SAMPLES = [
    {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
    {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
    {"value": "16", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
]
VALID: dict[str, Any] = {
    "connectorId": 1,
    "transactionId": 7,
    "meterValue": [{"timestamp": "2024-05-01T10:00:00Z", "sampledValue": SAMPLES}],
}
BAD_UNIT = {**VALID, "meterValue": [{**VALID["meterValue"][0], "sampledValue": [{"value": "1", "unit": "Hertz"}]}]}  # fmt: skip
STRING_ID = {**VALID, "connectorId": "1"}

POLICY = ValidationPolicy(
    [
        PolicyRule("report", action="MeterValues", rule="enum"),
        PolicyRule("ignore", action="DataTransfer"),
        PolicyRule("report", protocol="ocpp1.6", action="StatusNotification", rule="type"),
    ],
    relaxations={
        "numbers_as_strings",
        "unknown_properties",
        "enum_case",
        "timestamps_without_zone",
    },
)


def make_link(policy: ValidationPolicy | None) -> Link:
    validator = get_validator("ocpp1.6")
    validator.precompile()
    return Link(
        identity="CP1",
        protocol="ocpp1.6",
        transport=None,  # type: ignore[arg-type]  # validate() never writes
        proto=RPCProtocol(protocol="ocpp1.6"),
        options=ConnectionOptions(strict_mode=True, validation_policy=policy),
        emitter=EventEmitter(),
        router=Router(),
        validator=validator,
    )


def per_call_us(link: Link, payload: dict[str, Any], number: int = 20_000) -> float:
    def once() -> None:
        link.validate("MeterValues", "request", payload, outbound=False, message_id="1")

    best = min(timeit.repeat(once, number=number, repeat=7))
    return best / number * 1e6


async def calls_per_second(policy: ValidationPolicy | None, calls: int) -> float:
    async with open_memory_pair(
        "ocpp1.6", csms_options={"strict_mode": True, "validation_policy": policy}
    ) as (station, csms):

        def meter(ctx: HandlerContext) -> dict[str, Any]:
            return {}

        csms.handle("MeterValues", meter)
        for _ in range(200):
            await station.call("MeterValues", VALID)
        start = time.perf_counter()
        for _ in range(calls):
            await station.call("MeterValues", VALID)
        return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    bare, with_policy = make_link(None), make_link(POLICY)
    rows = [
        ("valid MeterValues", per_call_us(bare, VALID), per_call_us(with_policy, VALID)),
        (
            "MeterValues, unit Hertz (refused / reported)",
            per_call_us(bare, BAD_UNIT, 5000),
            per_call_us(with_policy, BAD_UNIT, 5000),
        ),
        (
            'MeterValues, connectorId "1" (refused / repaired)',
            per_call_us(bare, STRING_ID, 5000),
            per_call_us(with_policy, STRING_ID, 5000),
        ),
    ]
    none_runs: list[float] = []
    policy_runs: list[float] = []
    for i in range(args.runs):  # interleaved, in alternating order: noise hits both alike
        runs = [(None, none_runs), (POLICY, policy_runs)]
        for policy, into in runs if i % 2 == 0 else runs[::-1]:
            into.append(trio.run(calls_per_second, policy, args.calls))

    print(f"Python {platform.python_version()}, {platform.machine()}")
    print()
    print("| Link.validate, µs per message | no policy | policy (3 rules, 4 relaxations) |")
    print("| --- | ---: | ---: |")
    for name, a, b in rows:
        print(f"| {name} | {a:.2f} | {b:.2f} |")
    print()
    print(
        f"| strict CSMS, valid MeterValues, calls/s (median of {args.runs}) | no policy | policy |"
    )
    print("| --- | ---: | ---: |")
    print(
        f"| sequential calls over an in-memory pair | {statistics.median(none_runs):,.0f} "
        f"| {statistics.median(policy_runs):,.0f} |"
    )


if __name__ == "__main__":
    main()
