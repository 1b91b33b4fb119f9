"""How much does schema validation cost at start-up and per message?

Compares three ways to get compiled validators for the OCA schemas:

* lazy:  ``get_validator(p)`` lists the folder; each schema is read and
  compiled by fastjsonschema on its first payload, then cached (what ships);
* eager: the same, then ``Validator.precompile()`` compiles every schema;
* aot:   ``fastjsonschema.compile_to_code`` run ahead of time, one module per
  schema, imported at run time.

"import ms" is the import of the validation module (aot: of fastjsonschema
alone) in a fresh interpreter with warm ``.pyc`` files; "build ms" creates the
validator (eager: and compiles every schema of the protocol); "first ms" is the
first validation (lazy: reads and compiles that one schema); "steady us" is the
best per-call time over 20,000 calls of ``Validator.validate``.

Each cold figure is measured in a fresh interpreter (median of several runs).
Run: ``.venv/bin/python benchmarks/validation_startup.py``.  Prints a table;
asserts nothing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5

MESSAGES = {
    ("ocpp1.6", "BootNotification"): {
        "chargePointVendor": "VendorX",
        "chargePointModel": "ModelY",
        "chargePointSerialNumber": "SN-0001",
        "firmwareVersion": "1.2.3",
    },
    ("ocpp1.6", "MeterValues"): {
        "connectorId": 1,
        "transactionId": 42,
        "meterValue": [
            {
                "timestamp": "2024-05-01T12:00:00Z",
                "sampledValue": [
                    {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                    {"value": "230", "measurand": "Voltage", "phase": "L1", "unit": "V"},
                ],
            }
        ],
    },
    ("ocpp2.0.1", "TransactionEvent"): {
        "eventType": "Updated",
        "timestamp": "2024-05-01T12:00:00.123Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 7,
        "transactionInfo": {"transactionId": "tx-0001", "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": "2024-05-01T12:00:00Z",
                "sampledValue": [
                    {"value": 1234.5, "measurand": "Energy.Active.Import.Register"},
                    {"value": 7200.0, "measurand": "Power.Active.Import"},
                ],
            }
        ],
    },
}

CHILD = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {root!r})
    mode, protocol, action = sys.argv[1], sys.argv[2], sys.argv[3]
    payload = json.loads(sys.argv[4])
    out = {{}}
    t0 = time.perf_counter()
    if mode == "aot":
        import importlib
        sys.path.insert(0, {aot!r})
        import fastjsonschema  # the generated code imports it
        out["import_ms"] = (time.perf_counter() - t0) * 1e3
        t1 = time.perf_counter()
        fn = importlib.import_module(sys.argv[5]).validate
        out["build_ms"] = (time.perf_counter() - t1) * 1e3
        t2 = time.perf_counter()
        fn(payload)
        out["first_ms"] = (time.perf_counter() - t2) * 1e3
        t3 = time.perf_counter()
        for name in sys.argv[6].split(","):
            importlib.import_module(name)
        out["all_ms"] = (time.perf_counter() - t3) * 1e3
    else:
        from ocpp_trio._core import validation
        out["import_ms"] = (time.perf_counter() - t0) * 1e3
        t1 = time.perf_counter()
        v = validation.get_validator(protocol)
        if mode == "eager":
            v.precompile()
        out["build_ms"] = (time.perf_counter() - t1) * 1e3
        t2 = time.perf_counter()
        v.validate(action, "request", payload)
        out["first_ms"] = (time.perf_counter() - t2) * 1e3
    print(json.dumps(out))
    """
)


def _child(aot_dir: Path, mode: str, protocol: str, action: str, payload: object, *extra: str):
    code = CHILD.format(root=str(ROOT), aot=str(aot_dir))
    # Byte-code caches go to a private prefix (never into the repository); the
    # first, discarded run writes them, as an installed wheel would have them.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(aot_dir / "pycache")
    results = []
    for _ in range(RUNS + 1):
        proc = subprocess.run(
            [sys.executable, "-c", code, mode, protocol, action, json.dumps(payload), *extra],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        results.append(json.loads(proc.stdout))
    del results[0]
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def _module_name(protocol: str, action: str, direction: str) -> str:
    return f"aot_{protocol.replace('.', '_')}_{action}_{direction}"


def _generate_aot(aot_dir: Path, protocol: str) -> tuple[list[str], float]:
    import time

    import fastjsonschema

    from ocpp_trio._core import validation

    names = []
    t0 = time.perf_counter()
    for (action, direction), schema in validation.load_schemas(protocol).items():
        code = fastjsonschema.compile_to_code(
            schema,
            formats=dict(validation._FORMATS),
            use_default=False,
            detailed_exceptions=True,
        )
        name = _module_name(protocol, action, direction)
        (aot_dir / f"{name}.py").write_text(code, encoding="utf-8")
        names.append(name)
    return names, time.perf_counter() - t0


def _steady_us(protocol: str, action: str, payload: object) -> float:
    from ocpp_trio._core import validation

    v = validation.get_validator(protocol)
    v.validate(action, "request", payload)
    number = 20_000
    best = min(
        timeit.repeat(lambda: v.validate(action, "request", payload), number=number, repeat=5)
    )
    return best / number * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        aot_dir = Path(tmp)
        generated: dict[str, list[str]] = {}
        gen_s = {}
        for protocol in ("ocpp1.6", "ocpp2.0.1"):
            generated[protocol], gen_s[protocol] = _generate_aot(aot_dir, protocol)
        size = sum(p.stat().st_size for p in aot_dir.glob("*.py"))

        print(f"python {sys.version.split()[0]}, median of {RUNS} fresh interpreters (warm .pyc)\n")
        header = (
            f"{'message':<30} {'mode':<6} {'import ms':>9} {'build ms':>9} "
            f"{'first ms':>9} {'steady us':>9}"
        )
        print(header)
        print("-" * len(header))
        for (protocol, action), payload in MESSAGES.items():
            steady = _steady_us(protocol, action, payload)
            label = f"{protocol} {action}"
            for mode in ("lazy", "eager"):
                r = _child(aot_dir, mode, protocol, action, payload)
                print(
                    f"{label:<30} {mode:<6} {r['import_ms']:9.1f} {r['build_ms']:9.1f} "
                    f"{r['first_ms']:9.2f} {steady:9.2f}"
                )
            r = _child(
                aot_dir,
                "aot",
                protocol,
                action,
                payload,
                _module_name(protocol, action, "request"),
                ",".join(generated[protocol]),
            )
            print(
                f"{label:<30} {'aot':<6} {r['import_ms']:9.1f} {r['build_ms']:9.1f} "
                f"{r['first_ms']:9.2f} {'(same)':>9}   import all {r['all_ms']:.0f} ms"
            )
        print()
        for protocol, seconds in gen_s.items():
            print(f"aot: generating {protocol} took {seconds * 1e3:.0f} ms")
        print(f"aot: generated code for 1.6 + 2.0.1 is {size / 1e6:.1f} MB of Python source")


if __name__ == "__main__":
    main()
