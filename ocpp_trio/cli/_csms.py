"""The CSMS behaviour of ``ocpp-trio serve`` and ``demo``: handlers, state, configuration requests.

A station's own messages are answered by sync handlers (answered in the
connection's reader task, no task per call) that also write what they learn
to the :class:`~._store.Store`.  Once the BootNotification answer is out, the
station is asked for its configuration (``inventory``); its failure to
answer is logged, never fatal.
"""

from __future__ import annotations

import itertools
from typing import Any, Final, Literal

import trio

from .._rpc.connection import OCPPConnection
from ..events import CallResultEvent, CloseEvent
from ..routing import HandlerContext
from ._common import describe_error, utc_now
from ._output import MessageLog, Printer
from ._store import ENERGY, Store

Inventory = Literal["none", "basic", "full"]

#: Configuration keys asked with ``--inventory basic`` (OCPP 1.6 core profile).
BASIC_KEYS_16: Final = (
    "HeartbeatInterval",
    "MeterValueSampleInterval",
    "NumberOfConnectors",
    "ConnectionTimeOut",
    "AuthorizeRemoteTxRequests",
)
#: (component, variable) pairs asked with ``--inventory basic`` on 2.x.
BASIC_VARIABLES_2X: Final = (
    ("OCPPCommCtrlr", "HeartbeatInterval"),
    ("SampledDataCtrlr", "TxUpdatedInterval"),
    ("AuthCtrlr", "AuthorizeRemoteStart"),
    ("SecurityCtrlr", "SecurityProfile"),
)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _samples_16(
    meter_values: list[dict[str, Any]],
) -> list[tuple[str, str, float, str | None, str]]:
    out = []
    for mv in meter_values:
        for sv in mv.get("sampledValue", ()):
            value = _float(sv.get("value"))
            if value is None:
                continue  # e.g. SignedData
            out.append(
                (
                    sv.get("measurand", ENERGY),
                    sv.get("phase", ""),
                    value,
                    sv.get("unit", "Wh"),
                    mv.get("timestamp", ""),
                )
            )
    return out


def _samples_2x(
    meter_values: list[dict[str, Any]],
) -> list[tuple[str, str, float, str | None, str]]:
    out = []
    for mv in meter_values:
        for sv in mv.get("sampledValue", ()):
            value = _float(sv.get("value"))
            if value is None:
                continue
            unit = (sv.get("unitOfMeasure") or {}).get("unit", "Wh")
            out.append(
                (
                    sv.get("measurand", ENERGY),
                    sv.get("phase", ""),
                    value,
                    unit,
                    mv.get("timestamp", ""),
                )
            )
    return out


def _energy(samples: list[tuple[str, str, float, str | None, str]]) -> float | None:
    for measurand, phase, value, unit, _ in samples:
        if measurand == ENERGY and not phase:
            return value * 1000 if unit == "kWh" else value
    return None


class CSMSApp:
    """The CSMS behaviour of ``serve`` and ``demo``: handlers, state, configuration requests.

    Args:
        store: where the state goes.
        log: counts (and prints) every frame.
        printer: where connect/disconnect lines go (None: nowhere).
        heartbeat_interval: the interval (s) a BootNotification answer gives.
        inventory: what to ask a station once it has booted: ``none``,
            ``basic`` (a few well-known settings: 1.6 GetConfiguration with
            keys, 2.x GetVariables) or ``full`` (1.6 GetConfiguration of
            every key, 2.x GetBaseReport, answered by NotifyReport).
    """

    def __init__(
        self,
        store: Store,
        log: MessageLog,
        *,
        printer: Printer | None = None,
        heartbeat_interval: int = 300,
        inventory: Inventory = "basic",
    ) -> None:
        self.store = store
        self.log = log
        self.printer = printer
        self.heartbeat_interval = heartbeat_interval
        self.inventory = inventory
        self._request_ids = itertools.count(1)

    async def on_station(self, conn: OCPPConnection) -> None:
        """Serve one station connection (runs in the connection's nursery)."""
        identity, protocol = conn.identity, conn.protocol
        remote = conn.handshake.remote
        where = f"{remote[0]}:{remote[1]}" if remote else None
        self.store.connected(identity, protocol, where)
        self.log.attach(conn, identity)
        if self.printer is not None:
            self.printer.event(
                identity,
                "connected",
                f"connected ({protocol}" + (f", from {where})" if where else ")"),
                protocol=protocol,
                remote=where,
            )

        def on_close(ev: CloseEvent) -> None:
            self.store.disconnected(identity, ev.code)
            if self.printer is not None:
                reason = f", {ev.reason}" if ev.reason else ""
                self.printer.event(
                    identity,
                    "disconnected",
                    f"disconnected ({ev.code}{reason})",
                    code=ev.code,
                    reason=ev.reason,
                )

        conn.on("close", on_close)
        booted = trio.Event()

        def on_answer(ev: CallResultEvent) -> None:
            # Ask for the configuration once the BootNotification answer is out.
            if ev.outbound and ev.method == "BootNotification":
                booted.set()

        conn.on("call_result", on_answer)
        if protocol == "ocpp1.6":
            self._handlers_16(conn)
        else:
            self._handlers_2x(conn)
        if self.inventory == "none":
            return
        await booted.wait()
        try:
            if protocol == "ocpp1.6":
                await self._inventory_16(conn)
            else:
                await self._inventory_2x(conn)
        except Exception as exc:  # the station's failure to answer is only logged
            if self.printer is not None:
                self.printer.event(
                    identity,
                    "inventory_failed",
                    f"asking the configuration failed: {describe_error(exc)}",
                    error=describe_error(exc),
                )

    # --- shared ----------------------------------------------------------------

    def _boot_answer(self) -> dict[str, Any]:
        return {"status": "Accepted", "currentTime": utc_now(), "interval": self.heartbeat_interval}

    def _heartbeat(self, ctx: HandlerContext) -> dict[str, Any]:
        self.store.heartbeat(ctx.connection.identity)
        return {"currentTime": utc_now()}

    @staticmethod
    def _data_transfer(ctx: HandlerContext) -> dict[str, Any]:
        # "If the recipient has no implementation for the specific vendorId it
        # SHALL return a status UnknownVendorId" (1.6 §4.3, 2.0.1 P01).
        return {"status": "UnknownVendorId"}

    @staticmethod
    def _empty(ctx: HandlerContext) -> dict[str, Any]:
        return {}

    # --- OCPP 1.6 ------------------------------------------------------------------

    def _handlers_16(self, conn: OCPPConnection) -> None:
        store, identity = self.store, conn.identity
        accepted = {"idTagInfo": {"status": "Accepted"}}

        def boot(ctx: HandlerContext) -> dict[str, Any]:
            p = ctx.params
            answer = self._boot_answer()
            store.booted(
                identity,
                vendor=p.get("chargePointVendor"),
                model=p.get("chargePointModel"),
                serial_number=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
                firmware_version=p.get("firmwareVersion"),
                status=answer["status"],
            )
            return answer

        def status(ctx: HandlerContext) -> dict[str, Any]:
            p = ctx.params
            store.status(identity, str(p["connectorId"]), p["status"], p.get("errorCode"))
            return {}

        def start(ctx: HandlerContext) -> dict[str, Any]:
            p = ctx.params
            tx = store.start_transaction(
                identity,
                transaction_id=None,
                connector=str(p["connectorId"]),
                id_tag=p.get("idTag"),
                meter_start_wh=_float(p.get("meterStart")),
                timestamp=p.get("timestamp"),
            )
            return {"transactionId": int(tx), **accepted}

        def stop(ctx: HandlerContext) -> dict[str, Any]:
            p = ctx.params
            tx = str(p["transactionId"])
            store.stop_transaction(
                identity,
                tx,
                meter_stop_wh=_float(p.get("meterStop")),
                reason=p.get("reason", "Local"),
                timestamp=p.get("timestamp"),
            )
            return accepted if "idTag" in p else {}

        def meter_values(ctx: HandlerContext) -> dict[str, Any]:
            p = ctx.params
            tx = p.get("transactionId")
            store.meter(
                identity,
                str(p["connectorId"]),
                None if tx is None else str(tx),
                _samples_16(p.get("meterValue") or []),
            )
            return {}

        conn.handle("BootNotification", boot)
        conn.handle("Heartbeat", self._heartbeat)
        conn.handle("StatusNotification", status)
        conn.handle("Authorize", lambda ctx: accepted)
        conn.handle("StartTransaction", start)
        conn.handle("StopTransaction", stop)
        conn.handle("MeterValues", meter_values)
        conn.handle("DataTransfer", self._data_transfer)
        for action in (
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
            "SecurityEventNotification",
            "LogStatusNotification",
            "SignedFirmwareStatusNotification",
        ):
            conn.handle(action, self._empty)

    async def _inventory_16(self, conn: OCPPConnection) -> None:
        params: dict[str, Any] = {} if self.inventory == "full" else {"key": list(BASIC_KEYS_16)}
        result = await conn.call("GetConfiguration", params)
        self.store.configuration(
            conn.identity,
            (
                ("", item["key"], item.get("value"), item.get("readonly"))
                for item in result.get("configurationKey") or ()
            ),
        )

    # --- OCPP 2.0.1 and 2.1 -----------------------------------------------------------

    def _handlers_2x(self, conn: OCPPConnection) -> None:
        store, identity = self.store, conn.identity
        accepted = {"idTokenInfo": {"status": "Accepted"}}

        def boot(ctx: HandlerContext) -> dict[str, Any]:
            station = ctx.params.get("chargingStation") or {}
            answer = self._boot_answer()
            store.booted(
                identity,
                vendor=station.get("vendorName"),
                model=station.get("model"),
                serial_number=station.get("serialNumber"),
                firmware_version=station.get("firmwareVersion"),
                status=answer["status"],
            )
            return answer

        def status(ctx: HandlerContext) -> dict[str, Any]:
            p = ctx.params
            connector = f"{p['evseId']}/{p['connectorId']}"
            store.status(identity, connector, p["connectorStatus"], None)
            return {}

        def meter_values(ctx: HandlerContext) -> dict[str, Any]:
            p = ctx.params
            store.meter(identity, str(p["evseId"]), None, _samples_2x(p.get("meterValue") or []))
            return {}

        def transaction_event(ctx: HandlerContext) -> dict[str, Any]:
            p = ctx.params
            info = p["transactionInfo"]
            tx = info["transactionId"]
            evse = p.get("evse") or {}
            # Only the first event must name the EVSE (E01.FR.16); later ones use its.
            connector = str(evse["id"]) if "id" in evse else store.connector_of(identity, tx)
            samples = _samples_2x(p.get("meterValue") or [])
            if p["eventType"] == "Started" or not store.has_transaction(identity, tx):
                store.start_transaction(
                    identity,
                    transaction_id=tx,
                    connector=connector,
                    id_tag=(p.get("idToken") or {}).get("idToken"),
                    meter_start_wh=_energy(samples),
                    timestamp=p.get("timestamp"),
                )
            if samples:
                store.meter(identity, connector, tx, samples)
            if p["eventType"] == "Ended":
                store.stop_transaction(
                    identity,
                    tx,
                    meter_stop_wh=_energy(samples),
                    reason=info.get("stoppedReason", "Local"),
                    timestamp=p.get("timestamp"),
                )
            return accepted if "idToken" in p else {}

        def notify_report(ctx: HandlerContext) -> dict[str, Any]:
            items = []
            for data in ctx.params.get("reportData") or ():
                component = data["component"]
                variable = data["variable"]
                comp = component["name"] + (
                    f"[{component['instance']}]" if "instance" in component else ""
                )
                key = variable["name"] + (
                    f"[{variable['instance']}]" if "instance" in variable else ""
                )
                for attribute in data.get("variableAttribute") or ():
                    if attribute.get("type", "Actual") != "Actual":
                        continue
                    readonly = attribute.get("mutability") == "ReadOnly"
                    items.append((comp, key, attribute.get("value"), readonly))
            store.configuration(identity, items)
            return {}

        conn.handle("BootNotification", boot)
        conn.handle("Heartbeat", self._heartbeat)
        conn.handle("StatusNotification", status)
        conn.handle("Authorize", lambda ctx: accepted)
        conn.handle("MeterValues", meter_values)
        conn.handle("TransactionEvent", transaction_event)
        conn.handle("NotifyReport", notify_report)
        conn.handle("DataTransfer", self._data_transfer)
        for action in (
            "FirmwareStatusNotification",
            "LogStatusNotification",
            "SecurityEventNotification",
            "NotifyEvent",
            "NotifyMonitoringReport",
        ):
            conn.handle(action, self._empty)

    async def _inventory_2x(self, conn: OCPPConnection) -> None:
        if self.inventory == "full":
            await conn.call(
                "GetBaseReport",
                {"requestId": next(self._request_ids), "reportBase": "FullInventory"},
            )
            return  # the station answers with NotifyReport
        result = await conn.call(
            "GetVariables",
            {
                "getVariableData": [
                    {"component": {"name": c}, "variable": {"name": v}}
                    for c, v in BASIC_VARIABLES_2X
                ]
            },
        )
        self.store.configuration(
            conn.identity,
            (
                (
                    item["component"]["name"],
                    item["variable"]["name"],
                    item.get("attributeValue"),
                    None,
                )
                for item in result.get("getVariableResult") or ()
                if item.get("attributeStatus") == "Accepted"
            ),
        )
