"""The ``ocpp-trio`` command (also ``python -m ocpp_trio``).

Subcommands:

- ``serve``: a small CSMS (:mod:`.serve`);
- ``station``: simulated charging stations (:mod:`.station`);
- ``validate``: check OCPP-J frames against the schemas (:mod:`.validate`);
- ``demo``: both ends in one process, shown live (:mod:`.demo`).

A user mistake (bad arguments, unreadable files, a port in use, an
unreachable endpoint) ends with one line on stderr, ``ocpp-trio CMD: error:
CAUSE``, and a non-zero status, never a traceback.  Exit statuses: 0 success,
1 the run failed (scenario not completed, invalid frames, a network failure),
2 a usage error, 130 stopped by Ctrl-C: one line ``ocpp-trio CMD:
interrupted`` on stderr (``station`` and ``serve`` print their summary
first; ``serve`` stops gracefully on the first Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any, NoReturn

import trio

from .._core.validation import SUPPORTED_PROTOCOLS
from .._version import __version__
from . import serve, station, validate
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, CLIError, positive_float, positive_int
from .demo import run_demo

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (the cause and where to look)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ocpp-trio``."""
    parser = _Parser(prog="ocpp-trio", description="OCPP-J tools built on ocpp_trio")
    parser.add_argument("--version", action="version", version=f"ocpp-trio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "serve",
        help="run a small CSMS",
        description="A small CSMS: accepts stations, answers them, logs every message, "
        "keeps its state in SQLite. Its first line is 'listening on URL'. It binds "
        "127.0.0.1 (this machine only) unless --host says otherwise. Ctrl-C or SIGTERM "
        "stops it gracefully (exit status 0).",
    )
    serve.add_arguments(p)

    p = sub.add_parser(
        "station",
        help="simulate charging stations against a CSMS",
        description="Simulated charging stations running a scenario and answering the CSMS. "
        "Ctrl-C ends a run early: the transactions in progress are stopped, the summary "
        "says what was completed and what was cut short, and the exit status is 130.",
    )
    station.add_arguments(p)

    p = sub.add_parser(
        "validate",
        help="check OCPP-J frames against the schemas",
        description="Check OCPP-J frames (one per line, or a JSON array) against the framing "
        "rules and the OCA schemas.",
    )
    validate.add_arguments(p)

    p = sub.add_parser(
        "demo",
        help="a CSMS and simulated stations in one process, shown live",
        description="Start the CSMS and simulated stations on a free loopback port and show "
        "what happens.",
    )
    p.add_argument("--stations", type=positive_int, default=10, metavar="N", help="default 10")
    p.add_argument(
        "--duration", type=positive_float, default=10.0, metavar="S", help="seconds (default 10)"
    )
    p.add_argument(
        "--protocol",
        choices=["mixed", *SUPPORTED_PROTOCOLS],
        default="mixed",
        help="the stations' OCPP version (default mixed: each in turn)",
    )
    p.add_argument(
        "--plain", action="store_true", help="plain lines even on a terminal (no live view)"
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    match args.command:
        case "serve":
            return trio.run(serve.run, args)
        case "station":
            return trio.run(station.run, args)
        case "validate":
            return validate.run(args)
        case "demo":
            live = False if args.plain else None
            return trio.run(
                partial(
                    run_demo,
                    stations=args.stations,
                    duration=args.duration,
                    protocol=args.protocol,
                    live=live,
                )
            )
    raise AssertionError(args.command)  # pragma: no cover - argparse checked it


def _user_error(exc: BaseException) -> CLIError | None:
    """The CLIError behind ``exc`` (alone in exception groups), if that is what it is."""
    if isinstance(exc, CLIError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if not isinstance(e, trio.Cancelled)]
        if len(leaves) == 1:
            return _user_error(leaves[0])
    return None


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt, alone or with cancellations, in groups."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        interrupts, rest = exc.split(KeyboardInterrupt)
        if interrupts is None:
            return False
        return rest is None or rest.split(trio.Cancelled)[1] is None
    return False


class _OneLineFormatter(logging.Formatter):
    """Log records as one line: an exception shows as its last line, not a traceback."""

    def formatException(self, ei: Any) -> str:
        exc = ei[1]
        return f"  ({type(exc).__name__}: {exc})" if exc is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        return super().format(record).replace("\n", " ")


def _log_to_stderr() -> logging.Handler:
    """Send the library's warnings and errors to stderr, one line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("ocpp-trio: %(levelname)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    logging.getLogger("ocpp_trio").addHandler(handler)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    handler = _log_to_stderr()
    try:
        return _main(args)
    finally:
        logging.getLogger("ocpp_trio").removeHandler(handler)


def _main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"ocpp-trio {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout went away (e.g. `| head`): stop quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except BaseException as exc:
        if _interrupted(exc):  # Ctrl-C, delivered inside the tasks' exception groups
            print(f"ocpp-trio {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        error = _user_error(exc)
        if error is None:
            raise
        print(f"ocpp-trio {args.command}: error: {error}", file=sys.stderr)
        return error.status
