"""The ``ocpp-trio`` command (also ``python -m ocpp_trio.cli``).

``ocpp-trio demo`` starts a small CSMS on a free loopback port and a simulated
OCPP 1.6 charging station against it, in one process, and prints every frame
both ends exchange: a boot, heartbeats, a status, a charging session with
meter values, and a call from the CSMS to the station.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio

from .demo import run_demo


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="ocpp-trio", description="OCPP-J tools built on ocpp_trio"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a demo CSMS and a simulated station against it")
    demo.add_argument(
        "--protocol",
        choices=["ocpp1.6", "ocpp2.0.1"],
        default="ocpp1.6",
        help="the OCPP version the station speaks (default ocpp1.6)",
    )
    demo.add_argument(
        "--meter-values", type=int, default=3, help="meter values to send (default 3)"
    )
    args = parser.parse_args(argv)
    assert args.command == "demo"
    return trio.run(run_demo, args.protocol, args.meter_values)


if __name__ == "__main__":
    sys.exit(main())
