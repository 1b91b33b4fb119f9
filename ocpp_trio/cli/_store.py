"""The state of ``ocpp-trio serve``, in an embedded SQLite database.

Tables (inspect them with ``sqlite3 FILE``):

- ``stations``: one row per identity ever seen: protocol, connected, remote
  address, what its BootNotification said, boots, first/last seen.
- ``connectors``: the last StatusNotification per connector; ``connector``
  is ``"1"`` (1.6 connectorId) or ``"1/1"`` (2.x evseId/connectorId).
- ``transactions``: one row per transaction: the station's id for it (1.6:
  the integer we handed out; 2.x: the station's string), id tag, start/stop
  time, meter start/last/stop in Wh, energy, stop reason, state
  (``active``/``finished``).
- ``meter_values``: the last sample per station, connector (1.6
  connectorId, 2.x evseId), measurand and phase.
- ``configuration``: what GetConfiguration / GetVariables / NotifyReport
  told us, per station, component and key.

Writes are plain ``sqlite3`` calls on the event loop's thread: each is a few
microseconds (no fsync: commits happen in :meth:`Store.commit`, which the
server calls once a second, and the file runs in WAL mode so that a reader
never blocks us).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any, Final

from ._common import CLIError, utc_now

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS stations (
    identity TEXT PRIMARY KEY,
    protocol TEXT,
    connected INTEGER NOT NULL DEFAULT 0,
    remote TEXT,
    vendor TEXT,
    model TEXT,
    serial_number TEXT,
    firmware_version TEXT,
    boot_status TEXT,
    boots INTEGER NOT NULL DEFAULT 0,
    first_seen TEXT,
    last_seen TEXT,
    last_heartbeat TEXT,
    close_code INTEGER
);
CREATE TABLE IF NOT EXISTS connectors (
    identity TEXT NOT NULL,
    connector TEXT NOT NULL,
    status TEXT,
    error_code TEXT,
    updated TEXT,
    PRIMARY KEY (identity, connector)
);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    connector TEXT,
    id_tag TEXT,
    started TEXT,
    stopped TEXT,
    meter_start_wh REAL,
    meter_last_wh REAL,
    meter_stop_wh REAL,
    energy_wh REAL,
    stop_reason TEXT,
    state TEXT NOT NULL DEFAULT 'active',
    UNIQUE (identity, transaction_id)
);
CREATE TABLE IF NOT EXISTS meter_values (
    identity TEXT NOT NULL,
    connector TEXT NOT NULL,
    measurand TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT '',
    value REAL,
    unit TEXT,
    timestamp TEXT,
    transaction_id TEXT,
    PRIMARY KEY (identity, connector, measurand, phase)
);
CREATE TABLE IF NOT EXISTS configuration (
    identity TEXT NOT NULL,
    component TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    readonly INTEGER,
    updated TEXT,
    PRIMARY KEY (identity, component, key)
);
"""

ENERGY: Final = "Energy.Active.Import.Register"


def energy_wh(value: float, unit: str | None) -> float:
    """A meter reading in Wh (``kWh`` readings are scaled)."""
    return value * 1000 if unit == "kWh" else value


class Store:
    """The CSMS's SQLite database; ``":memory:"`` by default.

    Raises:
        CLIError: the file cannot be opened or is not a database.
    """

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, isolation_level="DEFERRED")
            if path != ":memory:":
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            # Nobody is connected when the server starts.
            self.db.execute("UPDATE stations SET connected = 0")
            self.db.commit()
        except sqlite3.Error as exc:
            raise CLIError(f"cannot use {path} as the database: {exc}", 2) from None
        self.dirty = False

    def close(self) -> None:
        """Commit and close."""
        self.commit()
        self.db.close()

    def commit(self) -> None:
        """Commit what was written since the last commit."""
        if self.dirty:
            self.db.commit()
            self.dirty = False

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        self.dirty = True
        return self.db.execute(sql, tuple(params))

    # --- stations ----------------------------------------------------------------

    def connected(self, identity: str, protocol: str, remote: str | None) -> None:
        """A station opened a connection."""
        now = utc_now()
        self._exec(
            "INSERT INTO stations (identity, protocol, connected, remote, first_seen, last_seen) "
            "VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (identity) DO UPDATE SET "
            "protocol = excluded.protocol, connected = 1, remote = excluded.remote, "
            "last_seen = excluded.last_seen, close_code = NULL",
            (identity, protocol, remote, now, now),
        )

    def disconnected(self, identity: str, code: int) -> None:
        """A station's connection closed."""
        self._exec(
            "UPDATE stations SET connected = 0, close_code = ?, last_seen = ? WHERE identity = ?",
            (code, utc_now(), identity),
        )

    def booted(
        self,
        identity: str,
        *,
        vendor: str | None,
        model: str | None,
        serial_number: str | None,
        firmware_version: str | None,
        status: str,
    ) -> None:
        """A BootNotification arrived (and was answered with ``status``)."""
        self._exec(
            "UPDATE stations SET vendor = ?, model = ?, serial_number = ?, firmware_version = ?, "
            "boot_status = ?, boots = boots + 1, last_seen = ? WHERE identity = ?",
            (vendor, model, serial_number, firmware_version, status, utc_now(), identity),
        )

    def heartbeat(self, identity: str) -> None:
        """A Heartbeat arrived."""
        now = utc_now()
        self._exec(
            "UPDATE stations SET last_heartbeat = ?, last_seen = ? WHERE identity = ?",
            (now, now, identity),
        )

    def status(self, identity: str, connector: str, status: str, error_code: str | None) -> None:
        """A StatusNotification arrived."""
        self._exec(
            "INSERT INTO connectors (identity, connector, status, error_code, updated) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (identity, connector) DO UPDATE SET "
            "status = excluded.status, error_code = excluded.error_code, updated = excluded.updated",
            (identity, connector, status, error_code, utc_now()),
        )

    # --- transactions ----------------------------------------------------------------

    def start_transaction(
        self,
        identity: str,
        *,
        transaction_id: str | None,
        connector: str | None,
        id_tag: str | None,
        meter_start_wh: float | None,
        timestamp: str | None,
    ) -> str:
        """Record a started transaction; returns its id (a new integer id when None is given)."""
        cursor = self._exec(
            "INSERT INTO transactions (identity, transaction_id, connector, id_tag, started, "
            "meter_start_wh, meter_last_wh) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (identity, transaction_id) DO NOTHING",
            (
                identity,
                transaction_id or "",
                connector,
                id_tag,
                timestamp or utc_now(),
                meter_start_wh,
                meter_start_wh,
            ),
        )
        if transaction_id is None:
            row_id = cursor.lastrowid
            assert row_id is not None
            self._exec(
                "UPDATE transactions SET transaction_id = ? WHERE id = ?", (str(row_id), row_id)
            )
            return str(row_id)
        return transaction_id

    def has_transaction(self, identity: str, transaction_id: str) -> bool:
        """Whether the transaction is known."""
        row = self.db.execute(
            "SELECT 1 FROM transactions WHERE identity = ? AND transaction_id = ?",
            (identity, transaction_id),
        ).fetchone()
        return row is not None

    def connector_of(self, identity: str, transaction_id: str) -> str:
        """The connector a transaction runs on, ``""`` when unknown."""
        row = self.db.execute(
            "SELECT connector FROM transactions WHERE identity = ? AND transaction_id = ?",
            (identity, transaction_id),
        ).fetchone()
        return str(row[0]) if row is not None and row[0] is not None else ""

    def meter(
        self,
        identity: str,
        connector: str,
        transaction_id: str | None,
        samples: Iterable[tuple[str, str, float, str | None, str]],
    ) -> None:
        """Store the last value per measurand; samples are (measurand, phase, value, unit, timestamp)."""
        for measurand, phase, value, unit, timestamp in samples:
            self._exec(
                "INSERT INTO meter_values (identity, connector, measurand, phase, value, unit, "
                "timestamp, transaction_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (identity, connector, measurand, phase) DO UPDATE SET "
                "value = excluded.value, unit = excluded.unit, timestamp = excluded.timestamp, "
                "transaction_id = excluded.transaction_id",
                (identity, connector, measurand, phase, value, unit, timestamp, transaction_id),
            )
            if transaction_id is not None and measurand == ENERGY and not phase:
                wh = energy_wh(value, unit)
                self._exec(
                    "UPDATE transactions SET meter_last_wh = ?, "
                    "meter_start_wh = COALESCE(meter_start_wh, ?), "
                    "energy_wh = ? - COALESCE(meter_start_wh, ?) "
                    "WHERE identity = ? AND transaction_id = ?",
                    (wh, wh, wh, wh, identity, transaction_id),
                )

    def stop_transaction(
        self,
        identity: str,
        transaction_id: str,
        *,
        meter_stop_wh: float | None,
        reason: str | None,
        timestamp: str | None,
    ) -> None:
        """Record the end of a transaction."""
        self._exec(
            "UPDATE transactions SET state = 'finished', stopped = ?, stop_reason = ?, "
            "meter_stop_wh = COALESCE(?, meter_last_wh), "
            "meter_last_wh = COALESCE(?, meter_last_wh), "
            "energy_wh = COALESCE(?, meter_last_wh) - COALESCE(meter_start_wh, 0) "
            "WHERE identity = ? AND transaction_id = ?",
            (
                timestamp or utc_now(),
                reason,
                meter_stop_wh,
                meter_stop_wh,
                meter_stop_wh,
                identity,
                transaction_id,
            ),
        )

    # --- configuration -----------------------------------------------------------------

    def configuration(
        self, identity: str, items: Iterable[tuple[str, str, str | None, bool | None]]
    ) -> None:
        """Store configuration items: (component, key, value, readonly)."""
        now = utc_now()
        for component, key, value, readonly in items:
            self._exec(
                "INSERT INTO configuration (identity, component, key, value, readonly, updated) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (identity, component, key) DO UPDATE SET "
                "value = excluded.value, readonly = excluded.readonly, updated = excluded.updated",
                (identity, component, key, value, readonly, now),
            )

    # --- reading (the demo view, summaries) ---------------------------------------------

    def overview(self) -> dict[str, Any]:
        """Counts for a summary: stations, connected, transactions, energy."""
        stations, connected = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(connected), 0) FROM stations"
        ).fetchone()
        transactions, finished, energy = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(state = 'finished'), 0), COALESCE(SUM(energy_wh), 0) "
            "FROM transactions"
        ).fetchone()
        return {
            "stations": stations,
            "connected": connected,
            "transactions": transactions,
            "finished_transactions": finished,
            "energy_wh": float(energy),
        }

    def station_rows(self) -> list[dict[str, Any]]:
        """One row per station: protocol, connected, connector status, open transaction, energy."""
        rows = self.db.execute(
            "SELECT s.identity, s.protocol, s.connected, s.boot_status, "
            "(SELECT status FROM connectors c WHERE c.identity = s.identity "
            " ORDER BY c.connector = '0', c.updated DESC LIMIT 1), "
            "(SELECT transaction_id FROM transactions t WHERE t.identity = s.identity "
            " AND t.state = 'active' ORDER BY t.id DESC LIMIT 1), "
            "(SELECT COUNT(*) FROM transactions t WHERE t.identity = s.identity), "
            "(SELECT COALESCE(SUM(energy_wh), 0) FROM transactions t WHERE t.identity = s.identity) "
            "FROM stations s ORDER BY length(s.identity), s.identity"
        ).fetchall()
        return [
            {
                "identity": r[0],
                "protocol": r[1],
                "connected": bool(r[2]),
                "boot_status": r[3],
                "status": r[4],
                "transaction": r[5],
                "transactions": r[6],
                "energy_wh": float(r[7]),
            }
            for r in rows
        ]
