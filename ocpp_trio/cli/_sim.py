"""A simulated charging station: the version-independent half.

Theory of operation.  :meth:`SimulatedStation.run` connects with
``open_ocpp_client`` (reconnecting on by default) and runs the scenario in a
cancel scope whose deadline is the end of ``--duration``:

1. BootNotification, repeated after the answer's ``interval`` while the CSMS
   answers Pending or Rejected; once Accepted, heartbeats start at the
   interval the CSMS gave (or ``heartbeat_interval``; a ChangeConfiguration /
   SetVariables of the heartbeat interval takes effect at once);
2. StatusNotification Available and one Heartbeat (scenario ``boot`` ends here);
3. scenario ``charge``: a charging session (status, Authorize, start,
   ``meter_values`` samples every ``meter_interval`` s, stop, status).

With ``repeat`` the session is repeated until the deadline; otherwise the
station stays connected until the deadline (answering the CSMS, sending
heartbeats), or leaves at once when there is none.  At the deadline an open
transaction is stopped (reason Other) within a bound before the connection
closes.  The CSMS's calls are answered all along by the handlers of the
version subclasses (``_sim_v16.py``, ``_sim_v2x.py``); what they start
(remote sessions, triggered messages, a simulated reboot) runs as tasks of the
station's nursery, guarded so that a failure there is counted, not fatal.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import trio

from .._core.errors import CallTimeout, OCPPError
from .._rpc.state import ConnectionState
from ..client import OCPPClient, open_ocpp_client
from ..events import CallResultEvent, CloseEvent, OpenEvent, ReconnectEvent
from ..outbox import OutboxHandle
from ..routing import HandlerContext
from ._common import describe_error, utc_now
from ._output import MessageLog, Printer

Scenario = Literal["boot", "charge"]
#: Why a transaction ends, in the simulator's words; each version maps them.
StopReason = Literal["local", "remote", "reset", "other", "deauthorized"]

#: Bound on stopping an open transaction when the run ends.
WIND_DOWN: Final = 5.0
ENERGY: Final = "Energy.Active.Import.Register"
POWER: Final = "Power.Active.Import"


class ScenarioFailed(Exception):
    """The CSMS answered, but not what the scenario needs (e.g. an idTag was refused)."""


@dataclass(kw_only=True)
class StationOptions:
    """How every simulated station behaves.

    Attributes:
        protocol: the subprotocol to offer.
        scenario: ``boot`` or ``charge``.
        meter_values: samples per charging session.
        meter_interval: seconds between samples.
        heartbeat_interval: override the CSMS's interval (seconds); None: the CSMS's.
        repeat: repeat the charging session until the deadline.
        pause: seconds between repeated sessions.
        id_tag: the id tag (1.6) / idToken (2.x) presented.
        speed: simulated seconds of charging per real second (energy accrues faster).
        vendor, model: what BootNotification reports.
        client_options: keyword arguments for ``open_ocpp_client``.
    """

    protocol: str = "ocpp1.6"
    scenario: Scenario = "boot"
    meter_values: int = 3
    meter_interval: float = 1.0
    heartbeat_interval: float | None = None
    repeat: bool = False
    pause: float = 1.0
    id_tag: str = "TAG-0001"
    speed: float = 1.0
    vendor: str = "ocpp_trio"
    model: str = "Simulator"
    client_options: dict[str, Any] = field(default_factory=dict)


class Session:
    """One charging session, from the start request to StopTransaction / Ended."""

    def __init__(
        self,
        id_tag: str,
        *,
        authorize: bool = True,
        samples: int | None = None,
        remote_start_id: int | None = None,
        transaction_id: str | None = None,
    ) -> None:
        self.id_tag = id_tag
        self.authorize = authorize
        self.samples = samples
        self.remote_start_id = remote_start_id
        self.transaction_id = transaction_id
        self.stop_requested = trio.Event()
        self.stop_reason: StopReason = "local"
        self.done = trio.Event()

    def request_stop(self, reason: StopReason) -> None:
        """Ask the session to stop at its next sample."""
        if not self.stop_requested.is_set():
            self.stop_reason = reason
            self.stop_requested.set()


class SimulatedStation:
    """One simulated station (subclassed per OCPP version).

    Args:
        endpoint: the CSMS URL (the identity is appended).
        identity: the station identity.
        options: shared behaviour.
        log: counts (and prints) the frames of every station.
        printer: where milestones go (None: nowhere).
    """

    #: the connector this station simulates (1.6 connectorId, 2.x evse 1 connector 1)
    CONNECTOR: Final = 1

    def __init__(
        self,
        endpoint: str,
        identity: str,
        options: StationOptions,
        *,
        log: MessageLog,
        printer: Printer | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.identity = identity
        self.options = options
        self.log = log
        self.printer = printer
        rng = rng or random.Random()
        self._rng = rng
        self.power_w = rng.choice((7400.0, 11000.0, 22000.0))
        self.energy_wh = float(rng.randrange(0, 500_000))
        self.client: OCPPClient | None = None
        self.step = "connect"
        self.completed = False
        self.failure: str | None = None
        #: the exception that ended the run, when one did
        self.error: BaseException | None = None
        self.booted = False
        #: charging sessions whose transaction was stopped (cut short ones included)
        self.sessions = 0
        #: of those, the sessions stopped early by the end of the run (duration, Ctrl-C)
        self.cut_short = 0
        #: where the scenario was when Ctrl-C stopped it, if it had not completed
        self.stopped_at: str | None = None
        self.calls = 0
        self.failed_calls = 0
        self.failures: Counter[str] = Counter()
        self.answered = 0
        # until the CSMS says otherwise at boot (what GetConfiguration reports before)
        self.heartbeat_interval = options.heartbeat_interval or 300.0
        self.meter_interval = options.meter_interval
        self.session: Session | None = None
        self.open_transaction: str | None = None
        self.last_queued: OutboxHandle | None = None  # with --outbox: the last message queued
        self._interval_changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._interrupted = False

    @property
    def interrupted(self) -> bool:
        """Whether the run was stopped early (Ctrl-C) rather than by its end."""
        return self._interrupted

    # --- to be provided per version ---------------------------------------------

    def register_handlers(self, client: OCPPClient) -> None:
        """Register the answers to the CSMS's calls: the version's own and the common ones."""
        answers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "Reset": self._reset,
            **self.version_answers(),
            "ChangeAvailability": lambda p: {"status": "Accepted"},
            "UnlockConnector": lambda p: {"status": "Unlocked"},
            "ClearCache": lambda p: {"status": "Accepted"},
            "DataTransfer": lambda p: {"status": "UnknownVendorId"},
        }
        for action, answer in answers.items():
            client.handle(action, self._counted(answer))

    def _counted(
        self, answer: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[HandlerContext], dict[str, Any]]:
        def handler(ctx: HandlerContext) -> dict[str, Any]:
            self.answered += 1
            return answer(ctx.params)

        return handler

    def _reset(self, params: dict[str, Any]) -> dict[str, Any]:
        self.reboot("RemoteReset")
        return {"status": "Accepted"}

    def version_answers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        """The answers this version adds (action -> params -> result)."""
        raise NotImplementedError

    def boot_payload(self, reason: str) -> dict[str, Any]:
        """The BootNotification request."""
        raise NotImplementedError

    async def send_status(self, status: str) -> None:
        """StatusNotification of the connector, in this version's terms ("Available", "Occupied")."""
        raise NotImplementedError

    async def authorize(self, id_tag: str) -> None:
        """Authorize; raise ScenarioFailed unless Accepted."""
        raise NotImplementedError

    async def start_transaction(self, session: Session) -> None:
        """Start the transaction (sets ``open_transaction``); raise ScenarioFailed if refused."""
        raise NotImplementedError

    async def send_meter_values(self, session: Session | None, context: str) -> None:
        """One sample: in the transaction when there is one, else a plain MeterValues."""
        raise NotImplementedError

    async def stop_transaction(self, reason: StopReason) -> None:
        """Stop ``open_transaction`` (and clear it)."""
        raise NotImplementedError

    # --- calls and tasks -----------------------------------------------------------

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        transaction_of: OutboxHandle | None = None,
    ) -> dict[str, Any]:
        """``client.call`` with the books kept: calls, failures by kind.

        With an outbox (``--outbox``), what it queues is stored first; while
        the station is offline the scenario does not wait for the answer
        (``{}`` then; ``last_queued`` is the message's handle) and goes on.
        """
        assert self.client is not None
        self.calls += 1
        try:
            outbox = self.client.outbox
            if outbox is not None and (
                transaction_of is not None or outbox.routes(action, payload)
            ):
                return await self._through_outbox(action, payload, transaction_of)
            return await self.client.call(action, payload)
        except Exception as exc:
            self.failed_calls += 1
            self.failures[type(exc).__name__] += 1
            raise

    async def _through_outbox(
        self, action: str, payload: dict[str, Any], transaction_of: OutboxHandle | None
    ) -> dict[str, Any]:
        client = self.client
        assert client is not None
        handle = await client.enqueue(action, payload, transaction_of=transaction_of)
        self.last_queued = handle
        if client.state is not ConnectionState.OPEN:
            self.note("queued", f"{action} queued offline (outbox seq {handle.seq})")
            return {}
        timeout = client.options.call_timeout
        with trio.move_on_after(timeout):
            return await handle.result()
        raise CallTimeout(f"{action}: not delivered within {timeout:g} s; it stays queued")

    def note(self, event: str, text: str, **fields: Any) -> None:
        """A milestone line."""
        if self.printer is not None:
            self.printer.event(self.identity, event, text, **fields)

    def spawn(self, fn: Callable[[], Awaitable[object]], what: str) -> None:
        """Run ``fn`` in the station's nursery; a failure there is noted, not fatal."""
        if self._nursery is None:
            return

        async def guarded() -> None:
            try:
                await fn()
            except (
                OCPPError,
                ScenarioFailed,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
                KeyError,
                TypeError,
                ValueError,
            ) as exc:
                self.note("task_failed", f"{what} failed: {describe_error(exc)}", error=str(exc))

        self._nursery.start_soon(guarded)

    def set_heartbeat_interval(self, seconds: float) -> None:
        """Change the heartbeat period (0: no heartbeats); takes effect at once."""
        self.heartbeat_interval = max(0.0, seconds)
        self._interval_changed.set()

    def accrue(self, seconds: float) -> None:
        """Add the energy of ``seconds`` of charging at this station's power."""
        self.energy_wh += self.power_w * seconds * self.options.speed / 3600

    # --- running -----------------------------------------------------------------

    def stop(self) -> None:
        """End the run now (Ctrl-C): the scenario is cancelled, the wind-down still runs."""
        self._interrupted = True
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, deadline: float = math.inf, *, start_delay: float = 0.0) -> None:
        """Connect, run the scenario until ``deadline`` (trio time), wind down; never raises.

        The outcome is in ``completed`` and ``failure``.
        """
        try:
            if start_delay:
                await trio.sleep(start_delay)
            async with open_ocpp_client(
                self.endpoint,
                identity=self.identity,
                protocols=[self.options.protocol],
                **self.options.client_options,
            ) as client:
                self.client = client
                self.log.attach(client, self.identity)
                self._watch(client)
                self.register_handlers(client)
                self.note("connected", f"connected ({client.protocol})", protocol=client.protocol)
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await self._active(deadline)
                    if self.open_transaction is not None:
                        # the session in progress is cut short: its transaction
                        # is stopped, so the CSMS's books and ours agree
                        with trio.move_on_after(WIND_DOWN):
                            try:
                                await self.stop_transaction("other")
                            except OCPPError as exc:
                                self.note("stop_failed", f"stopping failed: {describe_error(exc)}")
                            else:
                                self.sessions += 1
                                self.cut_short += 1
                    nursery.cancel_scope.cancel()
        except (OCPPError, OSError, trio.BrokenResourceError, ValueError) as exc:
            if self.failure is None:
                self.error = exc
                self.failure = f"{self.step}: {describe_error(exc)}"
        finally:
            self._nursery = None
        if self.failure is not None and self.step != "connect":
            self.note("failed", f"failed: {self.failure}", reason=self.failure)

    async def _active(self, deadline: float) -> None:
        with trio.CancelScope(deadline=deadline) as scope:
            self._scope = scope
            try:
                await self._scenario()
                self.completed = True
                self.step = "done"
                self.note("completed", f"scenario {self.options.scenario} completed")
                if self.options.repeat:
                    while True:
                        # stations drift apart, as real ones do
                        await trio.sleep(self.options.pause * self._rng.uniform(0.5, 1.5))
                        await self.charge(self._scripted_session())
                elif deadline < math.inf:
                    await trio.sleep_forever()
            except (OCPPError, ScenarioFailed) as exc:
                self.failure = f"{self.step}: {describe_error(exc)}"
            except (KeyError, TypeError, ValueError) as exc:
                # a CSMS without strict validation answered something the scenario cannot use
                self.failure = f"{self.step}: unexpected answer ({type(exc).__name__}: {exc})"
        if not self.completed and self.failure is None:
            if self._interrupted:
                # stopped on purpose (Ctrl-C): not a failure, but not complete either
                self.stopped_at = self.step
            else:
                self.failure = f"{self.step}: not completed within the duration"

    def _accept_boot(self, interval: int) -> None:
        self.booted = True
        chosen = self.options.heartbeat_interval
        self.set_heartbeat_interval(interval if chosen is None else chosen)

    def _watch(self, client: OCPPClient) -> None:
        def on_call_result(ev: CallResultEvent) -> None:
            # An accepted boot takes effect as its answer is read, before the
            # frames after it (boot() resumes only later): a CSMS that asks
            # for the configuration right after accepting gets its interval.
            result = ev.result
            if ev.outbound or ev.method != "BootNotification":
                return
            if result.get("status") == "Accepted":
                try:
                    self._accept_boot(int(result.get("interval", 0)))
                except (TypeError, ValueError):
                    pass  # boot() reports the unusable answer

        last_close: list[CloseEvent] = []

        def on_reconnect(ev: ReconnectEvent) -> None:
            # the cause: the failed attempt's error, else how the connection closed
            if ev.error is not None:
                cause = describe_error(ev.error)
            elif last_close:
                closed = last_close[-1]
                by = "closed by the CSMS" if closed.by_peer else "closed"
                if closed.code == 1006:
                    by = "the connection dropped"
                cause = f"{by} ({closed.code}{': ' + closed.reason if closed.reason else ''})"
            else:
                cause = "connection lost"
            last_close.clear()
            self.note(
                "reconnecting",
                f"{cause}; reconnecting in {ev.delay:.1f} s (attempt {ev.attempt})",
                attempt=ev.attempt,
                cause=cause,
            )

        def on_open(ev: OpenEvent) -> None:
            if ev.reconnected:
                self.note("reconnected", "reconnected")

        def on_close(ev: CloseEvent) -> None:
            last_close.append(ev)
            if ev.by_peer:
                self.note("closed", f"closed by the CSMS ({ev.code})", code=ev.code)

        client.on("call_result", on_call_result)
        client.on("reconnect", on_reconnect)
        client.on("open", on_open)
        client.on("close", on_close)

    async def _scenario(self) -> None:
        await self.boot("PowerUp")
        assert self._nursery is not None
        self._nursery.start_soon(self._heartbeats)
        self.step = "StatusNotification"
        await self.send_status("Available")
        self.step = "Heartbeat"
        await self.call("Heartbeat", {})
        if self.options.scenario == "charge":
            await self.charge(self._scripted_session())

    def _scripted_session(self) -> Session:
        return Session(self.options.id_tag, samples=self.options.meter_values)

    async def boot(self, reason: str) -> None:
        """BootNotification until Accepted (retrying after the CSMS's interval)."""
        self.step = "BootNotification"
        self.booted = False
        while True:
            result = await self.call("BootNotification", self.boot_payload(reason))
            status, interval = result["status"], int(result.get("interval", 0))
            if status == "Accepted":
                self._accept_boot(interval)
                self.note(
                    "booted",
                    f"booted: Accepted, heartbeat every {self.heartbeat_interval:g} s",
                    interval=self.heartbeat_interval,
                )
                return
            retry = interval if interval > 0 else 10
            self.note("boot_pending", f"boot {status}, retrying in {retry} s", status=status)
            await trio.sleep(retry)

    async def _heartbeats(self) -> None:
        while True:
            self._interval_changed = trio.Event()
            period = self.heartbeat_interval
            with trio.move_on_after(period if period > 0 else math.inf):
                await self._interval_changed.wait()
                continue  # the interval changed: start a new period
            try:
                await self.call("Heartbeat", {})
            except OCPPError as exc:
                self.note("heartbeat_failed", f"Heartbeat failed: {describe_error(exc)}")

    async def charge(self, session: Session) -> None:
        """Run one charging session to its end (waits for a session already running)."""
        while self.session is not None:
            await self.session.done.wait()
        self.session = session
        try:
            self.step = "StatusNotification"
            await self.send_status("Occupied")
            if session.authorize:
                self.step = "Authorize"
                await self.authorize(session.id_tag)
            self.step = "start transaction"
            await self.start_transaction(session)
            self.note(
                "transaction_started",
                f"transaction {self.open_transaction} started",
                transaction=self.open_transaction,
            )
            self.step = "meter values"
            taken = 0
            last = time.perf_counter()
            while session.samples is None or taken < session.samples:
                with trio.move_on_after(max(self.meter_interval, 0.01)):
                    await session.stop_requested.wait()
                now = time.perf_counter()
                self.accrue(now - last)
                last = now
                if session.stop_requested.is_set():
                    break
                await self.send_meter_values(session, "Sample.Periodic")
                taken += 1
            self.step = "stop transaction"
            tx = self.open_transaction
            await self.stop_transaction(session.stop_reason)
            self.sessions += 1
            self.note(
                "transaction_stopped",
                f"transaction {tx} stopped ({session.stop_reason}), meter {self.energy_wh / 1000:.2f} kWh",
                transaction=tx,
                reason=session.stop_reason,
            )
            self.step = "StatusNotification"
            await self.send_status("Available")
        finally:
            self.session = None
            session.done.set()

    def remote_start(self, session: Session) -> bool:
        """A CSMS asked to start a session: start it in the background when possible."""
        if not self.booted or self.session is not None or self._nursery is None:
            return False
        self.spawn(lambda: self.charge(session), "remote start")
        return True

    def remote_stop(self, transaction_id: str) -> bool:
        """A CSMS asked to stop a transaction: ask the session when it is ours."""
        session = self.session
        if session is None or self.open_transaction != transaction_id:
            return False
        session.request_stop("remote")
        return True

    def reboot(self, reason: str) -> None:
        """Simulate a reset: end the session, then boot again (the connection stays)."""

        async def reboot() -> None:
            session = self.session
            if session is not None:
                session.request_stop("reset")
                await session.done.wait()
            await trio.sleep(0.1)
            await self.boot(reason)
            await self.send_status("Available")

        self.spawn(reboot, "reset")

    def now(self) -> str:
        """The station's clock, RFC 3339."""
        return utc_now()
