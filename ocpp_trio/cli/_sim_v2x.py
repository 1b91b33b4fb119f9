"""The simulated station, OCPP 2.0.1 and 2.1 (one EVSE with one connector)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any, Final

from ._sim import ENERGY, POWER, ScenarioFailed, Session, SimulatedStation, StopReason

#: stoppedReason and triggerReason of the Ended event, per simulator reason.
_STOP: Final[dict[str, tuple[str, str]]] = {
    "local": ("Local", "StopAuthorized"),
    "remote": ("Remote", "RemoteStop"),
    "reset": ("ImmediateReset", "ResetCommand"),
    "other": ("Other", "StopAuthorized"),
    "deauthorized": ("DeAuthorized", "Deauthorized"),
}
_TRIGGERABLE: Final = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "MeterValues",
        "TransactionEvent",
        "FirmwareStatusNotification",
        "LogStatusNotification",
    }
)


class Station2x(SimulatedStation):
    """A simulated OCPP 2.0.1 / 2.1 charging station with one EVSE and one connector."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seq = itertools.count()
        self._writable: dict[tuple[str, str], str] = {
            ("AuthCtrlr", "AuthorizeRemoteStart"): "false",
            ("TxCtrlr", "EVConnectionTimeOut"): "60",
        }

    def _variables(self) -> dict[tuple[str, str], tuple[str, bool, str]]:
        """(component, variable) -> (value, read-only, dataType)."""
        profile = int(self.options.client_options.get("security_profile", 0))
        out: dict[tuple[str, str], tuple[str, bool, str]] = {
            ("OCPPCommCtrlr", "HeartbeatInterval"): (
                str(round(self.heartbeat_interval)),
                False,
                "integer",
            ),
            ("SampledDataCtrlr", "TxUpdatedInterval"): (
                str(round(self.meter_interval)),
                False,
                "integer",
            ),
            ("SecurityCtrlr", "SecurityProfile"): (str(profile), True, "integer"),
            ("ChargingStation", "AvailabilityState"): ("Available", True, "OptionList"),
        }
        for key, value in self._writable.items():
            out[key] = (value, False, "boolean" if value in ("true", "false") else "integer")
        return out

    # --- what the station sends --------------------------------------------------

    def boot_payload(self, reason: str) -> dict[str, Any]:
        return {
            "chargingStation": {
                "model": self.options.model[:20],
                "vendorName": self.options.vendor[:50],
                "serialNumber": self.identity[:25],
                "firmwareVersion": "sim-1.0",
            },
            "reason": reason,
        }

    async def send_status(self, status: str) -> None:
        await self.call(
            "StatusNotification",
            {
                "timestamp": self.now(),
                "connectorStatus": status,
                "evseId": 1,
                "connectorId": self.CONNECTOR,
            },
        )

    async def authorize(self, id_tag: str) -> None:
        result = await self.call("Authorize", {"idToken": self._token(id_tag)})
        status = result["idTokenInfo"]["status"]
        if status != "Accepted":
            raise ScenarioFailed(f"idToken {id_tag} was not accepted: {status}")

    @staticmethod
    def _token(id_tag: str) -> dict[str, Any]:
        return {"idToken": id_tag, "type": "ISO14443"}

    def _sample(self, context: str) -> dict[str, Any]:
        return {
            "timestamp": self.now(),
            "sampledValue": [
                {
                    "value": round(self.energy_wh, 1),
                    "context": context,
                    "measurand": ENERGY,
                    "unitOfMeasure": {"unit": "Wh"},
                },
                {
                    "value": self.power_w,
                    "context": context,
                    "measurand": POWER,
                    "unitOfMeasure": {"unit": "W"},
                },
            ],
        }

    async def _event(
        self, event_type: str, trigger: str, info: dict[str, Any], context: str, **extra: Any
    ) -> dict[str, Any]:
        return await self.call(
            "TransactionEvent",
            {
                "eventType": event_type,
                "timestamp": self.now(),
                "triggerReason": trigger,
                "seqNo": next(self._seq),
                "transactionInfo": info,
                "meterValue": [self._sample(context)],
                **extra,
            },
        )

    async def start_transaction(self, session: Session) -> None:
        tx = session.transaction_id or str(uuid.uuid4())
        self._seq = itertools.count()
        info: dict[str, Any] = {"transactionId": tx, "chargingState": "Charging"}
        trigger = "Authorized"
        if session.remote_start_id is not None:
            info["remoteStartId"] = session.remote_start_id
            trigger = "RemoteStart"
        self.open_transaction = tx
        result = await self._event(
            "Started",
            trigger,
            info,
            "Transaction.Begin",
            evse={"id": 1, "connectorId": self.CONNECTOR},
            idToken=self._token(session.id_tag),
        )
        status = (result.get("idTokenInfo") or {}).get("status", "Accepted")
        if status != "Accepted":
            await self.stop_transaction("deauthorized")
            raise ScenarioFailed(f"TransactionEvent Started: idToken {session.id_tag} {status}")

    async def send_meter_values(self, session: Session | None, context: str) -> None:
        tx = self.open_transaction
        if tx is None:
            await self.call("MeterValues", {"evseId": 1, "meterValue": [self._sample(context)]})
            return
        trigger = "Trigger" if context == "Trigger" else "MeterValuePeriodic"
        await self._event(
            "Updated", trigger, {"transactionId": tx, "chargingState": "Charging"}, context
        )

    async def stop_transaction(self, reason: StopReason) -> None:
        tx = self.open_transaction
        if tx is None:
            return
        stopped, trigger = _STOP[reason]
        self.open_transaction = None
        await self._event(
            "Ended",
            trigger,
            {"transactionId": tx, "chargingState": "EVConnected", "stoppedReason": stopped},
            "Transaction.End",
        )

    # --- what the station answers -------------------------------------------------

    def version_answers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "GetVariables": self._get_variables,
            "SetVariables": self._set_variables,
            "GetBaseReport": self._get_base_report,
            "RequestStartTransaction": self._request_start,
            "RequestStopTransaction": self._request_stop,
            "TriggerMessage": self._trigger,
        }

    def _lookup(self, item: dict[str, Any]) -> tuple[str, tuple[str, bool, str] | None]:
        variables = self._variables()
        key = (item["component"]["name"], item["variable"]["name"])
        if key in variables:
            return "Accepted", variables[key]
        if not any(c == key[0] for c, _ in variables):
            return "UnknownComponent", None
        return "UnknownVariable", None

    def _get_variables(self, params: dict[str, Any]) -> dict[str, Any]:
        results = []
        for item in params["getVariableData"]:
            status, found = self._lookup(item)
            if item.get("attributeType", "Actual") != "Actual":
                status, found = "NotSupportedAttributeType", None
            result: dict[str, Any] = {
                "attributeStatus": status,
                "component": item["component"],
                "variable": item["variable"],
            }
            if "attributeType" in item:
                result["attributeType"] = item["attributeType"]
            if found is not None:
                result["attributeValue"] = found[0]
            results.append(result)
        return {"getVariableResult": results}

    def _set_variables(self, params: dict[str, Any]) -> dict[str, Any]:
        results = []
        for item in params["setVariableData"]:
            status, found = self._lookup(item)
            key = (item["component"]["name"], item["variable"]["name"])
            value = item["attributeValue"]
            if found is not None:
                status = self._set(key, value, found)
            result: dict[str, Any] = {
                "attributeStatus": status,
                "component": item["component"],
                "variable": item["variable"],
            }
            if "attributeType" in item:
                result["attributeType"] = item["attributeType"]
            results.append(result)
        return {"setVariableResult": results}

    def _set(self, key: tuple[str, str], value: str, found: tuple[str, bool, str]) -> str:
        if found[1]:
            return "Rejected"
        if found[2] == "integer":
            try:
                number = int(value)
            except ValueError:
                return "Rejected"
            if number < 0:
                return "Rejected"
            if key == ("OCPPCommCtrlr", "HeartbeatInterval"):
                self.set_heartbeat_interval(number)
                return "Accepted"
            if key == ("SampledDataCtrlr", "TxUpdatedInterval"):
                self.meter_interval = float(number)
                return "Accepted"
        elif found[2] == "boolean" and value not in ("true", "false"):
            return "Rejected"
        self._writable[key] = value
        return "Accepted"

    def _get_base_report(self, params: dict[str, Any]) -> dict[str, Any]:
        request_id = params["requestId"]

        async def report() -> None:
            data = [
                {
                    "component": {"name": component},
                    "variable": {"name": variable},
                    "variableAttribute": [
                        {"value": value, "mutability": "ReadOnly" if readonly else "ReadWrite"}
                    ],
                    "variableCharacteristics": {"dataType": kind, "supportsMonitoring": False},
                }
                for (component, variable), (value, readonly, kind) in self._variables().items()
            ]
            await self.call(
                "NotifyReport",
                {
                    "requestId": request_id,
                    "generatedAt": self.now(),
                    "seqNo": 0,
                    "tbc": False,
                    "reportData": data,
                },
            )

        self.spawn(report, "NotifyReport")
        return {"status": "Accepted"}

    def _request_start(self, params: dict[str, Any]) -> dict[str, Any]:
        tx = str(uuid.uuid4())
        session = Session(
            params["idToken"]["idToken"],
            authorize=False,
            remote_start_id=params["remoteStartId"],
            transaction_id=tx,
        )
        if not self.remote_start(session):
            return {"status": "Rejected"}
        return {"status": "Accepted", "transactionId": tx}

    def _request_stop(self, params: dict[str, Any]) -> dict[str, Any]:
        ok = self.remote_stop(params["transactionId"])
        return {"status": "Accepted" if ok else "Rejected"}

    def _trigger(self, params: dict[str, Any]) -> dict[str, Any]:
        what = params["requestedMessage"]
        if what not in _TRIGGERABLE:
            return {"status": "NotImplemented"}
        if what == "BootNotification":
            self.spawn(lambda: self.call("BootNotification", self.boot_payload("Triggered")), what)
        elif what == "Heartbeat":
            self.spawn(lambda: self.call("Heartbeat", {}), what)
        elif what == "StatusNotification":
            status = "Occupied" if self.open_transaction is not None else "Available"
            self.spawn(lambda: self.send_status(status), what)
        elif what == "MeterValues":
            sample = self._sample("Trigger")
            self.spawn(lambda: self.call(what, {"evseId": 1, "meterValue": [sample]}), what)
        elif what == "TransactionEvent":
            if self.open_transaction is None:
                return {"status": "Rejected"}
            self.spawn(lambda: self.send_meter_values(self.session, "Trigger"), what)
        else:
            self.spawn(lambda: self.call(what, {"status": "Idle"}), what)
        return {"status": "Accepted"}
