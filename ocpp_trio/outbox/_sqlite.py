"""The default outbox store: one SQLite file (stdlib ``sqlite3``), driven off the event loop.

Theory of operation.  One ``sqlite3`` connection per store, used from Trio's
worker threads one at a time (``trio.to_thread.run_sync`` with a limiter of
one), so the event loop never waits for the disk.  The file is in WAL mode;
``synchronous="FULL"`` (the default) syncs every commit, so a message is on
stable storage (a power cut keeps it) when ``append`` returns;
``synchronous="NORMAL"`` syncs at WAL checkpoints only, which keeps every
commit across a crash of the process but not across a power cut or an OS
crash, and is several times faster.

The outbox batches the appends that arrive while a commit runs into the
next one (group commit).  A worker thread is never abandoned: a cancelled call waits for
the statement it started (milliseconds), so a step is either committed or
not begun.

Sequence numbers come from ``AUTOINCREMENT``, so a seq is never reused even
after the newest rows were deleted (a 1.6 StopTransaction refers to its
StartTransaction by seq).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final, Literal, TypeVar, final

import trio

from ._store import NewMessage, StoredMessage

T = TypeVar("T")

#: Seconds SQLite waits for another connection's lock (several stations in one file).
_BUSY_TIMEOUT: Final = 30.0
_OPEN_RETRIES: Final = 50

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS ocpp_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    station TEXT NOT NULL,
    protocol TEXT,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    transaction_of INTEGER
);
CREATE INDEX IF NOT EXISTS ocpp_outbox_station ON ocpp_outbox (station, seq);
"""


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


@final
class SQLiteStore:
    """An :class:`~ocpp_trio.outbox.OutboxStore` in a SQLite file (created when missing).

    Several stations (identities) may share one file; several processes
    should not share one file for the same station.

    Args:
        path: the database file.
        synchronous: ``"FULL"`` (default: every commit survives a power cut)
            or ``"NORMAL"`` (survives a crash of the process; faster).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: Literal["FULL", "NORMAL"] = "FULL"
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._limiter = trio.CapacityLimiter(1)

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r}>"

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise trio.ClosedResourceError("the outbox store is closed")
        return await trio.to_thread.run_sync(self._in_thread, fn, limiter=self._limiter)

    def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            self._db = self._open()
        return fn(self._db)

    def _open(self) -> sqlite3.Connection:
        """Connect, switch to WAL and create the table (in a worker thread)."""
        db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT
        )
        try:
            # Two stores opening one new file at once: switching it to WAL can
            # fail with "database is locked" without waiting for the busy
            # timeout; it is retried, briefly, here.
            for attempt in range(_OPEN_RETRIES):
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute(f"PRAGMA synchronous={self.synchronous}")
                    db.executescript(_SCHEMA)
                    return db
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == _OPEN_RETRIES - 1:
                        raise
                    time.sleep(0.01 * (attempt + 1))
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            db.close()
            raise

    async def load(self, station: str) -> list[StoredMessage]:
        def load(db: sqlite3.Connection) -> list[StoredMessage]:
            rows = db.execute(
                "SELECT seq, protocol, action, payload, created, attempts, transaction_of"
                " FROM ocpp_outbox WHERE station = ? ORDER BY seq",
                (station,),
            ).fetchall()
            return [
                StoredMessage(
                    seq=seq,
                    station=station,
                    protocol=protocol,
                    action=action,
                    payload=json.loads(payload),
                    created=created,
                    attempts=attempts,
                    transaction_of=transaction_of,
                )
                for seq, protocol, action, payload, created, attempts, transaction_of in rows
            ]

        return await self._run(load)

    async def append(
        self, station: str, messages: Sequence[NewMessage], *, delete: Collection[int] = ()
    ) -> list[StoredMessage]:
        # Encoded here, in the caller: a payload that is not JSON fails before any I/O.
        rows = [
            (station, m.protocol, m.action, _dumps(m.payload), m.created, m.transaction_of)
            for m in messages
        ]
        deletes = [(seq,) for seq in delete]

        def insert(db: sqlite3.Connection) -> list[int]:
            seqs: list[int] = []
            db.execute("BEGIN IMMEDIATE")
            try:
                if deletes:
                    db.executemany("DELETE FROM ocpp_outbox WHERE seq = ?", deletes)
                for row in rows:
                    cursor = db.execute(
                        "INSERT INTO ocpp_outbox (station, protocol, action, payload, created,"
                        " transaction_of) VALUES (?, ?, ?, ?, ?, ?)",
                        row,
                    )
                    assert cursor.lastrowid is not None
                    seqs.append(cursor.lastrowid)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return seqs

        seqs = await self._run(insert)
        return [
            StoredMessage(
                seq=seq,
                station=station,
                protocol=m.protocol,
                action=m.action,
                payload=m.payload,
                created=m.created,
                transaction_of=m.transaction_of,
            )
            for seq, m in zip(seqs, messages, strict=True)
        ]

    async def apply(
        self, *, delete: Collection[int] = (), update: Sequence[StoredMessage] = ()
    ) -> None:
        if not delete and not update:
            await trio.lowlevel.checkpoint()
            return
        deletes = [(seq,) for seq in delete]
        updates = [(_dumps(m.payload), m.attempts, m.transaction_of, m.seq) for m in update]

        def apply(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                if deletes:
                    db.executemany("DELETE FROM ocpp_outbox WHERE seq = ?", deletes)
                if updates:
                    db.executemany(
                        "UPDATE ocpp_outbox SET payload = ?, attempts = ?, transaction_of = ?"
                        " WHERE seq = ?",
                        updates,
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        await self._run(apply)

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        async with self._limiter:  # after the statement running now, if any
            db, self._db = self._db, None
            if db is not None:
                db.close()
