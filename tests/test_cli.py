"""The pieces of the ``ocpp-trio`` command, in process: parsing, statistics, the validator,
the CSMS and the simulated stations talking over loopback, the demo's live view.

The commands themselves, run as subprocesses, are in ``test_cli_commands.py``.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from ocpp_trio import HandlerContext, OCPPConnection, serve_ocpp
from ocpp_trio.cli import build_parser, main
from ocpp_trio.cli._common import LatencyStats, PasswordBook, percentiles, root_cause
from ocpp_trio.cli._output import MessageLog
from ocpp_trio.cli._sim import SimulatedStation, StationOptions
from ocpp_trio.cli._store import Store
from ocpp_trio.cli.demo import run_demo
from ocpp_trio.cli.serve import CSMSApp
from ocpp_trio.cli.station import Fleet, make_station
from ocpp_trio.cli.validate import FrameChecker, field_path, frames_of

PROTOCOLS = ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]
NOW = "2024-01-01T00:00:00Z"
TIMEOUT = 15.0


# --- parsing and small helpers ----------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["serve", "--port", "x"], "argument --port: not a port number: 'x'"),
        (["serve", "--protocols", "ocpp9"], "unknown protocol 'ocpp9'"),
        (["serve", "--relax", "be_nice"], "unknown relaxation 'be_nice'"),
        (["serve", "--ocpp16-schemas", "2015"], "invalid choice: '2015'"),
        (["station", "ws://h/ocpp"], "the following arguments are required: IDENTITY"),
        (["station", "ws://h/ocpp", "CP", "--count", "0"], "--count: must be >= 1"),
        (["demo", "--duration", "-1"], "--duration: must be > 0"),
        (["nosuch"], "invalid choice: 'nosuch'"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert needle in err
    assert "--help" in err


def test_checks_after_parsing_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["serve", "--security-profile", "1"], "--security-profile 1 needs --password-file"),
        (["serve", "--security-profile", "2", "--password-file", "x"], "needs --cert"),
        (["serve", "--cert", "c.pem"], "--cert and --key are only used with"),
        (["serve", "--relax", "enum_case"], "--relax is only used with --strict"),
        (["serve", "--report-invalid"], "--report-invalid is only used with --strict"),
        (["serve", "--ocpp16-schemas", "pre-errata"], "--ocpp16-schemas is only used with"),
        (["station", "http://h", "CP"], "ENDPOINT must be a ws:// or wss:// URL"),
        (["station", "ws://h", "CP", "--security-profile", "2", "--password", "p"], "wss://"),
        (["station", "ws://h", "CP", "--repeat"], "--repeat needs --duration"),
        (["validate", str(tmp_path / "missing.jsonl")], "cannot read"),
        (
            ["serve", "--security-profile", "1", "--password-file", str(tmp_path / "no")],
            "cannot read",
        ),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"ocpp-trio {argv[0]}: error: "), err
        assert needle in err, (argv, err)
        assert err.count("\n") == 1


def test_every_command_has_help() -> None:
    parser = build_parser()
    for command in ("serve", "station", "validate", "demo"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([command, "--help"])
        assert exc.value.code == 0


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    assert percentiles([3.0]) == {"p50": 3.0, "p90": 3.0, "p99": 3.0, "max": 3.0}
    assert percentiles([]) == {}
    stats = LatencyStats()
    for v in (0.3, 0.1, 0.2):
        stats.add(v)
    assert stats.percentiles((50,)) == {"p50": 0.2, "max": 0.3}


def test_password_book() -> None:
    book = PasswordBook.parse("# stations\nCP001:secret:with:colons\n*:fallback-pass\n")
    assert book.check("CP001", b"secret:with:colons")
    assert not book.check("CP001", b"fallback-pass")
    assert book.check("CP002", b"fallback-pass")
    assert not book.check("CP002", None)
    assert "secret" not in repr(book)
    with pytest.raises(Exception, match="line 1: expected IDENTITY:PASSWORD"):
        PasswordBook.parse("no-colon-here\n")


def test_root_cause_finds_the_os_error() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    outer = OSError("all attempts failed")
    outer.__cause__ = ExceptionGroup("attempts", [refused])
    assert root_cause(outer) == "Connection refused"
    assert root_cause(ValueError("plain")) == "plain"


# --- the validator ------------------------------------------------------------------


def frames(*lines: object) -> bytes:
    return "\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines).encode()


def check_all(data: bytes, protocol: str = "ocpp1.6") -> tuple[FrameChecker, list[Any]]:
    checker = FrameChecker(protocol)
    problems = [p for line, text in frames_of(data) for p in checker.check(text, line)]
    return checker, problems


def test_validator_accepts_a_good_session() -> None:
    data = frames(
        [2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}],
        [3, "1", {"status": "Accepted", "currentTime": NOW, "interval": 300}],
        "",
        "# comment",
        [2, "2", "Authorize", {"idTag": "T"}],
        [4, "2", "SecurityError", "unknown", {}],
    )
    checker, problems = check_all(data)
    assert problems == []
    assert (checker.frames, checker.invalid) == (3 + 1, 0)


@pytest.mark.parametrize(
    ("protocol", "code"),
    [("ocpp1.6", "OccurenceConstraintViolation"), ("ocpp2.0.1", "OccurrenceConstraintViolation")],
)
def test_validator_names_line_action_path_and_code(protocol: str, code: str) -> None:
    boot = {"chargingStation": {"vendorName": "V"}, "reason": "PowerUp"}
    if protocol == "ocpp1.6":
        boot = {"chargePointVendor": "V"}
    _, problems = check_all(frames([2, "a", "BootNotification", boot]), protocol)
    (p,) = problems
    assert (p.line, p.action, p.direction, p.code) == (1, "BootNotification", "request", code)
    expected = "chargePointModel" if protocol == "ocpp1.6" else "chargingStation.model"
    assert p.path == expected
    assert p.text("f.jsonl").startswith(f"f.jsonl:1: BootNotification request: {expected} is")


def test_validator_checks_results_against_their_call() -> None:
    data = frames(
        [2, "1", "Heartbeat", {}],
        [3, "1", {"currentTime": "not a time"}],
        [3, "9", {}],
    )
    checker, problems = check_all(data)
    assert [(p.line, p.severity, p.action) for p in problems] == [
        (2, "error", "Heartbeat"),
        (3, "warning", None),
    ]
    assert problems[0].direction == "response"
    assert (checker.invalid, checker.warnings) == (1, 1)


def test_validator_framing_rules() -> None:
    data = b"\n".join(
        [
            b"not json",
            b'[2,"1","Heartbeat"]',
            b'[9,"1","Heartbeat",{}]',
            b'[2,"' + b"x" * 37 + b'","Heartbeat",{}]',
            b'[2,"2","NoSuchAction",{}]',
            b'[4,"3","Oops","",{}]',
            b'[2,"4","Heartbeat",{}]',
            b'[2,"4","Heartbeat",{}]',
            b'[2,"5","Heartbeat","\xff"]',
        ]
    )
    checker, problems = check_all(data)
    by_line = {p.line: p for p in problems if p.severity == "error"}
    assert by_line[1].code == "FormationViolation"
    assert "not valid JSON" in by_line[1].message
    assert "4 elements" in by_line[2].message
    assert by_line[3].code == "ProtocolError"  # 1.6 spelling of MessageTypeNotSupported
    assert "36" in by_line[4].message
    assert by_line[5].code == "NotImplemented"
    assert "errorCode 'Oops'" in by_line[6].message
    assert "already used" in by_line[8].message
    assert "UTF-8" in by_line[9].message
    assert checker.invalid == 8


def test_validator_reads_arrays_of_frames_with_their_lines() -> None:
    text = '[\n  [2, "1", "Heartbeat", {}],\n\n  [3, "1", {"currentTime": 5}]\n]\n'
    _, problems = check_all(text.encode())
    (p,) = problems
    assert (p.line, p.code, p.path) == (4, "TypeConstraintViolation", "currentTime")


def test_validator_ocpp21_send() -> None:
    send = [
        6,
        "1",
        "NotifyPeriodicEventStream",
        {"id": 1, "pending": 0, "basetime": NOW, "data": [{"t": 0.5, "v": "1"}]},
    ]
    _, problems = check_all(frames(send), "ocpp2.1")
    assert problems == []
    _, problems = check_all(frames(send), "ocpp2.0.1")
    assert problems[0].code == "MessageTypeNotSupported"
    _, problems = check_all(frames([6, "2", "Heartbeat", {}]), "ocpp2.1")
    assert "not sent as SEND" in problems[0].message


def test_validator_reads_recordings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_text(
        frames(
            {"format": "ocpp_trio.recording", "version": 1, "protocol": "ocpp2.0.1"},
            {"t": 0.0, "dir": "in", "text": json.dumps([2, "1", "Heartbeat", {}])},
            {"t": 0.1, "dir": "out", "text": json.dumps([3, "1", {"currentTime": NOW}])},
        ).decode()
    )
    assert main(["validate", str(path)]) == 0
    assert "2 frames (ocpp2.0.1), 2 valid, 0 invalid" in capsys.readouterr().out


def test_validator_with_the_earlier_16_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vendor_key = {
        "connectorId": 1,
        "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": "1", "acme": 1}]}],
    }
    path = tmp_path / "frames.jsonl"
    path.write_text(json.dumps([2, "1", "MeterValues", vendor_key]) + "\n")
    assert main(["validate", str(path)]) == 1
    assert "1 invalid" in capsys.readouterr().out
    assert main(["validate", "--ocpp16-schemas", "pre-errata", str(path)]) == 0
    assert "1 valid, 0 invalid" in capsys.readouterr().out
    argv = ["validate", "--protocol", "ocpp2.0.1", "--ocpp16-schemas", "pre-errata", str(path)]
    assert main(argv) == 2
    assert "only used with ocpp1.6 frames" in capsys.readouterr().err


def test_field_path() -> None:
    assert (
        field_path("chargingStation.model must be at most 20 characters") == "chargingStation.model"
    )
    assert field_path("meterValue[0].sampledValue is required") == "meterValue[0].sampledValue"
    assert field_path("payload must be a JSON object, not array") == ""


# --- the CSMS and the stations over loopback ------------------------------------------


@asynccontextmanager
async def csms(app: CSMSApp | None = None, handler: Any = None) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_ocpp,
                handler or (app.on_station if app else None),
                0,
                host="127.0.0.1",
                strict_mode=True,
            )
        )
        yield f"ws://127.0.0.1:{server.port}/ocpp"
        with trio.move_on_after(5):
            await server.close()
        nursery.cancel_scope.cancel()


def station_options(protocol: str, **kw: Any) -> StationOptions:
    kw.setdefault("client_options", {"strict_mode": True, "call_timeout": 5.0})
    return StationOptions(protocol=protocol, meter_interval=0.01, **kw)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_csms_records_a_charging_session(protocol: str) -> None:
    store = Store()
    app = CSMSApp(store, MessageLog(), inventory="full")
    log = MessageLog()
    with trio.fail_after(TIMEOUT):
        async with csms(app) as url:
            fleet = Fleet(
                [
                    make_station(
                        url,
                        f"CP-{i}",
                        station_options(protocol, scenario="charge"),
                        log=log,
                        printer=None,
                    )
                    for i in (1, 2)
                ],
                log,
            )
            await fleet.run()
    assert fleet.ok, fleet.summary()
    summary = fleet.summary()
    assert summary["sessions"] == 2
    assert summary["failed_calls"] == 0
    assert summary["answered"] == 2  # the configuration requests
    assert app.log.errors == log.errors == 0
    rows = {r["identity"]: r for r in store.station_rows()}
    assert set(rows) == {"CP-1", "CP-2"}
    assert all(r["protocol"] == protocol and r["boot_status"] == "Accepted" for r in rows.values())
    assert all(r["transactions"] == 1 and r["status"] == "Available" for r in rows.values())
    overview = store.overview()
    assert overview["finished_transactions"] == 2
    assert overview["energy_wh"] >= 0
    (count,) = store.db.execute(
        "SELECT COUNT(*) FROM configuration WHERE key LIKE 'HeartbeatInterval%'"
    ).fetchone()
    assert count == 2
    (samples,) = store.db.execute(
        "SELECT COUNT(*) FROM meter_values WHERE measurand = 'Energy.Active.Import.Register'"
    ).fetchone()
    assert samples == 2
    assert len(log.call_latency) == summary["calls"]


CallPlan = Callable[[OCPPConnection, dict[str, Any]], Any]


async def _calls_16(conn: OCPPConnection, seen: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["get"] = await conn.call("GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})
    out["change"] = await conn.call(
        "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "1"}
    )
    out["readonly"] = await conn.call(
        "ChangeConfiguration", {"key": "NumberOfConnectors", "value": "2"}
    )
    out["unknown"] = await conn.call("ChangeConfiguration", {"key": "Nope", "value": "2"})
    out["trigger"] = await conn.call("TriggerMessage", {"requestedMessage": "MeterValues"})
    out["start"] = await conn.call("RemoteStartTransaction", {"idTag": "R1"})
    out["start_again"] = await conn.call("RemoteStartTransaction", {"idTag": "R2"})
    await seen["StartTransaction"].wait()
    out["stop_wrong"] = await conn.call("RemoteStopTransaction", {"transactionId": 999})
    out["stop"] = await conn.call("RemoteStopTransaction", {"transactionId": 1})
    await seen["StopTransaction"].wait()
    out["reset"] = await conn.call("Reset", {"type": "Soft"})
    await seen["BootNotification#2"].wait()
    out["data"] = await conn.call("DataTransfer", {"vendorId": "x"})
    return out


async def _calls_2x(conn: OCPPConnection, seen: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    hb = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    out["get"] = await conn.call(
        "GetVariables",
        {
            "getVariableData": [
                hb,
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "X"}},
            ]
        },
    )
    out["set"] = await conn.call(
        "SetVariables",
        {
            "setVariableData": [
                {**hb, "attributeValue": "5"},
                {
                    "component": {"name": "SecurityCtrlr"},
                    "variable": {"name": "SecurityProfile"},
                    "attributeValue": "3",
                },
            ]
        },
    )
    out["report"] = await conn.call(
        "GetBaseReport", {"requestId": 3, "reportBase": "FullInventory"}
    )
    await seen["NotifyReport"].wait()
    out["trigger"] = await conn.call("TriggerMessage", {"requestedMessage": "SignV2GCertificate"})
    out["start"] = await conn.call(
        "RequestStartTransaction",
        {"idToken": {"idToken": "R1", "type": "Central"}, "remoteStartId": 5},
    )
    await seen["Started"].wait()
    out["stop"] = await conn.call(
        "RequestStopTransaction", {"transactionId": out["start"]["transactionId"]}
    )
    await seen["Ended"].wait()
    out["reset"] = await conn.call("Reset", {"type": "Immediate"})
    await seen["BootNotification#2"].wait()
    return out


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_station_answers_the_csms(protocol: str) -> None:
    names = [
        "StartTransaction",
        "StopTransaction",
        "NotifyReport",
        "Started",
        "Ended",
        "BootNotification#2",
    ]
    seen = {name: trio.Event() for name in names}
    received: list[tuple[str, dict[str, Any]]] = []
    answers: dict[str, Any] = {}
    done = trio.Event()
    rebooted = trio.Event()  # the StatusNotification after the second boot

    async def on_station(conn: OCPPConnection) -> None:
        booted = trio.Event()
        # The station has applied the boot answer (its interval) once it sends
        # its first StatusNotification; calling it before that would race it.
        settled = trio.Event()

        def record(ctx: HandlerContext) -> dict[str, Any]:
            received.append((ctx.method, ctx.params))
            method, p = ctx.method, ctx.params
            if method == "StatusNotification" and booted.is_set():
                settled.set()
            if method == "StatusNotification" and seen["BootNotification#2"].is_set():
                rebooted.set()
            if method == "BootNotification":
                if booted.is_set():
                    seen["BootNotification#2"].set()
                booted.set()
                return {"status": "Accepted", "currentTime": NOW, "interval": 60}
            if method == "Heartbeat":
                return {"currentTime": NOW}
            if method in ("Authorize", "StopTransaction"):
                if method in seen:
                    seen[method].set()
                return {"idTagInfo": {"status": "Accepted"}}
            if method == "StartTransaction":
                seen[method].set()
                return {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}
            if method == "TransactionEvent" and p["eventType"] in seen:
                seen[p["eventType"]].set()
            if method == "NotifyReport":
                seen[method].set()
            return {}

        conn.handle(record)
        await settled.wait()
        plan = _calls_16 if protocol == "ocpp1.6" else _calls_2x
        answers.update(await plan(conn, seen))
        done.set()

    log = MessageLog()
    with trio.fail_after(TIMEOUT):
        async with csms(handler=on_station) as url:
            station: SimulatedStation = make_station(
                url, "CP001", station_options(protocol, scenario="boot"), log=log, printer=None
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(station.run, trio.current_time() + 10)
                await done.wait()
                await rebooted.wait()
                station.stop()
    assert station.completed
    assert station.failure is None, station.failure
    assert log.errors == 0
    methods = [m for m, _ in received]
    assert methods.count("BootNotification") == 2
    if protocol == "ocpp1.6":
        get = answers["get"]
        assert get["configurationKey"] == [
            {"key": "HeartbeatInterval", "readonly": False, "value": "60"}
        ]
        assert get["unknownKey"] == ["Nope"]
        assert [answers[k]["status"] for k in ("change", "readonly", "unknown")] == [
            "Accepted",
            "Rejected",
            "NotSupported",
        ]
        assert station.meter_interval == 1.0
        assert answers["trigger"] == {"status": "Accepted"}
        assert answers["start"] == {"status": "Accepted"}
        assert answers["start_again"] == {"status": "Rejected"}
        assert answers["stop_wrong"] == {"status": "Rejected"}
        assert answers["stop"] == {"status": "Accepted"}
        stop = next(p for m, p in received if m == "StopTransaction")
        assert (stop["transactionId"], stop["reason"], stop["idTag"]) == (1, "Remote", "R1")
        assert answers["data"] == {"status": "UnknownVendorId"}
        assert "Authorize" not in methods  # AuthorizeRemoteTxRequests is false
    else:
        results = answers["get"]["getVariableResult"]
        assert [r["attributeStatus"] for r in results] == ["Accepted", "UnknownVariable"]
        assert results[0]["attributeValue"] == "60"
        assert [r["attributeStatus"] for r in answers["set"]["setVariableResult"]] == [
            "Accepted",
            "Rejected",
        ]
        report = next(p for m, p in received if m == "NotifyReport")
        assert report["requestId"] == 3
        reported = {d["variable"]["name"]: d["variableAttribute"][0] for d in report["reportData"]}
        assert reported["HeartbeatInterval"] == {"value": "5", "mutability": "ReadWrite"}
        assert reported["SecurityProfile"]["mutability"] == "ReadOnly"
        assert answers["trigger"] == {"status": "NotImplemented"}
        assert answers["start"]["status"] == "Accepted"
        started = next(p for m, p in received if m == "TransactionEvent")
        assert started["triggerReason"] == "RemoteStart"
        assert started["transactionInfo"]["remoteStartId"] == 5
        assert started["transactionInfo"]["transactionId"] == answers["start"]["transactionId"]
        ended = [p for m, p in received if m == "TransactionEvent"][-1]
        assert ended["transactionInfo"]["stoppedReason"] == "Remote"
        reboot = [p for m, p in received if m == "BootNotification"][-1]
        assert reboot["reason"] == "RemoteReset"
    assert answers["reset"] == {"status": "Accepted"}


async def test_station_retries_a_pending_boot() -> None:
    answers = iter([("Pending", 1), ("Accepted", 30)])

    async def on_station(conn: OCPPConnection) -> None:
        def boot(ctx: HandlerContext) -> dict[str, Any]:
            status, interval = next(answers)
            return {"status": status, "currentTime": NOW, "interval": interval}

        conn.handle("BootNotification", boot)
        conn.handle("StatusNotification", lambda ctx: {})
        conn.handle("Heartbeat", lambda ctx: {"currentTime": NOW})

    with trio.fail_after(TIMEOUT):
        async with csms(handler=on_station) as url:
            station = make_station(
                url, "CP", station_options("ocpp1.6"), log=MessageLog(), printer=None
            )
            await station.run()
    assert station.completed
    assert station.heartbeat_interval == 30
    assert station.calls == 4  # Boot (Pending), Boot, StatusNotification, Heartbeat


async def test_scenario_not_completed_within_the_duration_fails() -> None:
    async def on_station(conn: OCPPConnection) -> None:
        conn.handle(
            "BootNotification",
            lambda ctx: {"status": "Rejected", "currentTime": NOW, "interval": 60},
        )

    with trio.fail_after(TIMEOUT):
        async with csms(handler=on_station) as url:
            station = make_station(
                url, "CP", station_options("ocpp2.0.1"), log=MessageLog(), printer=None
            )
            await station.run(trio.current_time() + 0.3)
    assert not station.completed
    assert station.failure == "BootNotification: not completed within the duration"


async def test_demo_live_view() -> None:
    out = io.StringIO()
    with trio.fail_after(TIMEOUT):
        status = await run_demo(stations=3, duration=1.0, out=out, live=True)
    text = out.getvalue()
    assert status == 0, text
    assert "\x1b[?25l" in text  # the cursor is hidden while the view refreshes...
    assert "\x1b[?25h" in text  # ...and shown again
    assert "DEMO-3" in text
    assert "demo summary: 3 stations (1 ocpp1.6, 1 ocpp2.0.1, 1 ocpp2.1)" in text
    assert "3 completed their scenario, 0 failed" in text


def test_serve_strict_mode_options() -> None:
    from ocpp_trio import ValidationPolicy, get_validator
    from ocpp_trio.cli.serve import _validation, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert _validation(parser.parse_args([])) == {"strict_mode": False}
    assert _validation(parser.parse_args(["--strict"])) == {"strict_mode": True}
    options = _validation(
        parser.parse_args(
            [
                "--strict",
                "--ocpp16-schemas",
                "pre-errata",
                "--relax",
                "enum_case,numbers_as_strings",
                "--report-invalid",
            ]
        )
    )
    assert options == {
        "strict_mode": True,
        "strict_mode_validators": [get_validator("ocpp1.6", variant="pre-errata")],
        "validation_policy": ValidationPolicy(
            default="report", relaxations={"enum_case", "numbers_as_strings"}
        ),
    }
