"""The structured frame log: one JSON object per frame, through ``logging``.

``FrameLog()`` given to a server or client (``frame_log=``) writes each frame
the connection receives or sends as one record of the logger
``ocpp_trio.frames`` at DEBUG, whose message is a JSON object::

    {"time": "2026-12-02T14:03:07.412Z", "identity": "CP-1", "protocol": "ocpp1.6",
     "direction": "in", "message_type": "CALL", "action": "Authorize",
     "message_id": "19223201", "bytes": 61, "latency_ms": null,
     "payload": {"idTag": "***"}}

and carries the same dict as ``record.ocpp`` for handlers that format records
themselves.  Any ``logging`` handler works; nothing is written unless the
logger is enabled for DEBUG (the check comes first, before any JSON work).

Redaction applies to the log copy only (the frame on the wire is untouched):
the value of every key named in ``redact`` (anywhere in the payload, at any
depth) becomes ``"***"``.  The keys of :data:`ALWAYS_REDACTED` (id tags and
tokens, passwords, keys) are redacted whatever ``redact`` says.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["ALWAYS_REDACTED", "FRAME_LOGGER", "FrameLog"]

#: The logger of the frame log.
FRAME_LOGGER: Final = "ocpp_trio.frames"

#: Keys whose values never appear in the frame log.
ALWAYS_REDACTED: Final = frozenset(
    {
        "idTag",
        "parentIdTag",
        "idToken",
        "groupIdToken",
        "password",
        "basicAuthPassword",
        "authorizationKey",
        "AuthorizationKey",
    }
)

#: What replaces a redacted value.
MASK: Final = "***"


class FrameLog:
    """The structured frame log of a server or client (``frame_log=``).

    Args:
        redact: more keys whose values are masked in the log copy (besides
            :data:`ALWAYS_REDACTED`).
        payload: include the (redacted) payload; False logs the envelope only.
        logger: the logger to write to (``ocpp_trio.frames`` by default).
        level: the level of the frame records.
    """

    __slots__ = ("_logger", "level", "payload", "redact")

    def __init__(
        self,
        *,
        redact: Iterable[str] = (),
        payload: bool = True,
        logger: logging.Logger | None = None,
        level: int = logging.DEBUG,
    ) -> None:
        self.redact = frozenset(redact) | ALWAYS_REDACTED
        self.payload = payload
        self.level = level
        self._logger = logger if logger is not None else logging.getLogger(FRAME_LOGGER)

    def frame(
        self,
        *,
        identity: str,
        protocol: str,
        direction: str,
        message_type: str,
        action: str,
        message_id: str,
        text: str,
        latency: float | None,
    ) -> None:
        """Log one frame (called by the connection; cheap when the logger is off)."""
        logger = self._logger
        if not logger.isEnabledFor(self.level):
            return
        now = time.time()
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}Z",
            "identity": identity,
            "protocol": protocol,
            "direction": direction,
            "message_type": message_type,
            "action": action or None,
            "message_id": message_id or None,
            "bytes": len(text.encode("utf-8", "surrogatepass")),
            "latency_ms": None if latency is None else round(latency * 1000, 3),
        }
        if self.payload:
            record["payload"] = self._payload(text)
        logger.log(
            self.level,
            "%s",
            _Lazy(record),
            extra={"ocpp": record},
        )

    def _payload(self, text: str) -> Any:
        try:
            frame = json.loads(text)
        except ValueError:
            return {"unparsed": len(text)}  # not JSON: its size only, never its text
        if not isinstance(frame, list) or not frame:
            return {"unparsed": len(text)}
        body: Any
        kind = frame[0]
        if kind in (2, 6) and len(frame) >= 4:
            body = frame[3]
        elif kind == 3 and len(frame) >= 3:
            body = frame[2]
        elif kind in (4, 5) and len(frame) >= 5:
            body = {"errorCode": frame[2], "errorDescription": frame[3], "errorDetails": frame[4]}
        else:
            return {"unparsed": len(text)}
        return redact(body, self.redact)


def redact(value: Any, keys: frozenset[str]) -> Any:
    """A copy of ``value`` with the value of every key in ``keys`` masked, at any depth."""
    if isinstance(value, dict):
        return {k: (MASK if k in keys else redact(v, keys)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, keys) for v in value]
    return value


class _Lazy:
    """The record's message: the JSON text, made only if a handler formats it."""

    __slots__ = ("record",)

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def __str__(self) -> str:
        return json.dumps(self.record, ensure_ascii=False, separators=(",", ":"))
