"""What the commands print: one line per message or event, as text or JSON lines.

Text lines start with the local time and the station identity, then an arrow
from the point of view of the process printing it: ``<-`` received, ``->``
sent.  Answers carry their latency: for our own CALLs the round trip, for the
peer's CALLs the time we took to answer.  ``--json`` prints the same facts as
one JSON object per line (with the payloads), for tools.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from datetime import datetime
from typing import Any, TextIO

from .. import OCPPClient, OCPPConnection
from ..events import (
    BadMessageEvent,
    CallErrorEvent,
    CallEvent,
    CallResultEvent,
    StrictValidationFailureEvent,
)
from ._common import LatencyStats, utc_now

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Printer:
    """Writes the lines of one command to ``stream`` (stdout by default).

    Args:
        stream: where to write.
        json_mode: one JSON object per line instead of text.
        verbose: add the payloads to text lines.
        quiet: print no event lines (summaries still print).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        json_mode: bool = False,
        verbose: bool = False,
        quiet: bool = False,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.json_mode = json_mode
        self.verbose = verbose
        self.quiet = quiet

    def write(self, line: str) -> None:
        """Write one line as is (summaries, banners)."""
        self.stream.write(line + "\n")
        self.stream.flush()

    def record(self, obj: dict[str, Any]) -> None:
        """Write one JSON object as a line."""
        self.write(_dumps(obj))

    def event(self, identity: str, event: str, text: str, **fields: Any) -> None:
        """A milestone of one station (connected, booted, transaction started...)."""
        if self.quiet:
            return
        if self.json_mode:
            self.record({"time": utc_now(), "identity": identity, "event": event, **fields})
        else:
            self.write(f"{_clock()} {identity:<14} {text}")

    def frame(
        self,
        identity: str,
        *,
        outbound: bool,
        kind: str,
        action: str,
        message_id: str,
        latency: float | None = None,
        payload: Any = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        """One OCPP-J frame sent or received."""
        if self.quiet:
            return
        if self.json_mode:
            obj: dict[str, Any] = {
                "time": utc_now(),
                "identity": identity,
                "direction": "out" if outbound else "in",
                "type": kind,
                "action": action,
                "id": message_id,
            }
            if latency is not None:
                obj["latency_ms"] = round(latency * 1000, 3)
            if error is not None:
                obj["error"] = {"code": error[0], "description": error[1]}
            if payload is not None:
                obj["payload"] = payload
            self.record(obj)
            return
        arrow = "->" if outbound else "<-"
        parts = [f"{_clock()} {identity:<14} {arrow} {kind:<6} {action}"]
        if error is not None:
            parts.append(f"{error[0]}" + (f" ({error[1]})" if error[1] else ""))
        if latency is not None:
            parts.append(f"{latency * 1000:.2f} ms")
        if self.verbose and payload is not None:
            parts.append(_dumps(payload))
        self.write(" ".join(parts))


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S.%f")[:-3]


class MessageLog:
    """Counts every frame of the connections it is attached to, and prints them if asked.

    Args:
        printer: where frame lines go, or None to only count.
        frames: print one line per frame (else only count).
    """

    def __init__(self, printer: Printer | None = None, *, frames: bool = True) -> None:
        self.printer = printer
        self.frames = frames and printer is not None
        self.frames_in = 0
        self.frames_out = 0
        self.errors = 0
        self.per_identity: Counter[str] = Counter()
        #: round trips of the CALLs the attached side made
        self.call_latency = LatencyStats()
        #: time the attached side took to answer the peer's CALLs
        self.answer_latency = LatencyStats()

    @property
    def total(self) -> int:
        """Frames seen in both directions."""
        return self.frames_in + self.frames_out

    def attach(self, target: OCPPConnection | OCPPClient, identity: str) -> None:
        """Count (and print) the frames of ``target`` under the name ``identity``."""
        started: dict[tuple[bool, str], float] = {}
        printer = self.printer if self.frames else None

        def count(outbound: bool) -> None:
            if outbound:
                self.frames_out += 1
            else:
                self.frames_in += 1
            self.per_identity[identity] += 1

        def on_call(ev: CallEvent) -> None:
            count(ev.outbound)
            if not ev.is_send:
                started[(ev.outbound, ev.message_id)] = time.perf_counter()
            if printer is not None:
                printer.frame(
                    identity,
                    outbound=ev.outbound,
                    kind="SEND" if ev.is_send else "CALL",
                    action=ev.method,
                    message_id=ev.message_id,
                    payload=ev.params,
                )

        def latency(outbound_answer: bool, message_id: str) -> float | None:
            t0 = started.pop((not outbound_answer, message_id), None)
            if t0 is None:
                return None
            elapsed = time.perf_counter() - t0
            (self.answer_latency if outbound_answer else self.call_latency).add(elapsed)
            return elapsed

        def on_result(ev: CallResultEvent) -> None:
            count(ev.outbound)
            took = latency(ev.outbound, ev.message_id)
            if printer is not None:
                printer.frame(
                    identity,
                    outbound=ev.outbound,
                    kind="RESULT",
                    action=ev.method,
                    message_id=ev.message_id,
                    latency=took,
                    payload=ev.result,
                )

        def on_error(ev: CallErrorEvent) -> None:
            count(ev.outbound)
            self.errors += 1
            took = latency(ev.outbound, ev.message_id)
            if printer is not None:
                printer.frame(
                    identity,
                    outbound=ev.outbound,
                    kind="ERROR",
                    action=ev.method,
                    message_id=ev.message_id,
                    latency=took,
                    error=(ev.code, ev.description),
                    payload=ev.details or None,
                )

        def on_bad(ev: BadMessageEvent) -> None:
            self.frames_in += 1
            self.errors += 1
            if self.printer is not None:
                self.printer.event(
                    identity,
                    "bad_message",
                    f"<- bad frame ({ev.code}: {ev.description}): {ev.excerpt}",
                    code=ev.code,
                    description=ev.description,
                    excerpt=ev.excerpt,
                )

        def on_invalid(ev: StrictValidationFailureEvent) -> None:
            if not ev.outbound and ev.direction == "response":
                self.errors += 1  # no CALLERROR frame follows: count it here
            if self.printer is not None:
                where = "our" if ev.outbound else "the peer's"
                error = getattr(ev.error, "error", ev.error)
                self.printer.event(
                    identity,
                    "invalid_payload",
                    f"!! {where} {ev.method} {ev.direction} breaks the schema: {error}",
                    action=ev.method,
                    direction=ev.direction,
                    outbound=ev.outbound,
                    description=str(error),
                )

        target.on("call", on_call)
        target.on("call_result", on_result)
        target.on("call_error", on_error)
        target.on("bad_message", on_bad)
        target.on("strict_validation_failure", on_invalid)
