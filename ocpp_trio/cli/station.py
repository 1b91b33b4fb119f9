"""``ocpp-trio station``: simulated charging stations against a CSMS.

``station ENDPOINT IDENTITY --count N`` runs N stations (``IDENTITY-1`` ..
``IDENTITY-N`` when N > 1) concurrently, each running the scenario of
:mod:`._sim` and answering the CSMS's calls.  It prints a milestone line per
station event (``-v`` adds a line per message, ``-vv`` the payloads) and a
summary: stations completed and failed with the reason, calls sent and
failed, the CSMS's calls answered, and the latency percentiles of the calls'
round trips (from the frame written to the answer read).

Ctrl-C (SIGINT) or SIGTERM is the normal way to end a long run (``--duration
600 --repeat``): the stations stop their scenario, stop the transaction in
progress (a session cut short), close, and the summary reports what was
done and what was cut short; a second Ctrl-C stops at once.

Exit status: 0 when every station completed its scenario, 1 otherwise (or
when the endpoint cannot be reached at all: one line naming the cause), 2
for a usage error, 130 when stopped by Ctrl-C or SIGTERM (after the summary,
and one line ``ocpp-trio station: interrupted`` on stderr).
"""

from __future__ import annotations

import argparse
import math
import signal
import ssl
import sys
import time
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any

import trio

from .._core.validation import SUPPORTED_PROTOCOLS
from ..security import SecurityProfile, client_ssl_context
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CLIError,
    LatencyStats,
    add_frame_log_argument,
    check_tls_files,
    format_percentiles,
    frame_log_of,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    read_text,
    root_cause,
    security_profile,
    tls_error,
    usage_error,
    utc_now,
)
from ._output import MessageLog, Printer
from ._sim import SimulatedStation, StationOptions
from ._sim_v2x import Station2x
from ._sim_v16 import Station16


def make_station(
    endpoint: str,
    identity: str,
    options: StationOptions,
    *,
    log: MessageLog,
    printer: Printer | None,
) -> SimulatedStation:
    """A simulated station of the right version."""
    cls = Station16 if options.protocol == "ocpp1.6" else Station2x
    return cls(endpoint, identity, options, log=log, printer=printer)


class Fleet:
    """Simulated stations run together, with one message log and one summary."""

    def __init__(self, stations: Sequence[SimulatedStation], log: MessageLog) -> None:
        self.stations = list(stations)
        self.log = log
        self.elapsed = 0.0
        self._stopping = False
        self.stopped_by = ""

    async def run(self, duration: float | None = None, *, stagger: float = 0.0) -> None:
        """Run every station until it is done; ``duration`` bounds the whole run."""
        started = time.perf_counter()
        deadline = math.inf if duration is None else trio.current_time() + duration
        try:
            async with trio.open_nursery() as nursery:
                for i, station in enumerate(self.stations):
                    nursery.start_soon(partial(station.run, deadline, start_delay=i * stagger))
        finally:
            self.elapsed = time.perf_counter() - started

    def stop(self, why: str = "Ctrl-C") -> None:
        """End the run early (the stations wind down); ``why`` is for the summary."""
        self._stopping = True
        self.stopped_by = why
        for station in self.stations:
            station.stop()

    @property
    def interrupted(self) -> bool:
        """Whether :meth:`stop` ended the run early (Ctrl-C)."""
        return self._stopping

    @property
    def ok(self) -> bool:
        """Whether every station completed its scenario."""
        return all(s.completed and s.failure is None for s in self.stations)

    def latency(self) -> LatencyStats:
        """Round trips of every station's calls."""
        return self.log.call_latency

    def summary(self) -> dict[str, Any]:
        """The facts of the summary, JSON-ready."""
        failures: Counter[str] = Counter()
        for s in self.stations:
            failures.update(s.failures)
        return {
            "stations": len(self.stations),
            "completed": sum(s.completed for s in self.stations),
            "failed": [
                {"identity": s.identity, "reason": s.failure}
                for s in self.stations
                if s.failure is not None
            ],
            "interrupted": self.interrupted,
            "stopped": [
                {"identity": s.identity, "step": s.stopped_at}
                for s in self.stations
                if s.stopped_at is not None
            ],
            "sessions": sum(s.sessions for s in self.stations),
            "sessions_cut_short": sum(s.cut_short for s in self.stations),
            "calls": sum(s.calls for s in self.stations),
            "failed_calls": sum(s.failed_calls for s in self.stations),
            "call_failures": dict(failures),
            "answered": sum(s.answered for s in self.stations),
            "messages": self.log.total,
            "latency_ms": {
                k: round(v * 1000, 3) for k, v in self.log.call_latency.percentiles().items()
            },
            "duration_s": round(self.elapsed, 3),
        }

    def summary_lines(self, title: str) -> list[str]:
        """The summary as text lines."""
        s = self.summary()
        failed = len(s["failed"])
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(s["call_failures"].items()))
        stopped = len(s["stopped"])
        outcome = f"{s['completed']} completed, {failed} failed"
        if self.interrupted:
            title += f", stopped by {self.stopped_by}"
            if stopped:
                steps = Counter(str(x["step"]) for x in s["stopped"])
                where = ", ".join(f"{n} in {step}" for step, n in sorted(steps.items()))
                outcome += f", {stopped} stopped before completing ({where})"
        lines = [
            f"{title}: {s['stations']} stations in {self.elapsed:.2f} s: {outcome}",
            f"  calls     {s['calls']} sent, {s['failed_calls']} failed"
            + (f" ({kinds})" if kinds else "")
            + f"; {s['answered']} CSMS calls answered; "
            + sessions_text(s["sessions"], s["sessions_cut_short"], self.stopped_by or None),
            f"  latency   {format_percentiles(self.log.call_latency.percentiles())}"
            f" ({len(self.log.call_latency)} round trips)",
        ]
        lines += [f"  failed    {f['identity']}: {f['reason']}" for f in s["failed"]]
        return lines


def sessions_text(sessions: int, cut_short: int, stopped_by: str | None) -> str:
    """``"5 charging sessions (2 cut short by Ctrl-C)"``: the transactions stopped, as a CSMS counts them.

    ``stopped_by``: what ended the run early (``"Ctrl-C"``), None when it ran to its end.
    """
    text = f"{sessions} charging session{'' if sessions == 1 else 's'}"
    if cut_short:
        text += f" ({cut_short} cut short by {stopped_by or 'the end of the run'})"
    return text


# --- the command -------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocpp-trio station``."""
    parser.add_argument("endpoint", metavar="ENDPOINT", help="the CSMS URL, ws://... or wss://...")
    parser.add_argument(
        "identity", metavar="IDENTITY", help="station identity (IDENTITY-1..N with --count N)"
    )
    parser.add_argument(
        "--protocol",
        choices=SUPPORTED_PROTOCOLS,
        default="ocpp1.6",
        help="the OCPP version to speak (default ocpp1.6)",
    )
    parser.add_argument(
        "--scenario",
        choices=["boot", "charge"],
        default="boot",
        help="boot: boot, status, heartbeat; charge: boot and a charging session (default boot)",
    )
    parser.add_argument(
        "--count", type=positive_int, default=1, metavar="N", help="stations (default 1)"
    )
    parser.add_argument(
        "--duration",
        type=positive_float,
        metavar="S",
        help="run S seconds: the scenario, then heartbeats and answering the CSMS; "
        "without it, exit once the scenario completed",
    )
    parser.add_argument(
        "--repeat", action="store_true", help="repeat the charging session until --duration ends"
    )
    parser.add_argument(
        "--meter-values",
        type=non_negative_int,
        default=3,
        metavar="N",
        help="samples per session (default 3)",
    )
    parser.add_argument(
        "--meter-interval",
        type=non_negative_float,
        default=1.0,
        metavar="S",
        help="seconds between samples (default 1)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=non_negative_float,
        metavar="S",
        help="heartbeat period (default: the interval the CSMS gives at boot)",
    )
    parser.add_argument(
        "--id-tag", default="TAG-0001", help="the id tag presented (default TAG-0001)"
    )
    parser.add_argument("--strict", action="store_true", help="validate payloads both ways")
    parser.add_argument(
        "--no-reconnect", action="store_true", help="do not reconnect when the connection drops"
    )
    parser.add_argument(
        "--outbox",
        metavar="FILE",
        help="queue transaction messages in a durable outbox (a SQLite file, shared by the "
        "stations; each keeps its own queue): what is not delivered survives outages and restarts",
    )
    add_frame_log_argument(parser)
    parser.add_argument(
        "--call-timeout", type=positive_float, default=30.0, metavar="S", help="default 30"
    )
    parser.add_argument(
        "--connect-timeout", type=positive_float, default=10.0, metavar="S", help="default 10"
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="a line per message (-vv: with payloads)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    sec = parser.add_argument_group("security")
    sec.add_argument(
        "--security-profile",
        type=security_profile,
        metavar="N",
        help="0-3 (default: 3 with --cert, else 1/2 with a password on ws/wss, else 0)",
    )
    sec.add_argument("--password", help="Basic Auth password (profiles 1-2)")
    sec.add_argument("--password-file", metavar="FILE", help="read the password from FILE")
    sec.add_argument(
        "--ca", metavar="FILE", help="CA of the CSMS certificate, PEM (default: system CAs)"
    )
    sec.add_argument("--cert", metavar="FILE", help="station certificate chain, PEM (profile 3)")
    sec.add_argument("--key", metavar="FILE", help="its private key, PEM (if not in --cert)")


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """Check the endpoint and security options; return ``open_ocpp_client`` keyword arguments."""
    endpoint: str = args.endpoint
    scheme = endpoint.partition("://")[0].lower() if "://" in endpoint else ""
    if scheme not in ("ws", "wss"):
        raise usage_error(f"ENDPOINT must be a ws:// or wss:// URL, got {endpoint!r}")
    tls = scheme == "wss"
    if args.password is not None and args.password_file:
        raise usage_error("give --password or --password-file, not both")
    password: str | None = args.password
    if args.password_file:
        lines = read_text(args.password_file, "password file").splitlines()
        password = lines[0].strip() if lines else ""
        if not password:
            raise usage_error(f"password file {args.password_file} is empty")
    profile: SecurityProfile | None = args.security_profile
    if profile is None:
        if args.cert:
            profile = SecurityProfile.TLS_CLIENT_CERT
        elif password is not None:
            profile = SecurityProfile.TLS_BASIC_AUTH if tls else SecurityProfile.BASIC_AUTH
        else:
            profile = SecurityProfile.NONE
    n = int(profile)
    if profile.requires_tls and not tls:
        raise usage_error(f"--security-profile {n} needs a wss:// endpoint")
    if profile.requires_password and password is None:
        raise usage_error(f"--security-profile {n} needs --password or --password-file")
    if not profile.requires_password and password is not None:
        raise usage_error("a password is only used with --security-profile 1 or 2")
    if profile.requires_client_cert and not args.cert:
        raise usage_error("--security-profile 3 needs --cert (and --key)")
    if not tls and (args.ca or args.cert or args.key):
        raise usage_error("--ca, --cert and --key need a wss:// endpoint")
    check_tls_files(ca=args.ca, cert=args.cert, key=args.key)
    options: dict[str, Any] = {
        "security_profile": profile,
        "reconnect": not args.no_reconnect,
        "call_timeout": args.call_timeout,
        "connect_timeout": args.connect_timeout,
        "strict_mode": args.strict,
    }
    if password is not None:
        options["password"] = password
    if args.outbox:
        # a path: each station opens its own Outbox on the file, keyed by its identity
        options["outbox"] = args.outbox
    frame_log = frame_log_of(args)  # one for every station: a file each, by identity
    if frame_log is not None:
        options["frame_log"] = frame_log
    if tls:
        ctx_profile = profile if profile.requires_tls else SecurityProfile.TLS_BASIC_AUTH
        try:
            ctx: ssl.SSLContext = client_ssl_context(
                cafile=args.ca, certfile=args.cert, keyfile=args.key, profile=ctx_profile
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise tls_error(exc, "the TLS files") from None
        options["ssl_context"] = ctx
    return options


def identities(base: str, count: int) -> list[str]:
    """``[base]`` or ``base-1`` .. ``base-count``."""
    if not base or "/" in base:
        raise usage_error(f"IDENTITY must be non-empty and without '/', got {base!r}")
    if count == 1:
        return [base]
    return [f"{base}-{i}" for i in range(1, count + 1)]


async def run(args: argparse.Namespace) -> int:
    """Run ``ocpp-trio station``; return the exit status."""
    if args.repeat and args.duration is None:
        raise usage_error("--repeat needs --duration")
    if args.repeat and args.scenario != "charge":
        raise usage_error("--repeat needs --scenario charge")
    options = StationOptions(
        protocol=args.protocol,
        scenario=args.scenario,
        meter_values=args.meter_values,
        meter_interval=args.meter_interval,
        heartbeat_interval=args.heartbeat_interval,
        repeat=args.repeat,
        id_tag=args.id_tag,
        client_options=client_options(args),
    )
    names = identities(args.identity, args.count)
    printer = Printer(json_mode=args.json, verbose=args.verbose >= 2, quiet=args.quiet)
    log = MessageLog(printer, frames=args.verbose >= 1 and not args.quiet)
    endpoint = args.endpoint.rstrip("/")
    fleet = Fleet(
        [make_station(endpoint, name, options, log=log, printer=printer) for name in names], log
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_signals, fleet, nursery.cancel_scope)
        await fleet.run(args.duration)
        nursery.cancel_scope.cancel()
    if all(s.step == "connect" and s.error is not None for s in fleet.stations):
        causes = {root_cause(s.error) for s in fleet.stations if s.error is not None}
        if len(causes) == 1:
            raise CLIError(f"cannot connect to {endpoint}: {causes.pop()}")
    if args.json:
        printer.record({"time": utc_now(), "event": "summary", **fleet.summary()})
    else:
        title = f"summary ({args.protocol}, scenario {args.scenario})"
        for line in fleet.summary_lines(title):
            printer.write(line)
    if fleet.interrupted:
        print("ocpp-trio station: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if fleet.ok else EXIT_FAILED


async def _signals(fleet: Fleet, scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for signum in signals:
            count += 1
            if count == 1:
                fleet.stop("Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name)
            else:
                scope.cancel()
