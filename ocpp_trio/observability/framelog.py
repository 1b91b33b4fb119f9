"""The structured frame log: one JSON object per frame, through ``logging``.

``FrameLog()`` given to a server or client (``frame_log=``) writes each frame
the connection receives or sends as one record of the logger
``ocpp_trio.frames`` at DEBUG, whose message is a JSON object::

    {"time": "2026-12-02T14:03:07.412Z", "identity": "CP-1", "protocol": "ocpp1.6",
     "direction": "in", "message_type": "CALL", "action": "Authorize",
     "message_id": "19223201", "bytes": 61, "latency_ms": null,
     "payload": {"idTag": "***"}}

and carries the same dict as ``record.ocpp`` for handlers that format records
themselves.  An answer (CALLRESULT, CALLERROR) has the time since its CALL in
``latency_ms``.  A frame that is not OCPP-J (``message_type`` ``"invalid"``)
has an ``excerpt`` instead of a ``payload``: its outline, never its text
(see :meth:`FrameLog.sketch`).

Any ``logging`` handler works; :class:`StationFileHandler` writes one rotating
JSON-lines file per station.  Nothing is computed unless the logger is enabled
for the frame log's level (or a ``handler`` is given): that check comes first,
before any JSON work.

Redaction applies to the log copy only (the frame on the wire is untouched);
its rules are in the guide (``docs/guides/frame-log.md``): key names at any
depth (:data:`ALWAYS_REDACTED` plus ``redact=``), secrets that configuration
messages carry as values (:data:`SECRET_KEYS` plus ``secret_keys=``), PEM
private keys anywhere, and the free text of CALLERRORs.

Writing a record is blocking I/O in the event loop (a handler's ``emit``):
records are small and a file write of a few hundred bytes costs microseconds,
but a slow disk or a network file system stalls every connection of the
process; put a ``logging.handlers.QueueHandler`` in front of such a handler.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, Final

from ._redact import MASK as MASK
from ._redact import Redactor, sketch

__all__ = [
    "ALWAYS_REDACTED",
    "EXCERPT_LENGTH",
    "FRAME_LOGGER",
    "MASK",
    "SECRET_KEYS",
    "FrameLog",
    "StationFileHandler",
    "station_file_name",
]

#: The logger of the frame log.
FRAME_LOGGER: Final = "ocpp_trio.frames"

#: Keys whose values never appear in the frame log, whatever ``redact=`` says
#: (compared without regard to case; a key whose name contains ``password``,
#: ``passwd``, ``passphrase``, ``secret`` or ``privatekey`` is redacted too).
ALWAYS_REDACTED: Final = frozenset(
    {
        "idTag",  # 1.6
        "parentIdTag",  # 1.6
        "idToken",  # 2.x (an IdTokenType object: redacted inside, its type stays)
        "groupIdToken",  # 2.x
        "additionalIdToken",  # 2.x additionalInfo
        "password",  # 2.x SetNetworkProfile vpn
        "apnPassword",  # 2.x SetNetworkProfile apn
        "simPin",  # 2.x SetNetworkProfile apn
        "basicAuthPassword",  # 2.1 SetNetworkProfile
        "authorizationKey",
    }
)

#: Configuration keys (1.6) and variables (2.x) whose values are secrets:
#: their ``value`` / ``attributeValue`` / ``variableAttribute[].value`` is
#: masked in ChangeConfiguration, GetConfiguration results, SetVariables,
#: GetVariables results and NotifyReport.  ``secret_keys=`` adds to these.
SECRET_KEYS: Final = frozenset(
    {
        "AuthorizationKey",  # 1.6 Security Extension: the Basic auth password
        "BasicAuthPassword",  # 2.x SecurityCtrlr
        "ApnPassword",  # 2.x NetworkConfiguration (2.1 device model)
        "SimPin",
        "VpnPassword",
        "VpnKey",
    }
)

#: Characters of a frame that is not OCPP-J that its excerpt outlines (``excerpt=``'s default).
EXCERPT_LENGTH: Final = 120

#: ``message_type`` -> (index of the payload, or -1 for an error's three fields).
_BODY: Final = {"CALL": 3, "SEND": 3, "CALLRESULT": 2, "CALLERROR": -1, "CALLRESULTERROR": -1}


class FrameLog:
    """The structured frame log of a server or client (``frame_log=``).

    Args:
        redact: more keys whose values are masked in the log copy, at any
            depth, any case (besides :data:`ALWAYS_REDACTED`, which cannot be
            removed).
        secret_keys: more configuration key / variable names whose values are
            masked (besides :data:`SECRET_KEYS`, which cannot be removed).
        payload: include the (redacted) payload; False logs the envelope only
            (a frame that is not OCPP-J keeps its ``excerpt``).
        excerpt: characters of a frame that is not OCPP-J that its
            ``excerpt`` outlines (:meth:`sketch`); 0 logs its size only.
        logger: the logger to write to (``ocpp_trio.frames`` by default).
        level: the level of the frame records.
        handler: a handler that gets every record directly, whether or not
            the logger is enabled, e.g. ``StationFileHandler("frames/")``
            (its own level and filters apply).  :meth:`close` closes it.
    """

    __slots__ = ("_logger", "_redactor", "excerpt", "handler", "level", "payload")

    def __init__(
        self,
        *,
        redact: Iterable[str] = (),
        secret_keys: Iterable[str] = (),
        payload: bool = True,
        excerpt: int = EXCERPT_LENGTH,
        logger: logging.Logger | None = None,
        level: int = logging.DEBUG,
        handler: logging.Handler | None = None,
    ) -> None:
        if isinstance(redact, str) or isinstance(secret_keys, str):
            raise TypeError("redact and secret_keys take a list of names, not one string")
        self._redactor = Redactor(ALWAYS_REDACTED | set(redact), SECRET_KEYS | set(secret_keys))
        self.payload = payload
        self.excerpt = max(0, excerpt)
        self.level = level
        self.handler = handler
        self._logger = logger if logger is not None else logging.getLogger(FRAME_LOGGER)

    @property
    def redacted_keys(self) -> frozenset[str]:
        """The key names whose values are masked (lower case; password-like names too)."""
        return self._redactor.keys

    @property
    def secret_names(self) -> frozenset[str]:
        """The configuration key / variable names whose values are masked (lower case)."""
        return self._redactor.secret_names

    def frame(
        self,
        *,
        identity: str,
        protocol: str,
        direction: str,
        message_type: str,
        action: str,
        message_id: str,
        text: str | bytes,
        latency: float | None,
    ) -> None:
        """Log one frame (called by the connection; cheap when the logger is off).

        ``text`` is the frame as it went over the wire (bytes: a binary
        message, which is not OCPP-J); ``latency`` the seconds since the CALL
        that an answer answers, or None.
        """
        logger = self._logger
        enabled = logger.isEnabledFor(self.level)
        handler = self.handler
        if not enabled and handler is None:
            return
        now = time.time()
        size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}Z",
            "identity": identity,
            "protocol": protocol,
            "direction": direction,
            "message_type": message_type,
            "action": action or None,
            "message_id": message_id or None,
            "bytes": size,
            "latency_ms": None if latency is None else round(latency * 1000, 3),
        }
        if not isinstance(text, str):  # a binary message: not OCPP-J
            text = text.decode("utf-8", "replace")
        body = self._payload(message_type, text)
        if body is _INVALID:
            record["excerpt"] = self.sketch(text) if self.excerpt else None
        elif self.payload:
            record["payload"] = body
        log_record = logger.makeRecord(
            logger.name, self.level, "", 0, "%s", (_Lazy(record),), None, extra={"ocpp": record}
        )
        if enabled:
            logger.handle(log_record)
        if handler is not None and log_record.levelno >= handler.level:
            handler.handle(log_record)

    def _payload(self, message_type: str, text: str) -> Any:
        """The redacted payload of an OCPP-J frame, or ``_INVALID``."""
        index = _BODY.get(message_type)
        if index is None:
            return _INVALID
        if not self.payload:
            return None
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError):
            return _INVALID
        if not isinstance(frame, list):
            return _INVALID
        redactor = self._redactor
        if index >= 0:
            return redactor.value(frame[index]) if len(frame) > index else _INVALID
        if len(frame) < 5:
            return _INVALID
        code, description, details = frame[2], frame[3], frame[4]
        return {
            "errorCode": code,
            "errorDescription": redactor.text(description)
            if isinstance(description, str)
            else redactor.value(description, True),
            "errorDetails": redactor.value(details, True),
        }

    def redact(self, payload: Any) -> Any:
        """A copy of a decoded ``payload`` as the log shows it (the wire's copy is untouched)."""
        return self._redactor.value(payload)

    def redact_text(self, text: str) -> str:
        """Free text (an error's description) as the log shows it."""
        return self._redactor.text(text)

    def sketch(self, text: str) -> str:
        """The outline of a frame that is not OCPP-J, as its ``excerpt`` shows it.

        Such a frame is never logged as it is: it may hold a secret where no
        key says so (a truncated ``Authorize``, a payload that is a bare
        string), and it is the peer's text.  Of its first ``excerpt``
        characters the outline keeps JSON punctuation, numbers,
        ``true``/``false``/``null`` and object keys, and writes every other
        string as ``"?"`` and every other word as ``?``:
        ``[2,"19223201","Authorize",{"idTag":"X"`` becomes
        ``[2,"?","?",{"idTag":"?"`` (enough to see it was cut short), and
        ``hello world`` becomes ``? ?``.  The rest is counted,
        ``...(N more)``.  The connection's own log lines show a frame that
        is not JSON the same way (``log_copy``).
        """
        return sketch(text, self.excerpt)

    def close(self) -> None:
        """Close ``handler`` (its files); the frame log still works, the handler does not."""
        if self.handler is not None:
            self.handler.close()


_INVALID: Final = object()


class _Lazy:
    """The record's message: the JSON text, made once and only if a handler formats it."""

    __slots__ = ("record", "text")

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.text: str | None = None

    def __str__(self) -> str:
        text = self.text
        if text is None:
            text = json.dumps(self.record, ensure_ascii=False, separators=(",", ":"))
            if not text.isprintable():
                text = "".join(c if c.isprintable() else _json_escape(c) for c in text)
            self.text = text
        return text


def _json_escape(char: str) -> str:
    """A JSON escape for ``char`` (bidi overrides, zero-width and unassigned characters,
    lone surrogates): a record's line shows the peer's text as it is, not as a
    terminal would render it."""
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


# --- per-station files ---------------------------------------------------------------

#: Names Windows reserves for devices, whatever the extension.
_RESERVED: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
)
_SAFE: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_NAME_LIMIT: Final = 120


def station_file_name(identity: str) -> str:
    """The file name (without ``.jsonl``) that :class:`StationFileHandler` uses for ``identity``.

    A station chooses its identity, so the name is made safe: every character
    but ASCII letters, digits, ``-`` and ``_`` is percent-encoded as UTF-8
    (``../x`` is ``%2E%2E%2Fx``, ``Ladesäule`` is ``Lades%C3%A4ule``), so no
    name has a path separator, starts with a dot or holds a character a file
    system refuses; a name Windows reserves (``CON``, ``com1``) has its first
    letter encoded; a name longer than 120 characters is cut and ends with
    ``%~`` and 16 hex digits of the identity's SHA-256, so two long
    identities never share a file.  The empty identity is ``%empty``.  No
    two identities get the same name (on a case-sensitive file system:
    ``CP1`` and ``cp1`` share a file on a case-insensitive one).
    """
    if not identity:
        return "%empty"
    name = "".join(
        c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in identity
    )
    if name.upper() in _RESERVED:
        name = f"%{ord(name[0]):02X}{name[1:]}"
    if len(name) > _NAME_LIMIT:
        digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = f"{name[:100]}%~{digest}"
    return name


class StationFileHandler(logging.Handler):
    """Writes each frame record to ``<directory>/<station>.jsonl``, one rotating file per station.

    The station is the record's ``ocpp["identity"]`` (records of the frame
    log), made safe by :func:`station_file_name`; a record without one goes
    to ``%other.jsonl``.  Each file is a
    :class:`logging.handlers.RotatingFileHandler`: past ``max_bytes`` it is
    renamed ``.jsonl.1`` (and so on up to ``backup_count``) and a new one is
    begun.  At most ``max_open_files`` files are open at once: writing to
    another closes the least recently written (it is reopened, for
    appending, when its station writes again).  The default format is the
    record's message, which for the frame log is its JSON object: one JSON
    object per line.

    Writing is blocking I/O in the event loop, as with any ``logging``
    handler: one ``write`` of a few hundred bytes per frame, and an
    ``open`` when a station's file is not open.  For a busy server or a slow
    disk, put it behind a ``QueueHandler`` (the guide has the recipe).

    Args:
        directory: where the files go (made if missing).
        max_bytes: a file's size before it rotates; 0 never rotates.
        backup_count: rotated files kept per station.
        max_open_files: files open at once.
        level: the handler's level.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 10 * 1024 * 1024,
        backup_count: int = 5,
        max_open_files: int = 64,
        level: int = logging.NOTSET,
    ) -> None:
        if max_open_files < 1:
            raise ValueError(f"max_open_files must be at least 1, not {max_open_files}")
        super().__init__(level)
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.max_open_files = max_open_files
        self._files: OrderedDict[str, RotatingFileHandler] = OrderedDict()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def open_files(self) -> int:
        """How many station files are open now (at most ``max_open_files``)."""
        return len(self._files)

    def path_for(self, identity: str | None) -> Path:
        """The file of ``identity`` (None: of records that name no station)."""
        name = "%other" if identity is None else station_file_name(identity)
        path = self.directory / f"{name}.jsonl"
        if path.parent != self.directory:  # station_file_name makes this impossible
            raise ValueError(f"{identity!r} names a file outside {self.directory}")
        return path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = getattr(record, "ocpp", None)
            identity = fields.get("identity") if isinstance(fields, dict) else None
            if not isinstance(identity, str):
                identity = None
            key = "\x00other" if identity is None else identity
            files = self._files
            target = files.get(key)
            if target is None:
                target = RotatingFileHandler(
                    self.path_for(identity),
                    maxBytes=self.max_bytes,
                    backupCount=self.backup_count,
                    encoding="utf-8",
                    delay=True,
                )
                files[key] = target
                while len(files) > self.max_open_files:
                    files.popitem(last=False)[1].close()
            else:
                files.move_to_end(key)
            target.formatter = self.formatter
            target.emit(record)  # under this handler's lock (Handler.handle)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            for target in self._files.values():
                target.flush()
        finally:
            self.release()

    def close(self) -> None:
        """Close every open file (a later record opens its file again)."""
        self.acquire()
        try:
            while self._files:
                self._files.popitem(last=False)[1].close()
        finally:
            self.release()
        super().close()


_SECRETS_ONLY: Redactor | None = None


def log_copy(text: str) -> str:
    """A frame as the connection's own log lines may show it, with its secrets masked.

    For the lines of ``ocpp_trio.connection`` that show frames (the raw DEBUG
    lines, the excerpt of a bad frame's WARNING), with or without a frame
    log: a frame that is JSON has the values of :data:`ALWAYS_REDACTED` keys
    and of :data:`SECRET_KEYS` entries masked (and is shown as it came when
    it has none); one that is not JSON (a cut-off excerpt, garbage) is shown
    as its outline (``FrameLog.sketch``), since nothing says where a secret
    would be in it.  Only called once a line is to be written.
    """
    global _SECRETS_ONLY
    redactor = _SECRETS_ONLY
    if redactor is None:
        redactor = _SECRETS_ONLY = Redactor(ALWAYS_REDACTED, SECRET_KEYS)
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return sketch(text, EXCERPT_LENGTH)
    masked = redactor.value(frame)
    if masked == frame:
        return text
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":"))
