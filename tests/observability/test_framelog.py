"""The structured frame log: records, redaction, per-station files, and what the rest of the
library logs about the same frames.

Redaction is tested rule by rule on payloads, then end to end: a whole 1.6
session and a whole 2.0.1 session on a real loopback server and client, every
record of every logger captured at DEBUG and formatted, and no secret value
in any of them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import Any, Final

import pytest
import trio
import trio.testing

from ocpp_trio import (
    CallErrorReceived,
    OCPPClient,
    OCPPConnection,
    OCPPServer,
    RPCGenericError,
    open_ocpp_client,
)
from ocpp_trio.observability.framelog import (
    ALWAYS_REDACTED,
    FRAME_LOGGER,
    MASK,
    SECRET_KEYS,
    FrameLog,
    StationFileHandler,
    station_file_name,
)
from ocpp_trio.testing import open_memory_server
from tests.helpers import serving_with_refusals

ROOT: Final = Path(__file__).resolve().parent.parent.parent
NOW: Final = "2026-01-01T00:00:00Z"


class Collect(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def capturing(
    name: str | None, handler: logging.Handler, *, propagate: bool = True
) -> Iterator[logging.Logger]:
    """``handler`` on the logger ``name`` (None: the root), that logger at DEBUG, for the block."""
    logger = logging.getLogger(name)
    level, propagated = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = propagate
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagated


@pytest.fixture
def frames() -> Iterator[Collect]:
    """The records of ``ocpp_trio.frames``, with that logger at DEBUG."""
    with capturing(FRAME_LOGGER, collect := Collect()):
        yield collect


def log_frame(frame_log: FrameLog, text: str, message_type: str = "CALL", **fields: Any) -> None:
    """One call as the runtime makes it."""
    frame_log.frame(
        identity=fields.get("identity", "CP1"),
        protocol=fields.get("protocol", "ocpp1.6"),
        direction=fields.get("direction", "in"),
        message_type=message_type,
        action=fields.get("action", "Authorize"),
        message_id=fields.get("message_id", "m1"),
        text=text,
        latency=fields.get("latency"),
    )


def logged(frame_log: FrameLog, payload: Any, message_type: str = "CALL") -> Any:
    """The payload of ``payload`` as a CALL's record shows it."""
    frame = [3, "m1", payload] if message_type == "CALLRESULT" else [2, "m1", "X", payload]
    with capturing("tests.framelog.payload", collect := Collect(), propagate=False) as logger:
        log = FrameLog(
            redact=frame_log.redacted_keys, secret_keys=frame_log.secret_names, logger=logger
        )
        log_frame(log, json.dumps(frame), message_type)
    (record,) = collect.records
    return json.loads(record.getMessage())["payload"]


# --- records ----------------------------------------------------------------------------


def test_a_record_is_one_json_object_with_the_same_dict_as_record_ocpp(frames: Collect) -> None:
    log = FrameLog()
    text = '[2,"19223201","Authorize",{"idTag":"B4A63CDF"}]'
    log_frame(log, text, identity="CP-1", message_id="19223201")
    (record,) = frames.records
    assert record.levelno == logging.DEBUG
    assert record.name == FRAME_LOGGER
    message = json.loads(record.getMessage())
    fields: dict[str, Any] = record.ocpp  # type: ignore[attr-defined]
    assert message == fields
    assert list(message) == [
        "time",
        "identity",
        "protocol",
        "direction",
        "message_type",
        "action",
        "message_id",
        "bytes",
        "latency_ms",
        "payload",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", message["time"])
    assert message["identity"] == "CP-1"
    assert message["bytes"] == len(text)
    assert message["latency_ms"] is None
    assert message["payload"] == {"idTag": MASK}
    assert "B4A63CDF" not in record.getMessage()
    assert "\n" not in record.getMessage()


def test_answers_have_their_latency_and_errors_their_three_fields(frames: Collect) -> None:
    log = FrameLog()
    log_frame(log, '[3,"m1",{"status":"Accepted"}]', "CALLRESULT", latency=0.0123456)
    log_frame(log, '[4,"m2","GenericError","no",{}]', "CALLERROR", latency=2.5)
    result, error = (json.loads(r.getMessage()) for r in frames.records)
    assert result["latency_ms"] == 12.346
    assert result["payload"] == {"status": "Accepted"}
    assert error["latency_ms"] == 2500.0
    assert error["payload"] == {
        "errorCode": "GenericError",
        "errorDescription": "no",
        "errorDetails": {},
    }


def test_payload_false_logs_the_envelope_only(frames: Collect) -> None:
    log_frame(FrameLog(payload=False), '[2,"m1","Heartbeat",{}]')
    (record,) = frames.records
    assert "payload" not in json.loads(record.getMessage())


def test_a_peer_chosen_identity_cannot_break_or_disguise_the_line(frames: Collect) -> None:
    log_frame(FrameLog(), '[2,"m1","Heartbeat",{}]', identity="CP\n1\u202e\ud800", action="A\x1b")
    (record,) = frames.records
    line = record.getMessage()
    assert line.isprintable()
    assert json.loads(line)["identity"] == "CP\n1\u202e\ud800"


def test_nothing_is_computed_when_the_logger_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the JSON, not the size, not the time: the level check comes first."""

    class Tripwire(str):
        def encode(self, *args: Any, **kwargs: Any) -> bytes:
            raise AssertionError("the frame was measured")

    def tripped(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("JSON work with the logger off")

    logger = logging.getLogger("tests.framelog.off")
    logger.setLevel(logging.INFO)  # enabled, but not for the frames' DEBUG
    collect = Collect()
    logger.addHandler(collect)
    monkeypatch.setattr(json, "loads", tripped)
    monkeypatch.setattr(json, "dumps", tripped)
    log = FrameLog(logger=logger)
    for _ in range(3):
        log_frame(log, Tripwire('[2,"m1","Authorize",{"idTag":"X"}]'))
    assert collect.records == []
    logger.removeHandler(collect)


async def test_latency_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    """A real server and station in memory: each side's answer knows its CALL's age."""
    csms_records, station_records = Collect(), Collect()

    async def heartbeat(ctx: object) -> dict[str, str]:
        await trio.sleep(2.5)
        return {"currentTime": NOW}

    async def on_station(conn: OCPPConnection) -> None:
        conn.handle("Heartbeat", heartbeat)

    with (
        capturing("tests.framelog.csms", csms_records, propagate=False) as csms_logger,
        capturing("tests.framelog.station", station_records, propagate=False) as station_logger,
    ):
        async with (
            open_memory_server(on_station, frame_log=FrameLog(logger=csms_logger)) as server,
            server.connect("CP1", frame_log=FrameLog(logger=station_logger)) as station,
        ):
            await station.call("Heartbeat", {})

    def by_type(collect: Collect) -> dict[tuple[str, str], Any]:
        fields = [r.ocpp for r in collect.records]  # type: ignore[attr-defined]
        return {(f["direction"], f["message_type"]): f["latency_ms"] for f in fields}

    assert by_type(station_records) == {("out", "CALL"): None, ("in", "CALLRESULT"): 2500.0}
    assert by_type(csms_records) == {("in", "CALL"): None, ("out", "CALLRESULT"): 2500.0}


# --- redaction rules --------------------------------------------------------------------


def test_always_redacted_keys_cannot_be_configured_away() -> None:
    log = FrameLog(redact=[])
    for key in ALWAYS_REDACTED:
        assert logged(log, {key: "s3cret", "other": 1}) == {key: MASK, "other": 1}
    # Any case; and password-like names, whatever the message.
    assert logged(log, {"IDTAG": "s", "wifiPassword": "s", "mySecret": "s", "x": "keep"}) == {
        "IDTAG": MASK,
        "wifiPassword": MASK,
        "mySecret": MASK,
        "x": "keep",
    }


def test_configured_keys_at_any_depth_in_objects_and_arrays() -> None:
    log = FrameLog(redact=["meterSerialNumber", "vendorId"])
    payload = {
        "meterSerialNumber": "m1",
        "a": [{"b": {"vendorId": "v1", "keep": "k"}}, [{"meterSerialNumber": {"deep": "m2"}}]],
        "customData": {"vendorId": "v2"},
    }
    assert logged(log, payload) == {
        "meterSerialNumber": MASK,
        "a": [{"b": {"vendorId": MASK, "keep": "k"}}, [{"meterSerialNumber": MASK}]],
        "customData": {"vendorId": MASK},
    }


def test_a_2x_id_token_object_keeps_its_type() -> None:
    payload = {
        "idToken": {
            "idToken": "04A2B3",
            "type": "ISO14443",
            "additionalInfo": [{"additionalIdToken": "x9", "type": "plate"}],
        },
        "idTokenInfo": {"status": "Accepted", "groupIdToken": {"idToken": "G1", "type": "Central"}},
    }
    assert logged(FrameLog(), payload) == {
        "idToken": {
            "idToken": MASK,
            "type": "ISO14443",
            "additionalInfo": [{"additionalIdToken": MASK, "type": "plate"}],
        },
        "idTokenInfo": {"status": "Accepted", "groupIdToken": {"idToken": MASK, "type": "Central"}},
    }


def test_1_6_configuration_values_of_secret_keys() -> None:
    log = FrameLog(secret_keys=["MyVendorToken"])
    # ChangeConfiguration.req
    assert logged(log, {"key": "AuthorizationKey", "value": "0011aabb"}) == {
        "key": "AuthorizationKey",
        "value": MASK,
    }
    assert logged(log, {"key": "HeartbeatInterval", "value": "300"}) == {
        "key": "HeartbeatInterval",
        "value": "300",
    }
    # GetConfiguration.conf
    conf = {
        "configurationKey": [
            {"key": "authorizationkey", "readonly": False, "value": "a"},
            {"key": "MyVendorToken", "readonly": True, "value": "b"},
            {"key": "WifiPassword", "readonly": False, "value": "c"},
            {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
        ],
        "unknownKey": ["Foo"],
    }
    values = [entry["value"] for entry in logged(log, conf, "CALLRESULT")["configurationKey"]]
    assert values == [MASK, MASK, MASK, "60"]


def test_2x_variable_values_of_secret_variables() -> None:
    secret = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
    plain = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    log = FrameLog()
    set_variables = {
        "setVariableData": [
            {"attributeValue": "hunter22hunter22", **secret},
            {"attributeValue": "300", **plain},
        ]
    }
    assert [d["attributeValue"] for d in logged(log, set_variables)["setVariableData"]] == [
        MASK,
        "300",
    ]
    get_result = {
        "getVariableResult": [
            {"attributeStatus": "Accepted", "attributeValue": "hunter22hunter22", **secret},
            {"attributeStatus": "Accepted", "attributeValue": "300", **plain},
        ]
    }
    assert [r["attributeValue"] for r in logged(log, get_result)["getVariableResult"]] == [
        MASK,
        "300",
    ]
    report = {
        "requestId": 1,
        "generatedAt": NOW,
        "seqNo": 0,
        "reportData": [
            {**secret, "variableAttribute": [{"type": "Actual", "value": "hunter22hunter22"}]},
            {**plain, "variableAttribute": [{"type": "Actual", "value": "300"}]},
        ],
    }
    data = logged(log, report)["reportData"]
    assert data[0]["variableAttribute"] == [{"type": "Actual", "value": MASK}]
    assert data[1]["variableAttribute"] == [{"type": "Actual", "value": "300"}]
    for name in SECRET_KEYS:
        entry = {"attributeValue": "s", "component": {"name": "C"}, "variable": {"name": name}}
        assert logged(log, entry)["attributeValue"] == MASK


def network_profile(secret: str, pin: int, **more: str) -> dict[str, Any]:
    """A 2.x SetNetworkProfile whose VPN password and key and APN password are ``secret`` with
    a suffix, and SIM PIN ``pin``; ``more``: more fields of ``connectionData``."""
    return {
        "configurationSlot": 1,
        "connectionData": {
            "ocppVersion": "OCPP20",
            "ocppTransport": "JSON",
            "ocppCsmsUrl": "wss://csms.example/ocpp",
            "messageTimeout": 30,
            "securityProfile": 1,
            "ocppInterface": "Wired0",
            "vpn": {
                "server": "vpn.example",
                "user": "u",
                "password": f"{secret}-vpnpw",
                "key": f"{secret}-vpnkey",
                "type": "IPSec",
            },
            "apn": {
                "apn": "internet",
                "apnAuthentication": "AUTO",
                "apnPassword": f"{secret}-apnpw",
                "simPin": pin,  # an integer
            },
            **more,
        },
    }


def test_2x_set_network_profile() -> None:
    payload = network_profile("s", 1234, basicAuthPassword="pw-2.1")  # 2.1 has the latter
    data = logged(FrameLog(), payload)["connectionData"]
    assert data["ocppCsmsUrl"] == "wss://csms.example/ocpp"
    assert data["basicAuthPassword"] == MASK
    assert data["vpn"] == {
        "server": "vpn.example",
        "user": "u",
        "password": MASK,
        "key": MASK,
        "type": "IPSec",
    }
    assert data["apn"] == {
        "apn": "internet",
        "apnAuthentication": "AUTO",
        "apnPassword": MASK,
        "simPin": MASK,
    }


def test_pem_private_keys_anywhere() -> None:
    pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n"
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert logged(FrameLog(), {"vendorId": "V", "data": pem, "certificate": cert}) == {
        "vendorId": "V",
        "data": MASK,
        "certificate": cert,  # public: InstallCertificate, CertificateSigned
    }


@pytest.mark.parametrize("depth", [100, 5000])
def test_nesting_deeper_than_the_limit_is_masked_whole(depth: int) -> None:
    """Redaction recurses, and the peer chooses the depth: past 32 levels a value is masked
    whole; past what JSON decodes at all, the frame is outlined."""
    text = '[2,"m1","X",{"deep":' + "[" * depth + '{"idTag":"s","v":"leak"}' + "]" * depth + "}]"
    with capturing("tests.framelog.deep", collect := Collect(), propagate=False) as logger:
        log_frame(FrameLog(logger=logger), text)
    (record,) = collect.records
    assert "leak" not in record.getMessage()
    assert '"s"' not in record.getMessage()


def test_callerror_description_and_details_go_through_the_same_redaction(
    frames: Collect,
) -> None:
    log = FrameLog(redact=["meterSerialNumber"])
    details = {
        "meterSerialNumber": "M-77",
        "reason": "idTag=T-1 refused; meterSerialNumber: 'M-77'",
        "embedded": '{"idToken": {"idToken": "T-2", "type": "ISO14443"}}',
        "list": ["AuthorizationKey: k-3"],
    }
    description = 'rejected "idTag": "T-4", basicAuthPassword=pw-5 (meterSerialNumber=M-77)'
    log_frame(log, json.dumps([4, "m1", "GenericError", description, details]), "CALLERROR")
    log_frame(log, json.dumps([5, "m2", "GenericError", "idTag=T-6", details]), "CALLRESULTERROR")
    for record in frames.records:
        line = record.getMessage()
        for secret in ("M-77", "T-1", "T-2", "T-4", "pw-5", "T-6"):
            assert secret not in line, line
    payload = json.loads(frames.records[0].getMessage())["payload"]
    assert payload["errorDescription"] == (
        f'rejected "idTag": {MASK}, basicAuthPassword={MASK} (meterSerialNumber={MASK})'
    )
    assert payload["errorDetails"]["meterSerialNumber"] == MASK
    assert payload["errorDetails"]["embedded"] == (
        '{"idToken": {"idToken": "***", "type": "ISO14443"}}'
    )


@pytest.mark.parametrize(
    ("text", "excerpt"),
    [
        ('[2,"19223201","Authorize",{"idTag":"B4A63CDF"', '[2,"?","?",{"idTag":"?"'),
        ('[2,"1","Authorize","B4A63CDF"]', '[2,"?","?","?"]'),
        ("hello B4A63CDF", "? ?"),
        ('{"idTag": tru', '{"idTag": ?'),
        ('[3, "x", {"a": [1, -2.5e3, true, null]}]', '[3, "?", {"a": [1, -2.5e3, true, null]}]'),
        ('"B4A63CDF\\', '"?"'),
        ("", ""),
    ],
)
def test_a_frame_that_is_not_ocpp_j_is_outlined_never_logged(
    frames: Collect, text: str, excerpt: str
) -> None:
    log_frame(FrameLog(), text, "invalid", action="", message_id="")
    (record,) = frames.records
    message = json.loads(record.getMessage())
    assert "payload" not in message
    assert message["excerpt"] == excerpt
    assert message["bytes"] == len(text)
    assert "B4A63CDF" not in record.getMessage()


def test_the_outline_is_bounded_and_can_be_turned_off(frames: Collect) -> None:
    text = '["' + "x" * 5000 + '"]'
    log_frame(FrameLog(excerpt=10), text, "invalid")
    log_frame(FrameLog(excerpt=0), text, "invalid")
    cut, off = (json.loads(r.getMessage()) for r in frames.records)
    assert cut["excerpt"] == '["?"...(4994 more)'
    assert off["excerpt"] is None
    assert off["bytes"] == 5004


def test_one_string_is_refused_where_a_list_of_names_is_meant() -> None:
    with pytest.raises(TypeError):
        FrameLog(redact="idTag")


# --- a whole session: no secret in any record of any logger -----------------------------


class Everything(logging.Handler):
    """Formats every record of every logger, as a deployment's handler would, and keeps the text
    of its message, its arguments and its ``ocpp`` dict."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s %(ocpp_repr)s")
        )
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "ocpp", None)
        record.ocpp_repr = "" if fields is None else json.dumps(fields)
        self.records.append(record)
        self.texts.append(self.format(record))
        self.texts.append(repr(record.args))
        if record.exc_info is not None:
            self.texts.append(logging.Formatter().formatException(record.exc_info))

    def lines(self, logger: str, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.name == logger and r.levelno == level]


@pytest.fixture
def everything() -> Iterator[Everything]:
    """Every record of every logger, the root at DEBUG."""
    with capturing(None, handler := Everything()):
        yield handler


REDACT: Final = ["meterSerialNumber", "serialNumber"]

#: Every secret of the sessions: each must be absent from every record.
S16: Final = {
    "idtag": "S16-idtag-7f3a",
    "parent": "S16-parent-91c",
    "authkey": "S16-authkey-0d5e8c",
    "authkey_conf": "S16-authkey-conf-44",
    "meter": "S16-meter-b2",
    "error": "S16-errdetail-6e",
    "bad": "S16-badframe-c1",
}
S201: Final = {
    "idtoken": "S201-idtoken-a1",
    "group": "S201-group-b2",
    "serial": "S201-serial-c3",
    "basic": "S201-basicauth-d4e5f6a7",
    "basic_get": "S201-basicget-e5f6a7b8",
    "basic_report": "S201-basicrep-f6a7b8c9",
    "network": "Qz9",  # short: SetNetworkProfile limits its fields
    "pin": "739146",
    "error": "S201-errdetail-4a",
    "bad": "S201-badframe-5b",
}


def station(
    server: OCPPServer, identity: str, protocol: str
) -> AbstractAsyncContextManager[OCPPClient]:
    """A station on ``server``, with a frame log and strict mode, as the sessions run it."""
    return open_ocpp_client(
        f"ws://127.0.0.1:{server.port}/ocpp",
        identity=identity,
        protocols=[protocol],
        frame_log=FrameLog(redact=REDACT),
        strict_mode=True,
        ping_interval=0,
    )


def assert_no_secret(everything: Everything, secrets: dict[str, str]) -> None:
    assert len(everything.texts) > 20
    for text in everything.texts:
        for name, secret in secrets.items():
            assert secret not in text, f"the {name} secret is in a log record: {text}"


def assert_lifecycle_and_warning(everything: Everything, identity: str) -> None:
    """A station connecting and leaving is one INFO line each; its bad frame one WARNING."""
    server_info = everything.lines("ocpp_trio.server", logging.INFO)
    assert len([m for m in server_info if m.startswith(f"{identity} connected from")]) == 1
    assert len([m for m in server_info if m.startswith(f"{identity} disconnected")]) == 1
    warnings = everything.lines("ocpp_trio.connection", logging.WARNING)
    assert any("bad message" in m and "?" in m for m in warnings), warnings
    # With a frame log configured, no raw frame line: the frame log has each frame.
    assert not [m for m in everything.lines("ocpp_trio.connection", logging.DEBUG) if "[" in m]
    frames = [r for r in everything.records if r.name == FRAME_LOGGER]
    assert {r.levelno for r in frames} == {logging.DEBUG}
    kinds = {(r.ocpp["direction"], r.ocpp["message_type"]) for r in frames}  # type: ignore[attr-defined]
    assert {("in", "invalid"), ("out", "CALLERROR"), ("in", "CALLERROR")} <= kinds


async def test_no_secret_of_a_1_6_session_reaches_any_log(everything: Everything) -> None:
    s = S16
    server_done = trio.Event()
    bad_seen = trio.Event()

    async def on_station(conn: OCPPConnection) -> None:
        conn.handle(
            "BootNotification",
            lambda ctx: {"status": "Accepted", "currentTime": NOW, "interval": 300},
        )
        id_tag_info = {"status": "Accepted", "parentIdTag": s["parent"]}
        conn.handle("Authorize", lambda ctx: {"idTagInfo": id_tag_info})
        conn.handle("StartTransaction", lambda ctx: {"transactionId": 7, "idTagInfo": id_tag_info})

        def data_transfer(ctx: object) -> dict[str, Any]:
            raise RPCGenericError(
                f"refused meterSerialNumber={s['error']}",
                {"meterSerialNumber": s["error"], "hint": f"idTag: {s['idtag']}"},
            )

        conn.handle("DataTransfer", data_transfer)
        conn.on("bad_message", lambda event: bad_seen.set())
        await conn.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": s["authkey"]})
        conf = await conn.call("GetConfiguration", {"key": ["AuthorizationKey"]})
        assert conf["configurationKey"][0]["value"] == s["authkey_conf"]
        server_done.set()

    frame_log = FrameLog(redact=REDACT)
    with trio.fail_after(20):
        async with (
            serving_with_refusals(
                on_station, frame_log=frame_log, strict_mode=True, protocols=["ocpp1.6"]
            ) as (server, _),
            station(server, "CP-16", "ocpp1.6") as client,
        ):
            client.handle("ChangeConfiguration", lambda ctx: {"status": "Accepted"})
            client.handle(
                "GetConfiguration",
                lambda ctx: {
                    "configurationKey": [
                        {
                            "key": "AuthorizationKey",
                            "readonly": False,
                            "value": s["authkey_conf"],
                        }
                    ]
                },
            )
            await client.call(
                "BootNotification",
                {
                    "chargePointVendor": "V",
                    "chargePointModel": "M",
                    "meterSerialNumber": s["meter"],
                },
            )
            await client.call("Authorize", {"idTag": s["idtag"]})
            await client.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": s["idtag"], "meterStart": 0, "timestamp": NOW},
            )
            with pytest.raises(CallErrorReceived) as raised:
                await client.call("DataTransfer", {"vendorId": "V"})
            assert raised.value.details["meterSerialNumber"] == s["error"]  # the wire: intact
            await client.send_raw(f'[2,"bad-1","Authorize",{{"idTag":"{s["bad"]}"')
            await bad_seen.wait()
            await server_done.wait()
    assert_no_secret(everything, s)
    assert_lifecycle_and_warning(everything, "CP-16")


async def test_no_secret_of_a_2_0_1_session_reaches_any_log(everything: Everything) -> None:
    s = S201
    server_done = trio.Event()
    bad_seen = trio.Event()
    security = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
    accepted = {"status": "Accepted", "groupIdToken": {"idToken": s["group"], "type": "Central"}}

    async def on_station(conn: OCPPConnection) -> None:
        conn.handle(
            "BootNotification",
            lambda ctx: {"status": "Accepted", "currentTime": NOW, "interval": 300},
        )
        conn.handle("Authorize", lambda ctx: {"idTokenInfo": accepted})
        conn.handle("TransactionEvent", lambda ctx: {"idTokenInfo": accepted})
        conn.handle("NotifyReport", lambda ctx: {})

        def data_transfer(ctx: object) -> dict[str, Any]:
            raise RPCGenericError(
                f"refused serialNumber: {s['error']}", {"serialNumber": s["error"]}
            )

        conn.handle("DataTransfer", data_transfer)
        conn.on("bad_message", lambda event: bad_seen.set())
        await conn.call(
            "SetVariables", {"setVariableData": [{"attributeValue": s["basic"], **security}]}
        )
        await conn.call("GetVariables", {"getVariableData": [security]})
        await conn.call("SetNetworkProfile", network_profile(s["network"], int(s["pin"])))
        server_done.set()

    async with serving_with_refusals(
        on_station, frame_log=FrameLog(redact=REDACT), strict_mode=True, protocols=["ocpp2.0.1"]
    ) as (server, _):
        with trio.fail_after(20):
            async with station(server, "CP-201", "ocpp2.0.1") as client:
                client.handle(
                    "SetVariables",
                    lambda ctx: {
                        "setVariableResult": [{"attributeStatus": "Accepted", **security}]
                    },
                )
                client.handle(
                    "GetVariables",
                    lambda ctx: {
                        "getVariableResult": [
                            {
                                "attributeStatus": "Accepted",
                                "attributeValue": s["basic_get"],
                                **security,
                            }
                        ]
                    },
                )
                client.handle("SetNetworkProfile", lambda ctx: {"status": "Accepted"})
                await client.call(
                    "BootNotification",
                    {
                        "reason": "PowerUp",
                        "chargingStation": {
                            "model": "M",
                            "vendorName": "V",
                            "serialNumber": s["serial"],
                        },
                    },
                )
                id_token = {"idToken": s["idtoken"], "type": "ISO14443"}
                await client.call("Authorize", {"idToken": id_token})
                await client.call(
                    "TransactionEvent",
                    {
                        "eventType": "Started",
                        "timestamp": NOW,
                        "triggerReason": "Authorized",
                        "seqNo": 0,
                        "transactionInfo": {"transactionId": "T-1"},
                        "idToken": id_token,
                    },
                )
                await client.call(
                    "NotifyReport",
                    {
                        "requestId": 1,
                        "generatedAt": NOW,
                        "seqNo": 0,
                        "reportData": [
                            {
                                **security,
                                "variableAttribute": [
                                    {"type": "Actual", "value": s["basic_report"]}
                                ],
                            }
                        ],
                    },
                )
                with pytest.raises(CallErrorReceived):
                    await client.call("DataTransfer", {"vendorId": "V"})
                await client.send_raw(
                    f'[2,"bad-1","Authorize",{{"idToken":{{"idToken":"{s["bad"]}"'
                )
                await bad_seen.wait()
                await server_done.wait()
    assert_no_secret(everything, s)
    assert_lifecycle_and_warning(everything, "CP-201")


# --- per-station files ------------------------------------------------------------------


def file_log(directory: Path, **options: Any) -> tuple[FrameLog, StationFileHandler]:
    """A frame log writing to station files only (its logger stays off)."""
    handler = StationFileHandler(directory, **options)
    logger = logging.getLogger("tests.framelog.files")
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    return FrameLog(logger=logger, handler=handler), handler


def test_files_rotate_at_max_bytes(tmp_path: Path) -> None:
    log, handler = file_log(tmp_path, max_bytes=1000, backup_count=2)
    try:
        for i in range(40):
            log_frame(log, f'[2,"m{i}","Heartbeat",{{}}]', identity="CP1", message_id=f"m{i}")
    finally:
        log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["CP1.jsonl", "CP1.jsonl.1", "CP1.jsonl.2"]
    ids = []
    for name in reversed(names):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert len(text.encode()) <= 1000
        ids += [json.loads(line)["message_id"] for line in text.splitlines()]
    assert ids == [f"m{i}" for i in range(40 - len(ids), 40)]  # the newest, in order
    assert handler.open_files == 0


HOSTILE: Final = [
    "../x",
    "../../escape",
    "/etc/passwd",
    "a/b\\c",
    "..",
    ".",
    ".hidden",
    "CON",
    "nul",
    "Com1",
    "Ladesäule-7",
    "東京",
    "CP\x00\n\u202e",
    "\ud800",
    "%41",
    "A",
    "x" * 1000,
    "x" * 999 + "y",
    "",
]


def test_hostile_identities_stay_inside_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "frames"
    log, handler = file_log(directory)
    try:
        for identity in HOSTILE:
            log_frame(log, '[2,"m1","Heartbeat",{}]', identity=identity)
    finally:
        log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]
    files = sorted(directory.iterdir())
    assert len(files) == len(HOSTILE)  # one file each: no two identities share one
    for path in files:
        assert path.parent == directory.resolve() or path.parent == directory
        assert len(path.name.encode()) < 200
        assert re.fullmatch(r"[A-Za-z0-9_%~-]+\.jsonl", path.name), path.name
        assert path.name.upper().split(".")[0] not in {"CON", "NUL", "COM1"}
        (line,) = path.read_text(encoding="utf-8").splitlines()
        identity = json.loads(line)["identity"]
        assert handler.path_for(identity).name == path.name
    assert station_file_name("../x") == "%2E%2E%2Fx"
    assert station_file_name("Ladesäule") == "Lades%C3%A4ule"
    assert station_file_name("CON") == "%43ON"


def _open_in(directory: Path) -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory.resolve())):
            count += 1
    return count


def test_least_recently_used_files_are_closed_beyond_the_bound(tmp_path: Path) -> None:
    log, handler = file_log(tmp_path, max_open_files=3)
    try:
        for round_ in range(2):
            for i in range(10):
                log_frame(log, '[2,"m1","Heartbeat",{}]', identity=f"CP{i}")
                assert handler.open_files == min(i + 1 + 3 * round_, 3)
                if Path("/proc/self/fd").is_dir():
                    assert _open_in(tmp_path) <= 3
        # The three most recent stay open: writing to them opens nothing.
        for i in (7, 8, 9):
            log_frame(log, '[2,"m2","Heartbeat",{}]', identity=f"CP{i}")
        assert handler.open_files == 3
    finally:
        log.close()
    assert handler.open_files == 0
    for i in range(10):
        lines = (tmp_path / f"CP{i}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == (3 if i >= 7 else 2)  # reopened for appending, nothing lost


def test_files_get_frames_with_the_logger_off_and_through_a_logger(tmp_path: Path) -> None:
    """``handler=`` writes whether or not the logger is on; attached to ``ocpp_trio.frames``
    it writes what that logger gets; a record that names no station goes to ``%other``."""
    log, _ = file_log(tmp_path / "direct")
    log_frame(log, '[2,"m1","Heartbeat",{}]')
    log.close()
    assert (tmp_path / "direct" / "CP1.jsonl").exists()
    handler = StationFileHandler(tmp_path / "attached")
    with capturing("tests.framelog.attached", handler, propagate=False) as logger:
        log_frame(FrameLog(logger=logger), '[2,"m1","Heartbeat",{}]', identity="CP2")
        logger.info("a line of another kind")
    handler.close()
    assert sorted(p.name for p in (tmp_path / "attached").iterdir()) == [
        "%other.jsonl",
        "CP2.jsonl",
    ]


def test_max_open_files_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_open_files"):
        StationFileHandler(tmp_path, max_open_files=0)


# --- docs ---------------------------------------------------------------------------------


def test_public_names_are_in_the_reference() -> None:
    from ocpp_trio.observability import framelog

    page = (ROOT / "docs" / "reference" / "observability.md").read_text(encoding="utf-8")
    section = page.split("::: ocpp_trio.observability.framelog", 1)[1]
    for name in framelog.__all__:
        assert f"- {name}\n" in section, name
