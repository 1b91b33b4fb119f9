"""``ocpp-trio validate``: check OCPP-J frames against the framing rules and the OCA schemas.

Input: one JSON frame per line (blank lines and lines starting with ``#`` are
skipped), or one JSON array of frames (``[[2, ...], [3, ...]]``), from a file
or stdin (``-``); the JSON lines of an ``ocpp_trio.testing.record_frames``
recording are read too (their ``text``; the header names the protocol).
Each frame is decoded as a connection would
(``_core.frames.decode``: array shape, message type, id, action, payload),
then checked against the schema of its action: a CALL (or 2.1 SEND) against
the request schema, a CALLRESULT against the response schema of the CALL with
the same id earlier in the input.  A CALLERROR's code must be one of the
version's codes.  An answer whose CALL is not in the input cannot be
checked; it is reported as a warning, which does not make the input invalid.

Each problem is printed as ``FILE:LINE: ACTION DIRECTION: PATH ... (Code)``,
the code being the CALLERROR a receiver would answer with; ``--json``
prints one object per problem.  Exit status: 0 all frames valid, 1 some
invalid, or no frame at all (an empty file is an error, with one line on
stderr, not a success), 2 the input could not be read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Final, Literal, assert_never

from .._core.errors import CODES_BY_PROTOCOL, FrameDecodeError, ValidationError, code_for_protocol
from .._core.frames import Call, CallError, CallResult, CallResultError, MessageType, Send, decode
from .._core.validation import SUPPORTED_PROTOCOLS, Validator, get_validator
from ._common import EXIT_FAILED, EXIT_OK, CLIError, usage_error

Severity = Literal["error", "warning"]

_PATH: Final = re.compile(r"^[A-Za-z0-9_$]+(?:\[\d+\])*(?:\.[A-Za-z0-9_$]+(?:\[\d+\])*)*$")
_WS: Final = " \t\r\n"
#: The header of ``ocpp_trio.testing.record_frames`` files, whose lines hold frames as "text".
RECORDING_FORMAT: Final = "ocpp_trio.recording"
_TYPE_NUMBERS: Final = frozenset(int(t) for t in MessageType)


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One problem of one frame.

    Attributes:
        line: the line the frame starts on (1-based).
        severity: ``error`` (the frame is invalid) or ``warning``.
        message_type: ``CALL``, ``CALLRESULT``, ... when the frame got that far.
        action: the action, when known.
        direction: ``request`` or ``response``, for schema problems.
        message_id: the frame's id, when readable.
        path: the payload field concerned (``""``: the payload itself), for schema problems.
        code: the OCPP-J error code a receiver would answer with.
        message: what is wrong.
    """

    line: int
    severity: Severity = "error"
    message_type: str | None = None
    action: str | None = None
    direction: str | None = None
    message_id: str | None = None
    path: str | None = None
    code: str | None = None
    message: str

    def text(self, source: str) -> str:
        """``FILE:LINE: ...`` for people."""
        where = f"{source}:{self.line}:"
        if self.severity == "warning":
            return f"{where} warning: {self.message}"
        subject = "frame"
        if self.action is not None:
            subject = f"{self.action} {self.direction or self.message_type or ''}".strip()
        elif self.message_type is not None:
            subject = self.message_type
        code = f" ({self.code})" if self.code else ""
        return f"{where} {subject}: {self.message}{code}"


def field_path(description: str) -> str | None:
    """The field path a validation description starts with (``""`` for the payload itself)."""
    head = description.split(" ", 1)[0]
    if head == "payload":
        return ""
    return head if _PATH.match(head) else None


class FrameChecker:
    """Checks a sequence of frames of one protocol, pairing answers with their CALLs."""

    def __init__(self, protocol: str, *, variant: str | None = None) -> None:
        self.protocol = protocol
        self.validator: Validator = get_validator(protocol, variant=variant)
        self.allowed: frozenset[int] | None = (
            None if protocol == "ocpp2.1" else frozenset({2, 3, 4})
        )
        self.codes = {code.value for code in CODES_BY_PROTOCOL[protocol]}
        self.pending: dict[str, str] = {}
        self.frames = 0
        self.invalid = 0
        self.warnings = 0

    def check(self, text: str | bytes, line: int) -> list[Problem]:
        """Check one frame; update the counters."""
        self.frames += 1
        problems = self._check(text, line)
        if any(p.severity == "error" for p in problems):
            self.invalid += 1
        self.warnings += sum(p.severity == "warning" for p in problems)
        return problems

    def _code(self, code: str) -> str:
        return code_for_protocol(code, self.protocol)

    def _check(self, text: str | bytes, line: int) -> list[Problem]:
        try:
            frame = decode(text, allowed_types=self.allowed)
        except FrameDecodeError as exc:
            mtype = exc.message_type
            name = MessageType(mtype).name if mtype in _TYPE_NUMBERS else None
            return [
                Problem(
                    line=line,
                    message_type=name,
                    message_id=None if exc.message_id == "-1" else exc.message_id,
                    code=self._code(exc.error.code),
                    message=exc.error.description,
                )
            ]
        match frame:
            case Call(message_id=mid, action=action, payload=payload):
                problems: list[Problem] = []
                if mid in self.pending:
                    problems.append(
                        Problem(
                            line=line,
                            message_type="CALL",
                            action=action,
                            message_id=mid,
                            code="ProtocolError"
                            if self.protocol == "ocpp1.6"
                            else "RpcFrameworkError",
                            message=f"messageId {mid!r} is already used by an unanswered "
                            f"{self.pending[mid]} CALL",
                        )
                    )
                self.pending[mid] = action
                if action in self.validator.send_only_actions:
                    problems.append(
                        self._problem(line, "CALL", action, mid, "is sent as SEND, not as a CALL")
                    )
                    return problems
                return problems + self._schema(line, "CALL", action, mid, "request", payload)
            case Send(message_id=mid, action=action, payload=payload):
                if (
                    action not in self.validator.send_only_actions
                    and action in self.validator.actions
                ):
                    return [
                        self._problem(
                            line, "SEND", action, mid, "is a CALL action, not sent as SEND"
                        )
                    ]
                return self._schema(line, "SEND", action, mid, "request", payload)
            case CallResult(message_id=mid, payload=payload):
                answered = self.pending.pop(mid, None)
                if answered is None:
                    return [self._unmatched(line, "CALLRESULT", mid)]
                return self._schema(line, "CALLRESULT", answered, mid, "response", payload)
            case CallError(message_id=mid, error_code=code):
                answered = self.pending.pop(mid, None)
                problems = [] if answered is not None else [self._unmatched(line, "CALLERROR", mid)]
                return problems + self._error_code(line, "CALLERROR", answered, mid, code)
            case CallResultError(message_id=mid, error_code=code):
                return self._error_code(line, "CALLRESULTERROR", None, mid, code)
            case _:
                assert_never(frame)

    def _problem(self, line: int, mtype: str, action: str, mid: str, what: str) -> Problem:
        return Problem(
            line=line,
            message_type=mtype,
            action=action,
            message_id=mid,
            code=self._code("ProtocolError"),
            message=f"{action} {what} in {self.protocol}",
        )

    def _unmatched(self, line: int, mtype: str, mid: str) -> Problem:
        return Problem(
            line=line,
            severity="warning",
            message_type=mtype,
            message_id=mid,
            message=f"{mtype} {mid!r} answers no CALL earlier in the input; not checked",
        )

    def _error_code(
        self, line: int, mtype: str, action: str | None, mid: str, code: str
    ) -> list[Problem]:
        if code in self.codes:
            return []
        return [
            Problem(
                line=line,
                message_type=mtype,
                action=action,
                message_id=mid,
                code=self._code("FormatViolation"),
                message=f"errorCode {code!r} is not an error code of {self.protocol} "
                f"(one of {', '.join(sorted(self.codes))})",
            )
        ]

    def _schema(
        self,
        line: int,
        mtype: str,
        action: str,
        mid: str,
        direction: Literal["request", "response"],
        payload: object,
    ) -> list[Problem]:
        if not self.validator.has_schema(action, direction):
            known = action in self.validator.actions
            return [
                Problem(
                    line=line,
                    message_type=mtype,
                    action=action,
                    direction=direction,
                    message_id=mid,
                    code="NotSupported" if known else "NotImplemented",
                    message=f"{action} has no {direction} schema in {self.protocol}"
                    if known
                    else f"{action} is not an action of {self.protocol}",
                )
            ]
        try:
            self.validator.validate(action, direction, payload)
        except ValidationError as exc:
            description = exc.error.description
            return [
                Problem(
                    line=line,
                    message_type=mtype,
                    action=action,
                    direction=direction,
                    message_id=mid,
                    path=field_path(description),
                    code=self._code(exc.error.code),
                    message=description,
                )
            ]
        return []


# --- reading the input -------------------------------------------------------------


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def frames_of(data: bytes) -> Iterator[tuple[int, str | bytes]]:
    """``(line, frame)`` for every frame of the input (lines that are not UTF-8 stay bytes)."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        start = _skip_ws(text, 0)
        if text.startswith("[", start) and text.startswith(("[", "]"), _skip_ws(text, start + 1)):
            yield from _array_frames(text, start)
            return
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.rstrip(b"\r")
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        if stripped.startswith(b"{"):
            recorded = _recorded(stripped)
            if recorded is _HEADER:
                continue
            if recorded is not None:
                yield number, recorded
                continue
        yield number, line


_HEADER: Final = "<recording header>"


def _recorded(line: bytes) -> str | None:
    """The frame of a line of an ``ocpp_trio.testing`` recording (``_HEADER`` for its header)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("format") == RECORDING_FORMAT:
        return _HEADER
    text = obj.get("text")
    return text if isinstance(text, str) and "dir" in obj else None


def recording_protocol(data: bytes) -> str | None:
    """The protocol named by a recording's header line, if the input is a recording."""
    first = next((line for line in data.split(b"\n") if line.strip()), b"")
    try:
        header = json.loads(first)
    except ValueError:
        return None
    if isinstance(header, dict) and header.get("format") == RECORDING_FORMAT:
        protocol = header.get("protocol")
        return protocol if protocol in SUPPORTED_PROTOCOLS else None
    return None


def _array_frames(text: str, start: int) -> Iterator[tuple[int, str]]:
    """The elements of a JSON array of frames, with the line each starts on."""
    decoder = json.JSONDecoder()

    def line_of(i: int) -> int:
        return text.count("\n", 0, i) + 1

    i = _skip_ws(text, start + 1)
    if text.startswith("]", i):
        return
    while True:
        try:
            _, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            # Hand the rest of the line over: decode() reports it as not JSON.
            stop = text.find("\n", i)
            yield line_of(i), text[i : stop if stop >= 0 else len(text)]
            return
        yield line_of(i), text[i:end]
        i = _skip_ws(text, end)
        if text.startswith(",", i):
            i = _skip_ws(text, i + 1)
            continue
        if not text.startswith("]", i):
            yield line_of(i), text[i : i + 40] or "<end of input>"
        return


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise usage_error(f"cannot read {path}: {exc.strerror or exc}") from None


# --- the command -------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocpp-trio validate``."""
    parser.add_argument(
        "file", metavar="FILE", help="frames, one per line or a JSON array; - for stdin"
    )
    parser.add_argument(
        "--protocol",
        choices=SUPPORTED_PROTOCOLS,
        help="the OCPP version of the frames (default: a recording's own, else ocpp1.6)",
    )
    parser.add_argument(
        "--ocpp16-schemas",
        choices=["errata", "pre-errata"],
        default="errata",
        help="the OCPP 1.6 schemas: the OCA's 2019-12 set (default) or the earlier files",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per problem")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")


def run(args: argparse.Namespace) -> int:
    """Run ``ocpp-trio validate``; return the exit status."""
    data = _read(args.file)
    source = "<stdin>" if args.file == "-" else args.file
    protocol = args.protocol or recording_protocol(data) or "ocpp1.6"
    if args.ocpp16_schemas != "errata" and protocol != "ocpp1.6":
        raise usage_error(f"--ocpp16-schemas is only used with ocpp1.6 frames, not {protocol}")
    checker = FrameChecker(
        protocol, variant=None if args.ocpp16_schemas == "errata" else args.ocpp16_schemas
    )
    out = sys.stdout
    for line, text in frames_of(data):
        for problem in checker.check(text, line):
            if args.quiet:
                continue
            if args.json:
                out.write(
                    json.dumps({"file": source, **asdict(problem)}, ensure_ascii=False) + "\n"
                )
            else:
                out.write(problem.text(source) + "\n")
    if checker.frames == 0:
        # nothing checked is not "all valid": an empty export or a wrong file
        what = "it is empty" if not data.strip() else "no frame in it"
        raise CLIError(f"{source}: nothing to validate ({what}); expected OCPP-J frames")
    valid = checker.frames - checker.invalid
    summary = (
        f"{source}: {checker.frames} frames ({protocol}), {valid} valid, "
        f"{checker.invalid} invalid"
        + (f", {checker.warnings} warning(s)" if checker.warnings else "")
    )
    if args.json:
        out.write(
            json.dumps(
                {
                    "file": source,
                    "summary": True,
                    "protocol": protocol,
                    "frames": checker.frames,
                    "valid": valid,
                    "invalid": checker.invalid,
                    "warnings": checker.warnings,
                }
            )
            + "\n"
        )
    else:
        out.write(summary + "\n")
    out.flush()
    return EXIT_OK if checker.invalid == 0 else EXIT_FAILED
