"""Helpers shared by the ``ocpp-trio`` subcommands: errors, time, statistics, TLS options."""

from __future__ import annotations

import argparse
import math
import ssl
from array import array
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from .._core.validation import SUPPORTED_PROTOCOLS
from ..observability.framelog import FrameLog, StationFileHandler
from ..security import SecurityProfile, check_password

#: Exit statuses: 0 success, 1 the run failed, 2 a usage error, 130 stopped
#: by Ctrl-C (SIGINT; 128 + 2, as shells report it) or SIGTERM.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


class CLIError(Exception):
    """A user-facing failure: ``main`` prints ``ocpp-trio CMD: error: <message>``, no traceback.

    Attributes:
        status: the exit status (1 for a failed run, 2 for a usage error).
    """

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def usage_error(message: str) -> CLIError:
    """A :class:`CLIError` with the usage exit status (2)."""
    return CLIError(message, EXIT_USAGE)


def utc_now() -> str:
    """The current UTC time as an RFC 3339 string with milliseconds, e.g. ``2024-01-01T00:00:00.000Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe_error(exc: BaseException) -> str:
    """One line naming an exception: its message, or its type when it has none."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text or type(exc).__name__


def root_cause(exc: BaseException) -> str:
    """The most specific reason behind ``exc``: the OS error at the bottom of its chain, if any.

    ``ConnectError("cannot connect to h:p: all attempts ... failed")`` becomes
    ``"Connection refused"``; anything without an OS error below it is
    described as itself.
    """
    seen: set[int] = set()
    found: OSError | None = None
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            found = current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(reversed(current.exceptions))
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                stack.append(nxt)
    if found is not None and found.strerror:
        return found.strerror
    return describe_error(exc)


def check_tls_files(*, ca: str | None, cert: str | None, key: str | None) -> None:
    """Load each TLS file on its own, so that a bad one is named; raises a usage CLIError."""
    for path, what in ((ca, "CA file"), (cert, "certificate"), (key, "key")):
        check_readable(path, what)
    if ca is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise tls_error(exc, f"--ca {ca} (PEM certificates expected)") from None
    if cert is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key)
        except (ssl.SSLError, OSError, ValueError) as exc:
            shown = f"--cert {cert}" + (f" / --key {key}" if key else "")
            raise tls_error(exc, f"{shown} (a PEM certificate and its key expected)") from None


# --- argument types ------------------------------------------------------------


def protocol_list(text: str) -> list[str]:
    """argparse type: a comma-separated list of supported subprotocols, in order."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one protocol")
    for name in names:
        if name not in SUPPORTED_PROTOCOLS:
            raise argparse.ArgumentTypeError(
                f"unknown protocol {name!r}; choose from {', '.join(SUPPORTED_PROTOCOLS)}"
            )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError("a protocol is listed twice")
    return names


def positive_float(text: str) -> float:
    """argparse type: a number of seconds > 0 (``inf`` allowed)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isnan(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _int_within(text: str, low: int, high: int | None, what: str, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_within(text, 0, None, "an integer", ">= 0")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_within(text, 1, None, "an integer", ">= 1")


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0-65535 (0: any free port)."""
    return _int_within(text, 0, 65535, "a port number", "within 0-65535")


def security_profile(text: str) -> SecurityProfile:
    """argparse type: a security profile number, 0-3."""
    try:
        return SecurityProfile(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 0, 1, 2 or 3, got {text!r}") from None


# --- files ------------------------------------------------------------------------


def read_text(path: str, what: str) -> str:
    """Read a UTF-8 text file, or raise a usage :class:`CLIError` naming the cause."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise usage_error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise usage_error(f"cannot read {what} {path}: not UTF-8 text") from None


def check_readable(path: str | None, what: str) -> None:
    """Raise a usage :class:`CLIError` unless ``path`` is None or a readable file."""
    if path is None:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise usage_error(f"cannot read {what} {path}: {exc.strerror or exc}") from None


class PasswordBook:
    """The station passwords of ``serve --password-file``.

    One entry per line, ``IDENTITY:PASSWORD`` (split at the first colon, as
    HTTP Basic Auth does); ``*:PASSWORD`` applies to any identity without a
    line of its own.  Blank lines and lines starting with ``#`` are skipped.
    The passwords never appear in the repr or in error texts.
    """

    __slots__ = ("_default", "_entries")

    def __init__(self, entries: Mapping[str, bytes], default: bytes | None = None) -> None:
        self._entries = dict(entries)
        self._default = default

    def __repr__(self) -> str:
        return f"<PasswordBook: {len(self._entries)} stations, default={self._default is not None}>"

    @classmethod
    def parse(cls, text: str, source: str = "password file") -> PasswordBook:
        """Parse the file text; raises a usage :class:`CLIError` for a malformed line."""
        entries: dict[str, bytes] = {}
        default: bytes | None = None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            identity, colon, password = line.partition(":")
            if not colon or not identity or not password:
                raise usage_error(
                    f"{source} line {number}: expected IDENTITY:PASSWORD (or *:PASSWORD)"
                )
            if identity == "*":
                default = password.encode("utf-8")
            else:
                entries[identity] = password.encode("utf-8")
        if not entries and default is None:
            raise usage_error(f"{source} holds no IDENTITY:PASSWORD line")
        return cls(entries, default)

    def knows(self, identity: str) -> bool:
        """Whether the book has a password for ``identity`` (its own or the ``*`` one)."""
        return identity in self._entries or self._default is not None

    def check(self, identity: str, given: bytes | None) -> bool:
        """Whether ``given`` is the password of ``identity`` (compared in constant time)."""
        stored = self._entries.get(identity, self._default)
        if stored is None or given is None:
            return False
        return check_password(stored, given)


def tls_error(exc: BaseException, what: str) -> CLIError:
    """A usage :class:`CLIError` for certificate/key files that cannot be loaded."""
    if isinstance(exc, ssl.SSLError):
        detail = exc.reason or str(exc)
    elif isinstance(exc, OSError):
        detail = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    else:
        detail = describe_error(exc)
    return usage_error(f"cannot load {what}: {detail}")


# --- statistics ------------------------------------------------------------------


class LatencyStats:
    """Measured durations (seconds), kept exactly, with nearest-rank percentiles."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: array[float] = array("d")

    def __len__(self) -> int:
        return len(self._values)

    def add(self, seconds: float) -> None:
        """Record one measured duration."""
        self._values.append(seconds)

    def extend(self, other: LatencyStats) -> None:
        """Add every value of ``other``."""
        self._values.extend(other._values)

    def percentiles(self, points: Iterable[float] = (50, 90, 99)) -> dict[str, float]:
        """``{"p50": s, "p90": s, "p99": s, "max": s}`` by the nearest-rank method; {} when empty."""
        return percentiles(self._values, points)


def percentiles(
    values: Sequence[float], points: Iterable[float] = (50, 90, 99)
) -> dict[str, float]:
    """Nearest-rank percentiles of ``values`` plus ``max``; an empty dict for no values."""
    if not values:
        return {}
    ordered = sorted(values)
    out: dict[str, float] = {}
    for point in points:
        rank = max(1, math.ceil(point / 100 * len(ordered)))
        label = f"p{point:g}"
        out[label] = ordered[rank - 1]
    out["max"] = ordered[-1]
    return out


def format_ms(seconds: float) -> str:
    """A duration in milliseconds with sensible precision."""
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 100:
        return f"{ms:.1f} ms"
    return f"{ms:.0f} ms"


def format_percentiles(stats: Mapping[str, float]) -> str:
    """``p50 0.84 ms, p90 1.51 ms, p99 3.20 ms, max 4.02 ms``, or ``n/a``."""
    if not stats:
        return "n/a"
    return ", ".join(f"{label} {format_ms(value)}" for label, value in stats.items())


def add_frame_log_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--frame-log DIR`` (``serve`` and ``station``): see :func:`frame_log_of`."""
    parser.add_argument(
        "--frame-log",
        metavar="DIR",
        default=None,
        help="write every frame as JSON lines, one rotating file per station, into DIR "
        "(idTag, idToken, passwords and keys masked)",
    )


def frame_log_of(args: argparse.Namespace) -> FrameLog | None:
    """The frame log of ``--frame-log DIR`` (a file per station), or None without it."""
    if args.frame_log is None:
        return None
    try:
        return FrameLog(handler=StationFileHandler(args.frame_log))
    except OSError as exc:
        raise CLIError(f"--frame-log {args.frame_log}: {exc.strerror or exc}") from None
