"""The simulated station, OCPP 1.6 (core profile and remote trigger)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ..outbox import OutboxHandle
from ._sim import ENERGY, POWER, ScenarioFailed, Session, SimulatedStation, StopReason

_STOP_REASONS: Final[dict[str, str]] = {
    "local": "Local",
    "remote": "Remote",
    "reset": "SoftReset",
    "other": "Other",
    "deauthorized": "DeAuthorized",
}
#: "Occupied" is 2.x's word; 1.6 says what the connector is doing.
_STATUS: Final[dict[str, str]] = {"Available": "Available", "Occupied": "Preparing"}


def _seconds(value: float) -> str:
    return str(round(value))


class Station16(SimulatedStation):
    """A simulated OCPP 1.6 charge point with one connector.

    With an outbox, a StartTransaction queued offline has no transactionId
    yet: its MeterValues and StopTransaction are queued ``transaction_of`` it
    and get the id the CSMS assigns.
    """

    _start: OutboxHandle | None = None  # the StartTransaction still to be answered

    def _config(self) -> dict[str, tuple[str, bool]]:
        return {
            "HeartbeatInterval": (_seconds(self.heartbeat_interval), False),
            "MeterValueSampleInterval": (_seconds(self.meter_interval), False),
            "NumberOfConnectors": ("1", True),
            "ConnectionTimeOut": ("60", False),
            "AuthorizeRemoteTxRequests": ("false", False),
            "LocalAuthorizeOffline": ("true", False),
            "SupportedFeatureProfiles": ("Core,RemoteTrigger", True),
            "MeterValuesSampledData": (f"{ENERGY},{POWER}", False),
        }

    # --- what the station sends --------------------------------------------------

    def boot_payload(self, reason: str) -> dict[str, Any]:
        return {
            "chargePointVendor": self.options.vendor[:20],
            "chargePointModel": self.options.model[:20],
            "chargePointSerialNumber": self.identity[:25],
            "firmwareVersion": "sim-1.0",
        }

    async def send_status(self, status: str) -> None:
        await self._status(_STATUS.get(status, status))

    async def _status(self, status: str) -> None:
        await self.call(
            "StatusNotification",
            {
                "connectorId": self.CONNECTOR,
                "errorCode": "NoError",
                "status": status,
                "timestamp": self.now(),
            },
        )

    async def authorize(self, id_tag: str) -> None:
        result = await self.call("Authorize", {"idTag": id_tag})
        status = result["idTagInfo"]["status"]
        if status != "Accepted":
            raise ScenarioFailed(f"idTag {id_tag} was not accepted: {status}")

    async def start_transaction(self, session: Session) -> None:
        result = await self.call(
            "StartTransaction",
            {
                "connectorId": self.CONNECTOR,
                "idTag": session.id_tag,
                "meterStart": int(self.energy_wh),
                "timestamp": self.now(),
            },
        )
        if "transactionId" in result:
            self.open_transaction = str(result["transactionId"])
            self._start = None
        else:  # queued offline (--outbox): authorized locally, the id comes later
            self.open_transaction = "0"
            self._start = self.last_queued
        status = result.get("idTagInfo", {"status": "Accepted"})["status"]
        if status != "Accepted":
            await self.stop_transaction("deauthorized")
            raise ScenarioFailed(f"StartTransaction: idTag {session.id_tag} {status}")
        await self._status("Charging")

    def _sample(self, context: str) -> dict[str, Any]:
        return {
            "timestamp": self.now(),
            "sampledValue": [
                {
                    "value": str(int(self.energy_wh)),
                    "context": context,
                    "measurand": ENERGY,
                    "unit": "Wh",
                },
                {
                    "value": str(int(self.power_w)),
                    "context": context,
                    "measurand": POWER,
                    "unit": "W",
                },
            ],
        }

    async def send_meter_values(self, session: Session | None, context: str) -> None:
        payload: dict[str, Any] = {
            "connectorId": self.CONNECTOR,
            "meterValue": [self._sample(context)],
        }
        if self.open_transaction is not None:
            payload["transactionId"] = int(self.open_transaction)
        await self.call("MeterValues", payload, transaction_of=self._tx_ref())

    async def stop_transaction(self, reason: StopReason) -> None:
        tx = self.open_transaction
        if tx is None:
            return
        session = self.session
        payload: dict[str, Any] = {
            "transactionId": int(tx),
            "meterStop": int(self.energy_wh),
            "timestamp": self.now(),
            "reason": _STOP_REASONS[reason],
        }
        if session is not None:
            payload["idTag"] = session.id_tag
        self.open_transaction = None
        ref, self._start = self._tx_ref(), None
        await self.call("StopTransaction", payload, transaction_of=ref)
        await self._status("Finishing")

    def _tx_ref(self) -> OutboxHandle | None:
        """The queued StartTransaction the current transaction's messages wait for, if any."""
        return self._start if self.open_transaction is not None else None

    # --- what the station answers -------------------------------------------------

    def version_answers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "GetConfiguration": self._get_configuration,
            "ChangeConfiguration": self._change_configuration,
            "RemoteStartTransaction": self._remote_start,
            "RemoteStopTransaction": self._remote_stop,
            "TriggerMessage": self._trigger,
        }

    def _get_configuration(self, params: dict[str, Any]) -> dict[str, Any]:
        config = self._config()
        wanted = params.get("key")
        keys = list(config) if not wanted else [k for k in wanted if k in config]
        result: dict[str, Any] = {
            "configurationKey": [
                {"key": k, "readonly": config[k][1], "value": config[k][0]} for k in keys
            ]
        }
        unknown = [k for k in wanted or () if k not in config]
        if unknown:
            result["unknownKey"] = unknown
        return result

    def _change_configuration(self, params: dict[str, Any]) -> dict[str, Any]:
        key, value = params["key"], params["value"]
        config = self._config()
        if key not in config:
            return {"status": "NotSupported"}
        if config[key][1]:
            return {"status": "Rejected"}
        if key in ("HeartbeatInterval", "MeterValueSampleInterval"):
            try:
                seconds = int(value)
            except ValueError:
                return {"status": "Rejected"}
            if seconds < 0:
                return {"status": "Rejected"}
            if key == "HeartbeatInterval":
                self.set_heartbeat_interval(seconds)
            else:
                self.meter_interval = float(seconds)
        return {"status": "Accepted"}

    def _remote_start(self, params: dict[str, Any]) -> dict[str, Any]:
        session = Session(params["idTag"], authorize=False)
        return {"status": "Accepted" if self.remote_start(session) else "Rejected"}

    def _remote_stop(self, params: dict[str, Any]) -> dict[str, Any]:
        ok = self.remote_stop(str(params["transactionId"]))
        return {"status": "Accepted" if ok else "Rejected"}

    def _trigger(self, params: dict[str, Any]) -> dict[str, Any]:
        what = params["requestedMessage"]
        if what == "BootNotification":
            self.spawn(lambda: self.call("BootNotification", self.boot_payload("Triggered")), what)
        elif what == "Heartbeat":
            self.spawn(lambda: self.call("Heartbeat", {}), what)
        elif what == "StatusNotification":
            status = "Charging" if self.open_transaction is not None else "Available"
            self.spawn(lambda: self._status(status), what)
        elif what == "MeterValues":
            self.spawn(lambda: self.send_meter_values(self.session, "Trigger"), what)
        elif what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
            self.spawn(lambda: self.call(what, {"status": "Idle"}), what)
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted"}
