"""Typed calls: the response type inferred from the action, per version.

Checked, not run: ``make typecheck`` runs mypy --strict and pyright over this
folder (see ``check_errors.py`` for the lines that must fail).
"""

from __future__ import annotations

from typing import Any, Literal, assert_type

from ocpp_trio import OCPPClient, OCPPConnection, RPCError, ValidationError
from ocpp_trio.types import v16, v21, v201


async def calls_on_a_connection(conn: OCPPConnection) -> None:
    boot16 = await conn.call(
        v16.BootNotification({"chargePointVendor": "V", "chargePointModel": "M"})
    )
    assert_type(boot16, v16.BootNotificationResponse)
    assert_type(boot16["status"], Literal["Accepted", "Pending", "Rejected"])
    assert_type(boot16["interval"], int)

    auth = await conn.call(v16.Authorize({"idTag": "TAG"}), timeout=5.0)
    assert_type(auth["idTagInfo"], v16.IdTagInfo)
    assert_type(auth["idTagInfo"].get("expiryDate"), str | None)

    config = await conn.call(v16.GetConfiguration({"key": ["HeartbeatInterval"]}))
    assert_type(config.get("configurationKey"), list[v16.ConfigurationKey] | None)

    boot201 = await conn.call(
        v201.BootNotification(
            {"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"}
        )
    )
    assert_type(boot201, v201.BootNotificationResponse)
    assert_type(boot201["status"], v201.RegistrationStatusEnumType)

    tx = await conn.call(
        v201.TransactionEvent(
            {
                "eventType": "Started",
                "timestamp": "2024-01-01T00:00:00Z",
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "T1"},
            }
        )
    )
    assert_type(tx, v201.TransactionEventResponse)
    assert_type(tx.get("idTokenInfo"), v201.IdTokenInfoType | None)

    heartbeat21 = await conn.call(v21.Heartbeat({}))
    assert_type(heartbeat21, v21.HeartbeatResponse)
    assert_type(heartbeat21["currentTime"], str)

    await conn.send(
        v21.NotifyPeriodicEventStream(
            {"id": 1, "pending": 0, "basetime": "2024-01-01T00:00:00Z", "data": []}
        )
    )


async def string_forms_stay_untyped(conn: OCPPConnection) -> None:
    assert_type(await conn.call("Heartbeat"), dict[str, Any])
    assert_type(await conn.call("Heartbeat", {}), dict[str, Any])
    assert_type(await conn.call("ocpp1.6", "Heartbeat", {}, timeout=1.0), dict[str, Any])
    assert_type(await conn.call("AcmeVendorAction", {"anything": [1, 2]}), dict[str, Any])
    await conn.send("NotifyPeriodicEventStream", {"id": 1})
    await conn.send("ocpp2.1", "NotifyPeriodicEventStream", {"id": 1})


async def calls_on_a_client(client: OCPPClient) -> None:
    reset = await client.call(v201.Reset({"type": "OnIdle", "evseId": 1}))
    assert_type(reset, v201.ResetResponse)
    assert_type(reset["status"], v201.ResetStatusEnumType)
    assert_type(await client.call("Reset", {"type": "Hard"}), dict[str, Any])
    await client.send(
        v21.NotifyPeriodicEventStream({"id": 1, "pending": 0, "basetime": "t", "data": []})
    )


def entries_carry_their_names() -> None:
    message = v16.BootNotification({"chargePointVendor": "V", "chargePointModel": "M"})
    assert_type(message.params, v16.BootNotificationRequest)
    assert_type(v16.BootNotification.protocol, str)
    assert_type(v16.BootNotification.action, str)


async def strict_mode_failures(conn: OCPPConnection) -> None:
    try:
        await conn.call(v16.Heartbeat({}))
    except ValidationError as exc:
        assert_type(exc.path, tuple[str | int, ...])
        assert_type(exc.field, str)
        assert_type(exc.rule, str | None)
        assert_type(exc.error, RPCError)
