"""``ocpp-trio demo``: the CSMS of ``serve`` and the stations of ``station``, in one process.

The CSMS listens on a free loopback port with strict validation on; the
stations (OCPP 1.6, 2.0.1 and 2.1 in turn, or one version with
``--protocol``) boot, report their status, answer the CSMS's configuration
request (GetConfiguration on 1.6, GetBaseReport then NotifyReport on 2.x) and
charge, session after session, until ``--duration`` ends.  Energy accrues
sixty times faster than real time so that the meters move.

On a terminal the view is redrawn in place four times a second (plain ANSI:
cursor up, erase); otherwise one status line per second is printed.  A
summary ends the run; the exit status is 0 when every station completed its
scenario and no error was seen.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from functools import partial
from typing import Final, TextIO

import trio

from .._core.errors import ValidationError
from .._core.validation import SUPPORTED_PROTOCOLS, get_validator
from ..server import serve_ocpp
from ._common import format_percentiles
from ._csms import CSMSApp
from ._output import MessageLog
from ._sim import StationOptions
from ._store import Store
from .station import Fleet, make_station, sessions_text

#: Rows of the live view before "... and N more".
MAX_ROWS: Final = 20
WARM_UP_ACTIONS: Final = (
    "BootNotification",
    "Heartbeat",
    "StatusNotification",
    "Authorize",
    "StartTransaction",
    "StopTransaction",
    "MeterValues",
    "TransactionEvent",
    "GetConfiguration",
    "GetBaseReport",
    "NotifyReport",
)


class View:
    """What the demo shows while it runs."""

    def __init__(
        self,
        out: TextIO,
        *,
        live: bool,
        app: CSMSApp,
        fleet: Fleet,
        url: str,
        duration: float,
    ) -> None:
        self.out = out
        self.live = live
        self.app = app
        self.fleet = fleet
        self.url = url
        self.duration = duration
        self.started = time.perf_counter()
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])
        self._drawn = 0

    def rate(self) -> float:
        """Messages per second over the last second (CSMS side, both directions)."""
        now = time.perf_counter()
        total = self.app.log.total
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[0][0] > 1.0:
            self._samples.popleft()
        t0, n0 = self._samples[0]
        return (total - n0) / (now - t0) if now > t0 else 0.0

    def errors(self) -> int:
        """Errors on both sides: CALLERRORs, bad frames, invalid answers, failed calls."""
        return self.app.log.errors + self.fleet.log.errors

    async def run(self) -> None:
        """Refresh until cancelled."""
        period = 0.25 if self.live else 1.0
        if self.live:
            self.out.write("\x1b[?25l")  # hide the cursor
        try:
            while True:
                await trio.sleep(period)
                self.show()
        finally:
            if self.live:
                self.out.write("\x1b[?25h")
                self.out.flush()

    def show(self) -> None:
        """Draw the view once (a frame on a terminal, a line otherwise)."""
        elapsed = time.perf_counter() - self.started
        rate = self.rate()
        if not self.live:
            o = self.app.store.overview()
            charging = sum(1 for s in self.fleet.stations if s.open_transaction is not None)
            self.out.write(
                f"[{elapsed:5.1f} s] stations {o['connected']}/{len(self.fleet.stations)} "
                f"connected, {charging} charging, {o['transactions']} transactions; "
                f"{rate:.0f} msg/s, {self.app.log.total} messages, {self.errors()} errors\n"
            )
            self.out.flush()
            return
        self._draw(self.frame(elapsed, rate))

    def frame(self, elapsed: float, rate: float) -> list[str]:
        """The lines of one frame of the live view."""
        rows = self.app.store.station_rows()
        lines = [
            f"ocpp-trio demo: CSMS on {self.url}, {len(self.fleet.stations)} stations"
            f"   {min(elapsed, self.duration):4.1f} s / {self.duration:g} s",
            "",
            f" {'station':<10} {'protocol':<10} {'link':<4} {'connector':<10} "
            f"{'tx':<9} {'sessions':>8} {'energy':>9} {'msgs':>6}",
        ]
        per_identity = self.app.log.per_identity
        for row in rows[:MAX_ROWS]:
            tx = row["transaction"] or "-"
            if len(tx) > 8:
                tx = tx[:7] + "~"
            lines.append(
                f" {row['identity']:<10} {row['protocol'] or '?':<10} "
                f"{'up' if row['connected'] else 'down':<4} {row['status'] or '-':<10} "
                f"{tx:<9} {row['transactions']:>8} "
                f"{row['energy_wh'] / 1000:>5.1f} kWh {per_identity[row['identity']]:>6}"
            )
        if len(rows) > MAX_ROWS:
            lines.append(f" ... and {len(rows) - MAX_ROWS} more")
        lines += [
            "",
            f" messages {rate:5.0f}/s, {self.app.log.total} in all; errors {self.errors()}",
            f" latency of the stations' calls: "
            f"{format_percentiles(self.fleet.log.call_latency.percentiles((50, 99)))}",
        ]
        return lines

    def _draw(self, lines: Sequence[str]) -> None:
        width = max(20, shutil.get_terminal_size().columns - 1)
        parts = [f"\x1b[{self._drawn}F"] if self._drawn else []
        parts += [f"\x1b[2K{line[:width]}\n" for line in lines]
        parts.append("\x1b[J")
        self.out.write("".join(parts))
        self.out.flush()
        self._drawn = len(lines)


def summary_lines(
    app: CSMSApp, fleet: Fleet, protocols: Sequence[str], elapsed: float
) -> list[str]:
    """The closing summary."""
    versions = Counter(protocols)
    mix = ", ".join(f"{n} {p}" for p, n in versions.items())
    o = app.store.overview()
    s = fleet.summary()
    total = app.log.total
    errors = app.log.errors + fleet.log.errors
    booted = sum(st.booted for st in fleet.stations)
    lines = [
        f"demo summary: {len(fleet.stations)} stations ({mix}) and one CSMS, {elapsed:.1f} s",
        f"  stations   {booted} booted, {s['completed']} completed their scenario, "
        f"{len(s['failed'])} failed; "
        + sessions_text(s["sessions"], s["sessions_cut_short"], None),
        f"  messages   {total} ({total / elapsed if elapsed else 0:.0f}/s), {errors} errors",
        f"  calls      {s['calls']} from the stations, {s['answered']} from the CSMS; "
        f"latency {format_percentiles(fleet.log.call_latency.percentiles())}",
        f"  CSMS       {o['stations']} stations, {o['transactions']} transactions "
        f"({o['finished_transactions']} finished), {o['energy_wh'] / 1000:.1f} kWh delivered",
    ]
    lines += [f"  failed     {f['identity']}: {f['reason']}" for f in s["failed"]]
    return lines


async def run_demo(
    *,
    stations: int = 10,
    duration: float = 10.0,
    protocol: str = "mixed",
    out: TextIO | None = None,
    live: bool | None = None,
) -> int:
    """Run the demo; return 0 when every station completed and nothing failed."""
    stream = out if out is not None else sys.stdout
    is_live = stream.isatty() if live is None else live
    store = Store()
    app = CSMSApp(store, MessageLog(), heartbeat_interval=3, inventory="full")
    station_log = MessageLog()
    versions = SUPPORTED_PROTOCOLS if protocol == "mixed" else (protocol,)
    protocols = [versions[i % len(versions)] for i in range(stations)]
    for version in versions:
        _warm_up(version)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_ocpp,
                app.on_station,
                0,
                host="127.0.0.1",
                protocols=list(reversed(SUPPORTED_PROTOCOLS)),
                strict_mode=True,
            )
        )
        url = f"ws://127.0.0.1:{server.port}/ocpp"
        options = {
            p: StationOptions(
                protocol=p,
                scenario="charge",
                meter_values=4,
                # a session takes at most a fifth of the run, so that short runs complete too
                meter_interval=min(0.5, duration / 20),
                repeat=True,
                pause=min(0.5, duration / 20),
                speed=60.0,
                client_options={"strict_mode": True, "call_timeout": 5.0},
            )
            for p in versions
        }
        fleet = Fleet(
            [
                make_station(url, f"DEMO-{i + 1}", options[p], log=station_log, printer=None)
                for i, p in enumerate(protocols)
            ],
            station_log,
        )
        if not is_live:
            stream.write(
                f"demo: a CSMS on {url} and {stations} simulated stations, {duration:g} s\n"
            )
            stream.flush()
        # the run is timed from here: the CSMS's start-up (its strict-mode
        # validators built) is not part of it, so the rates are the run's own
        started = time.perf_counter()
        view = View(stream, live=is_live, app=app, fleet=fleet, url=url, duration=duration)
        async with trio.open_nursery() as view_nursery:
            view_nursery.start_soon(view.run)
            await fleet.run(duration, stagger=min(0.05, 1.0 / stations))
            view_nursery.cancel_scope.cancel()
        if is_live:
            view.show()
        with trio.move_on_after(5):
            await server.close()
        nursery.cancel_scope.cancel()
    elapsed = time.perf_counter() - started
    for line in summary_lines(app, fleet, protocols, elapsed):
        stream.write(line + "\n")
    store.close()
    stream.flush()
    errors = app.log.errors + station_log.errors
    return 0 if fleet.ok and errors == 0 else 1


def _warm_up(protocol: str) -> None:
    """Compile the schemas the demo uses now, so that the first calls' latency is not a compile's.

    Schemas compile on first use (``_core/validation.py``: 3-28 ms each).
    """
    validator = get_validator(protocol)
    for action in WARM_UP_ACTIONS:
        for direction in ("request", "response"):
            if validator.has_schema(action, direction):
                try:
                    validator.validate(action, direction, {})
                except ValidationError:
                    pass
