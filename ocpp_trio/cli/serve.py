"""``ocpp-trio serve``: a small CSMS to point a charging station at.

It accepts stations on OCPP 1.6, 2.0.1 and 2.1, answers what a station sends
on its own (BootNotification, Heartbeat, StatusNotification, Authorize,
MeterValues, Start/StopTransaction on 1.6, TransactionEvent and NotifyReport
on 2.x, DataTransfer and a few notifications) with sensible replies, asks
each station for its configuration once it has booted, prints one line per
message and keeps what it learns in SQLite (:mod:`._store`); the behaviour
is :class:`~._csms.CSMSApp`, this module the command around it.

Its first line on stdout is ``listening on ws://HOST:PORT/ocpp`` (the actual
port when ``--port 0``), so scripts can start it and read where to connect.
It binds 127.0.0.1 unless ``--host`` says otherwise, and says so on the next
line: a charger on the network needs ``--host 0.0.0.0``.  A station refused
at its handshake (an unknown identity or a wrong password: 401, a bad
identity: 400, TLS or profile: 403...) is a line with the status and the
reason (the ``handshake_rejected`` server event), never with the password.
SIGINT and SIGTERM stop it as :func:`~ocpp_trio.run_server` stops a library
user's server: no new stations, the calls in flight in both directions finish
(each within ``call_timeout``), every station is closed with 1001 (a second
signal closes them at once); then the database is committed, a summary
printed, and the exit status is 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import ssl
from functools import partial
from typing import Any

import trio

from .._core.policy import RELAXATIONS, ValidationPolicy
from .._core.validation import get_validator
from .._server.signals import serve_until_signal
from ..observability.ops import serve_ops
from ..observability.prometheus import PrometheusMetrics
from ..security import (
    SecurityProfile,
    server_ssl_context,
)
from ..server import (
    DEFAULT_PROTOCOLS,
    AuthAccept,
    AuthReject,
    HandshakeRejectedEvent,
    HandshakeRequest,
    OCPPServer,
)
from ._common import (
    CLIError,
    PasswordBook,
    add_frame_log_argument,
    check_tls_files,
    describe_error,
    format_percentiles,
    frame_log_of,
    non_negative_int,
    port_number,
    protocol_list,
    read_text,
    security_profile,
    tls_error,
    usage_error,
    utc_now,
)
from ._csms import CSMSApp
from ._output import MessageLog, Printer
from ._store import Store

__all__ = ["CSMSApp", "add_arguments", "run"]

# --- the command -------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocpp-trio serve``."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; a charger on the "
        "network needs --host 0.0.0.0 or this machine's address)",
    )
    parser.add_argument(
        "--port", type=port_number, default=9000, help="TCP port (default 9000; 0: any free port)"
    )
    parser.add_argument(
        "--protocols",
        type=protocol_list,
        default=list(DEFAULT_PROTOCOLS),
        metavar="LIST",
        help="subprotocols to accept, in order of preference (default ocpp2.1,ocpp2.0.1,ocpp1.6)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="validate every payload against the OCA schemas"
    )
    parser.add_argument(
        "--ocpp16-schemas",
        choices=["errata", "pre-errata"],
        default="errata",
        help="with --strict: the OCPP 1.6 schemas to validate against: the OCA's 2019-12 set "
        "(default) or the earlier files older stations were built on",
    )
    parser.add_argument(
        "--relax",
        type=relaxation_list,
        default=(),
        metavar="LIST",
        help="with --strict: repair what stations send: " + ",".join(sorted(RELAXATIONS)),
    )
    parser.add_argument(
        "--report-invalid",
        action="store_true",
        help="with --strict: let a payload that breaks its schema through and report it",
    )
    parser.add_argument(
        "--db", default=":memory:", help="SQLite file for the state (default: in memory)"
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=non_negative_int,
        default=300,
        metavar="S",
        help="heartbeat interval given to booting stations (default 300)",
    )
    parser.add_argument(
        "--inventory",
        choices=["none", "basic", "full"],
        default="basic",
        help="what to ask a booted station: basic (a few settings, default), "
        "full (every setting; GetBaseReport on 2.x) or none",
    )
    ops = parser.add_argument_group("operations")
    ops.add_argument(
        "--ops-port",
        type=port_number,
        default=None,
        metavar="PORT",
        help="serve /health, /ready and /metrics (Prometheus) on this HTTP port "
        "(0: any free port); default: none",
    )
    ops.add_argument(
        "--ops-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address for --ops-port (default 127.0.0.1: this machine only)",
    )
    add_frame_log_argument(ops)
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("-v", "--verbose", action="store_true", help="print payloads too")
    parser.add_argument("-q", "--quiet", action="store_true", help="print no message lines")
    sec = parser.add_argument_group("security")
    sec.add_argument(
        "--security-profile",
        type=security_profile,
        default=SecurityProfile.NONE,
        metavar="N",
        help="0 plain (default), 1 Basic Auth, 2 TLS + Basic Auth, 3 mutual TLS",
    )
    sec.add_argument("--cert", metavar="FILE", help="server certificate chain, PEM (profiles 2-3)")
    sec.add_argument("--key", metavar="FILE", help="its private key, PEM (if not in --cert)")
    sec.add_argument("--ca", metavar="FILE", help="CA of the station certificates, PEM (profile 3)")
    sec.add_argument(
        "--password-file",
        metavar="FILE",
        help="station passwords, one IDENTITY:PASSWORD (or *:PASSWORD) a line (profiles 1-2)",
    )


def relaxation_list(text: str) -> tuple[str, ...]:
    """argparse type: a comma-separated list of validation relaxations."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in RELAXATIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown relaxation {unknown[0]!r}; choose from {', '.join(sorted(RELAXATIONS))}"
            if unknown
            else "give at least one relaxation"
        )
    return names


def _validation(args: argparse.Namespace) -> dict[str, Any]:
    """The server's strict-mode keyword arguments."""
    if not args.strict:
        for flag, used in (
            ("--ocpp16-schemas", args.ocpp16_schemas != "errata"),
            ("--relax", bool(args.relax)),
            ("--report-invalid", args.report_invalid),
        ):
            if used:
                raise usage_error(f"{flag} is only used with --strict")
        return {"strict_mode": False}
    options: dict[str, Any] = {"strict_mode": True}
    if args.ocpp16_schemas != "errata":
        options["strict_mode_validators"] = [get_validator("ocpp1.6", variant=args.ocpp16_schemas)]
    if args.relax or args.report_invalid:
        options["validation_policy"] = ValidationPolicy(
            default="report" if args.report_invalid else "reject", relaxations=args.relax
        )
    return options


def _security(args: argparse.Namespace) -> dict[str, Any]:
    """Check the security options against the profile; return the server's keyword arguments."""
    profile: SecurityProfile = args.security_profile
    n = int(profile)
    if profile.requires_password and not args.password_file:
        raise usage_error(f"--security-profile {n} needs --password-file")
    if not profile.requires_password and args.password_file:
        raise usage_error("--password-file is only used with --security-profile 1 or 2")
    if profile.requires_tls and not args.cert:
        raise usage_error(f"--security-profile {n} needs --cert (and --key)")
    if not profile.requires_tls and (args.cert or args.key):
        raise usage_error("--cert and --key are only used with --security-profile 2 or 3")
    if profile.requires_client_cert and not args.ca:
        raise usage_error("--security-profile 3 needs --ca, the CA of the station certificates")
    if args.ca and not profile.requires_tls:
        raise usage_error("--ca is only used with --security-profile 2 or 3")
    check_tls_files(ca=args.ca, cert=args.cert, key=args.key)

    ssl_context: ssl.SSLContext | None = None
    if profile.requires_tls:
        try:
            ssl_context = server_ssl_context(args.cert, args.key, cafile=args.ca, profile=profile)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise tls_error(exc, "the server certificate") from None
    book = (
        PasswordBook.parse(read_text(args.password_file, "password file"))
        if args.password_file
        else None
    )

    def auth(req: HandshakeRequest) -> AuthAccept | AuthReject:
        # With profile 3 the server itself refuses (401) a certificate that
        # does not name the station (certificate_identity_check).
        if book is not None and not book.check(req.identity, req.password):
            if req.password is None:
                why = "no password"
            elif book.knows(req.identity):
                why = "wrong password"
            else:
                why = "unknown station (not in the password file)"
            return AuthReject(401, reason=why)
        return AuthAccept()

    return {
        "security_profile": profile,
        "ssl_context": ssl_context,
        "auth": auth if profile is not SecurityProfile.NONE else None,
    }


def _listen_error(exc: OSError, host: str, port: int) -> CLIError:
    return CLIError(f"cannot listen on {host}:{port}: {exc.strerror or describe_error(exc)}")


def _first_leaf(group: BaseExceptionGroup[OSError]) -> OSError:
    first: OSError | BaseExceptionGroup[OSError] = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


async def run(args: argparse.Namespace) -> int:
    """Run ``ocpp-trio serve`` until SIGINT/SIGTERM; return the exit status."""
    security = _security(args)
    validation = _validation(args)
    metrics = _metrics(args)
    store = Store(args.db)
    printer = Printer(json_mode=args.json, verbose=args.verbose, quiet=args.quiet)
    log = MessageLog(printer, frames=not args.quiet)
    app = CSMSApp(
        store,
        log,
        printer=printer,
        heartbeat_interval=args.heartbeat_interval,
        inventory=args.inventory,
    )

    def stopping(signum: int) -> None:
        if not args.json:
            printer.write(f"stopping ({signal.Signals(signum).name})")

    try:
        server = OCPPServer(
            app.on_station,
            protocols=args.protocols,
            telemetry=metrics.telemetry() if metrics is not None else None,
            frame_log=frame_log_of(args),
            **validation,
            **security,
        )
        server.on("handshake_rejected", partial(_report_rejection, printer))
        async with trio.open_nursery() as nursery:

            async def serve(task_status: trio.TaskStatus[OCPPServer]) -> None:
                # As for library users: the calls in flight finish (each within
                # call_timeout), the stations get 1001, a second signal cuts it short.
                await serve_until_signal(
                    server, args.port, args.host, on_signal=stopping, task_status=task_status
                )
                nursery.cancel_scope.cancel()

            try:
                await nursery.start(serve)
            except* OSError as group:
                raise _listen_error(_first_leaf(group), args.host, args.port) from None
            ops_url = None
            if metrics is not None:
                try:
                    ops_port = await nursery.start(
                        partial(serve_ops, server, metrics, args.ops_port, args.ops_host)
                    )
                except* OSError as group:
                    raise _listen_error(_first_leaf(group), args.ops_host, args.ops_port) from None
                ops_url = f"http://{_bracketed(args.ops_host)}:{ops_port}"
            scheme = "wss" if security["ssl_context"] is not None else "ws"
            url = f"{scheme}://{_bracketed(args.host)}:{server.port}/ocpp"
            local = _loopback(args.host)
            if args.json:
                printer.record(
                    {"time": utc_now(), "event": "listening", "url": url, "loopback_only": local}
                )
            else:
                printer.write(f"listening on {url}")
                if local:
                    printer.write(
                        f"(only this machine can connect: {args.host} is a loopback address; "
                        "for chargers on the network use --host 0.0.0.0)"
                    )
            if ops_url is not None:
                if args.json:
                    printer.record(
                        {
                            "time": utc_now(),
                            "event": "ops_listening",
                            "url": ops_url,
                            "paths": list(_OPS_PATHS),
                        }
                    )
                else:
                    paths = ", ".join(_OPS_PATHS)
                    printer.write(f"operations endpoints on {ops_url} ({paths})")
            nursery.start_soon(_committer, store)
    finally:
        overview = store.overview()
        store.close()
        if metrics is not None:
            metrics.shutdown()
    summary = (
        f"served {overview['stations']} stations, {log.total} messages "
        f"({log.errors} errors), {overview['transactions']} transactions; "
        f"answer latency {format_percentiles(log.answer_latency.percentiles())}"
    )
    if args.json:
        printer.record(
            {"time": utc_now(), "event": "summary", "messages": log.total, "errors": log.errors}
            | overview
        )
    else:
        printer.write(summary)
    return 0


_OPS_PATHS = ("/health", "/ready", "/metrics")


def _metrics(args: argparse.Namespace) -> PrometheusMetrics | None:
    """The metrics ``--ops-port`` serves (None without it)."""
    if args.ops_port is None:
        if args.ops_host != "127.0.0.1":
            raise usage_error("--ops-host is only used with --ops-port")
        return None
    try:
        return PrometheusMetrics()
    except ImportError as exc:
        raise CLIError(f"--ops-port needs the Prometheus exporter: {exc}") from None


def _bracketed(host: str) -> str:
    """``host`` as a URL writes it (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _report_rejection(printer: Printer, ev: HandshakeRejectedEvent) -> None:
    """One line per station refused before its connection opened."""
    who = ev.identity or (f"{ev.remote[0]}:{ev.remote[1]}" if ev.remote else "?")
    status = f"HTTP {ev.status}" if ev.status is not None else "no HTTP answer"
    printer.event(
        who,
        "handshake_rejected",
        f"refused ({status}): {ev.reason}",
        status=ev.status,
        reason=ev.reason,
        remote=f"{ev.remote[0]}:{ev.remote[1]}" if ev.remote else None,
    )


async def _committer(store: Store) -> None:
    while True:
        await trio.sleep(1.0)
        store.commit()
