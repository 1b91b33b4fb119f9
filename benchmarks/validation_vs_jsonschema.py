"""(e) Validation: µs per validation, ours (fastjsonschema, compiled) vs jsonschema.

jsonschema is what mobilityhouse ``ocpp`` validates with (a Draft4/Draft6
validator built per message).  We give jsonschema its best case: the validator
object built once and reused, with a format checker as ours checks formats.
Prints a Markdown table; asserts nothing.

    python benchmarks/validation_vs_jsonschema.py [--number 5000]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validation_startup import MESSAGES

from ocpp_trio._core.validation import get_validator, load_schemas


def reference(protocol: str, action: str) -> Any:
    schema = load_schemas(protocol, raw=True)[(action, "request")]
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=jsonschema.FormatChecker())


def best_us(fn: Any, payload: Any, number: int) -> float:
    runs = timeit.repeat(lambda: fn(payload), number=number, repeat=5)
    return 1e6 * min(runs) / number


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=5000)
    opts = parser.parse_args()
    print("| message | ocpp_trio µs | jsonschema µs | ratio |")
    print("| --- | --- | --- | --- |")
    for (protocol, action), payload in MESSAGES.items():
        ours = get_validator(protocol)
        ours.validate(action, "request", payload)  # compile outside the timing
        ref = reference(protocol, action)
        ref.validate(payload)
        mine = best_us(partial(ours.validate, action, "request"), payload, opts.number)
        theirs = best_us(ref.validate, payload, max(200, opts.number // 20))
        print(f"| {protocol} {action} | {mine:.1f} | {theirs:.1f} | {theirs / mine:.0f}x faster |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
