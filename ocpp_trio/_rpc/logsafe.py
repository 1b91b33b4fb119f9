"""Log lines a peer cannot forge or flood.

Two things a hostile peer can do to our logs, and what this module does
about them:

* **Forge lines.**  A station chooses its identity (the last segment of the
  URL), its action names and the text of its frames.  Written to a log as they
  are, a newline starts a fake line, an ANSI escape rewrites the terminal, and
  a bidi override (U+202E) shows text in an order other than the bytes'.
  :func:`log_safe` escapes every such character the way ``repr()`` does
  (``\\n``, ``\\x1b``, ``\\u202e``), and nothing else: an identity like
  ``Ladesäule-7`` stays readable.  Any log line that carries peer-chosen text
  passes it through :func:`log_safe`.
* **Flood them.**  A bad frame of 16 bytes costs a WARNING line of some 200;
  a flood of them, or of calls over the rate limit, fills a disk faster than
  it costs the peer to send.  :class:`QuietLog` gives each connection, per
  cause, a few lines (``burst``), then at most one summary line per
  ``interval`` that counts the lines it left out.  The budget comes back once
  the cause has been quiet for a whole ``interval``.  Only log lines are
  limited: the events (``bad_message``, ``limit``...) fire for every
  occurrence, so metrics and callbacks still see all of them.

Time is ``trio.current_time()``, so tests run it in virtual time.
"""

from __future__ import annotations

import logging
import math
from typing import Final

import trio

__all__ = ["LOG_BURST", "LOG_INTERVAL", "QuietLog", "log_safe"]

#: Lines a connection logs for one cause before it goes quiet.
LOG_BURST: Final = 5

#: Seconds between the summary lines of a cause that keeps recurring.
LOG_INTERVAL: Final = 60.0


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if char in "\n\r\t":
        return repr(char)[1:-1]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def log_safe(text: object, limit: int | None = None) -> str:
    """``text`` fit for one log line: control, format and bidi characters escaped.

    What ``str.isprintable()`` calls unprintable (C0 and C1 controls, line and
    paragraph separators, format characters such as U+202E RIGHT-TO-LEFT
    OVERRIDE and U+200B ZERO WIDTH SPACE, lone surrogates, unassigned code
    points) is written as ``repr()`` writes it, and so is the backslash, so an
    escaped line cannot be mistaken for its original.  Printable text (any
    script, the space) is left as it is.  Text with nothing to escape is
    returned unchanged, without a copy.

    Args:
        text: the peer's text (an identity, an action, a frame); anything
            else is converted with ``str()`` first.
        limit: at most this many characters of ``text`` are kept (before
            escaping); the rest is replaced by ``...(N more)``.
    """
    if not isinstance(text, str):
        text = str(text)
    tail = ""
    if limit is not None and len(text) > limit:
        tail = f"...({len(text) - limit} more)"
        text = text[:limit]
    if text.isprintable() and "\\" not in text:
        return text + tail if tail else text
    escaped = "".join(c if c.isprintable() and c != "\\" else _escape(c) for c in text)
    return escaped + tail


class _Cause:
    """How one cause of log lines has been logged lately (see :class:`QuietLog`)."""

    __slots__ = ("last", "level", "logged", "since", "suppressed")

    def __init__(self, level: int) -> None:
        self.level = level  # the level of its lines, for the count left out
        self.logged = 0  # lines logged since the budget was last refilled
        self.suppressed = 0  # lines left out since ``since``
        self.since = 0.0  # when the first of ``suppressed`` was left out
        self.last = -math.inf  # when the cause last occurred


class QuietLog:
    """The log lines of one connection, limited per cause (see the module docstring).

    Each line is logged under a *cause* (``"bad_message"``,
    ``"limit:max_inbound_call_rate"``...).  The first ``burst`` lines of a
    cause are logged as they come.  After that the cause is quiet: its lines
    are counted, not logged, and the first one at least ``interval`` seconds
    after the first line left out is logged with the count (``... (37 more
    like this in the last 60 s were not logged)``).  A cause that has not
    occurred for ``interval`` seconds gets its budget back (any count still
    open is logged first).  :meth:`flush` logs the counts still open; the
    connection calls it when it ends.

    Args:
        logger: where the lines go.
        identity: the station's identity; each line starts with it, escaped
            with :func:`log_safe` on first use (nothing is computed for a
            connection that never logs).
        burst: lines per cause before going quiet.
        interval: seconds between the summary lines of a cause.
    """

    __slots__ = ("_burst", "_causes", "_identity", "_interval", "_logger", "_prefix")

    def __init__(
        self,
        logger: logging.Logger,
        identity: str,
        *,
        burst: int = LOG_BURST,
        interval: float = LOG_INTERVAL,
    ) -> None:
        self._logger = logger
        self._identity = identity
        self._burst = burst
        self._interval = interval
        self._prefix: str | None = None
        # Made on the first line: a server holds thousands of connections that never log.
        self._causes: dict[str, _Cause] | None = None

    @property
    def prefix(self) -> str:
        """The identity as it starts every line, escaped with :func:`log_safe`."""
        prefix = self._prefix
        if prefix is None:
            prefix = self._prefix = log_safe(self._identity, 200)
        return prefix

    def log(
        self,
        cause: str,
        level: int,
        msg: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> None:
        """Log ``"<identity>: " + msg % args`` at ``level``, unless ``cause`` is quiet now.

        ``cause`` is one of a fixed set of names (never peer-chosen text: each
        cause keeps a little state for the connection's life).  Peer-chosen
        text in ``args`` must already be escaped (:func:`log_safe` or ``%r``).
        ``exc_info`` goes with the line when it is logged.  Costs nothing but
        a level check when ``level`` is not enabled: the cause is not even
        counted then.
        """
        logger = self._logger
        if not logger.isEnabledFor(level):
            return
        causes = self._causes
        if causes is None:
            causes = self._causes = {}
        state = causes.get(cause)
        if state is None:
            state = causes[cause] = _Cause(level)
        state.level = level
        now = trio.current_time()
        if now - state.last >= self._interval:
            # Quiet for a whole interval: the budget is full again.
            if state.suppressed:
                self._left_out(cause, state, now)
            state.logged = 0
        state.last = now
        if state.logged < self._burst:
            state.logged += 1
            logger.log(level, "%s: " + msg, self.prefix, *args, exc_info=exc_info, stacklevel=2)
            return
        if not state.suppressed:
            state.since = now
        state.suppressed += 1
        if now - state.since >= self._interval:
            logger.log(
                level,
                "%s: " + msg + " (%d more like this in the last %.0f s were not logged)",
                self.prefix,
                *args,
                state.suppressed - 1,
                now - state.since,
                exc_info=exc_info,
                stacklevel=2,
            )
            state.suppressed = 0

    def flush(self) -> None:
        """Log the count of every cause with lines left out, and forget them."""
        causes = self._causes
        if not causes:
            return
        now = trio.current_time()
        for cause, state in causes.items():
            if state.suppressed:
                self._left_out(cause, state, now)

    def _left_out(self, cause: str, state: _Cause, now: float) -> None:
        self._logger.log(
            state.level,
            "%s: %d %s line(s) in the last %.0f s were not logged",
            self.prefix,
            state.suppressed,
            cause,
            now - state.since,
            stacklevel=3,  # the record names the caller of log() or flush()
        )
        state.suppressed = 0
