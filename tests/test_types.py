"""The typed API: generated types agree with the schemas; typed call/handle/send at run time.

The static side (inferred types, errors that must be raised) is in
``tests/typing/``, checked by mypy and pyright in ``make typecheck``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

import pytest
import trio.testing

import ocpp_trio.types
from ocpp_trio import (
    NOREPLY,
    CallErrorReceived,
    CallTimeout,
    HandlerContext,
    ProtocolMismatchError,
    ValidationError,
    create_validator,
)
from ocpp_trio._core.validation import load_schemas, send_only_actions
from ocpp_trio.testing import open_memory_pair
from ocpp_trio.types import (
    PROTOCOLS,
    Action,
    Message,
    SendAction,
    actions,
    get_action,
    request_type,
    response_type,
    v16,
    v21,
    v201,
)

ROOT = Path(__file__).resolve().parent.parent
NOW = "2024-01-01T00:00:00Z"
SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}


# --- the generated modules agree with the schemas -------------------------------


def _check_type(hint: Any, schema: Mapping[str, Any], defs: Mapping[str, Any], where: str) -> None:
    """Assert that the annotation ``hint`` is what the generator promises for ``schema``."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    if "enum" in schema:
        assert typing.get_origin(hint) is Literal, where
        # as sets: typing caches ``X[Literal[...]]`` by an order-blind equality
        assert set(typing.get_args(hint)) == set(schema["enum"]), where
        assert len(typing.get_args(hint)) == len(schema["enum"]), where
        return
    kind = schema.get("type")
    if kind == "array":
        assert typing.get_origin(hint) is list, where
        _check_type(typing.get_args(hint)[0], schema["items"], defs, where + "[]")
    elif kind == "object" and schema.get("properties"):
        _check_typeddict(hint, schema, defs, where)
    elif kind == "object":
        assert hint == dict[str, Any], where
    elif kind in SCALARS:
        assert hint is SCALARS[kind], where
    else:
        assert hint is Any, where


def _check_typeddict(
    td: Any, schema: Mapping[str, Any], defs: Mapping[str, Any], where: str
) -> None:
    assert typing.is_typeddict(td), where
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    assert td.__required_keys__ == required, where
    assert td.__optional_keys__ == set(properties) - required, where
    hints = typing.get_type_hints(td)
    raw_hints = typing.get_type_hints(td, include_extras=True)
    assert set(hints) == set(properties), where
    for name, sub in properties.items():
        is_optional = typing.get_origin(raw_hints[name]) is NotRequired
        assert is_optional == (name not in required), f"{where}.{name}"
        _check_type(hints[name], sub, defs, f"{where}.{name}")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_generated_type_matches_its_schema(protocol: str) -> None:
    schemas = load_schemas(protocol, raw=True)
    entries = actions(protocol)
    checked = 0
    for (action, direction), schema in sorted(schemas.items()):
        entry = entries[action]
        td = request_type(entry) if direction == "request" else response_type(entry)
        assert td is not None, (action, direction)
        suffix = "Request" if direction == "request" else "Response"
        assert td.__name__ == action + suffix
        _check_typeddict(td, schema, schema.get("definitions", {}), f"{action}{suffix}")
        checked += 1
    assert checked == len(schemas)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_registry_lists_every_action_once(protocol: str) -> None:
    schemas = load_schemas(protocol, raw=True)
    send_only = send_only_actions(protocol)
    module = ocpp_trio.types._module(protocol)
    entries = actions(protocol)
    assert set(entries) == {action for action, _ in schemas}
    assert set(typing.get_args(module.ActionName)) == set(entries)
    assert protocol == module.PROTOCOL
    for name, entry in entries.items():
        assert (entry.protocol, entry.action) == (protocol, name)
        assert getattr(module, name) is entry
        assert get_action(protocol, name) is entry
        if name in send_only:
            assert issubclass(entry, SendAction)
            assert not issubclass(entry, Action)
            assert response_type(entry) is None
        else:
            assert issubclass(entry, Action)
            assert response_type(entry) is getattr(module, name + "Response")
        assert request_type(entry) is getattr(module, name + "Request")


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown protocol 'ocpp9'.*ocpp1\.6"):
        actions("ocpp9")
    with pytest.raises(KeyError, match=r"'Rest' is not an action of ocpp2\.0\.1"):
        get_action("ocpp2.0.1", "Rest")
    with pytest.raises(TypeError, match="not a subclass of Action"):
        request_type(Message)
    with pytest.raises(AttributeError, match="no attribute 'v99'"):
        _ = ocpp_trio.types.v99


def test_nested_names_follow_the_schemas() -> None:
    # definitions keep their names; 1.6's inline objects are named after their property
    assert v201.ChargingStationType.__required_keys__ == {"model", "vendorName"}
    assert v16.IdTagInfo.__required_keys__ == {"status"}
    assert typing.get_type_hints(v16.AuthorizeResponse)["idTagInfo"] is v16.IdTagInfo
    # one name, one structure in two messages: one type (MeterValues' and
    # StopTransaction's sampledValue agree since the OCA's 2019-12 1.6 set)
    assert typing.get_type_hints(v16.MeterValue)["sampledValue"] == list[v16.SampledValue]
    assert typing.get_type_hints(v16.TransactionData)["sampledValue"] == list[v16.SampledValue]
    assert typing.get_args(v201.ResetEnumType) == ("Immediate", "OnIdle")


def test_docstrings_come_from_the_descriptions() -> None:
    doc = v201.ChargingStationType.__doc__ or ""
    assert doc.startswith("The physical system where an Electrical Vehicle (EV) can be charged.")
    assert "urn:x-oca" not in Path(v201.__file__).read_text(encoding="utf-8")


def test_importing_the_package_leaves_the_generated_modules_alone() -> None:
    code = (
        "import sys, ocpp_trio, ocpp_trio.types\n"
        "assert not [m for m in ('v16', 'v201', 'v21') if 'ocpp_trio.types.' + m in sys.modules]\n"
        "import ocpp_trio.types as t\n"
        "assert t.v201.Reset.action == 'Reset' and 'ocpp_trio.types.v201' in sys.modules\n"
        "assert t.HandlerContext is ocpp_trio.HandlerContext\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _load_generator() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_types", ROOT / "tools/generate_types.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_committed_modules_are_up_to_date() -> None:
    generator = _load_generator()
    for protocol, module in (("ocpp1.6", v16), ("ocpp2.0.1", v201), ("ocpp2.1", v21)):
        assert generator.generate(protocol) == Path(module.__file__ or "").read_text("utf-8")


def test_clean_description() -> None:
    clean = _load_generator().clean_description
    text = "Charge_ Point\r\nurn:x-oca:ocpp:uid:2:233122\r\nThe station.\r\n"
    assert clean(text) == "The station."
    assert clean("As in &lt;&lt;ref-RFC5646,[RFC5646]&gt;&gt; &amp; <<cmn_x>>.") == (
        "As in [RFC5646] & cmn_x."
    )
    assert clean(None) == ""


# --- typed call / handle / send at run time ---------------------------------------

BOOT_16: v16.BootNotificationRequest = {"chargePointVendor": "V", "chargePointModel": "M"}


async def test_typed_call_and_handler_on_16() -> None:
    async with open_memory_pair("ocpp1.6", strict_mode=True) as (station, csms):

        @csms.handle(v16.BootNotification)
        def boot(ctx: HandlerContext[v16.BootNotificationRequest]) -> v16.BootNotificationResponse:
            assert ctx.params == BOOT_16
            assert (ctx.protocol, ctx.method) == ("ocpp1.6", "BootNotification")
            return {"status": "Accepted", "currentTime": NOW, "interval": 300}

        res = await station.call(v16.BootNotification(BOOT_16))
        assert res == {"status": "Accepted", "currentTime": NOW, "interval": 300}
        # the typed handler is the version-specific one: the string forms see the same
        assert await station.call("ocpp1.6", "BootNotification", BOOT_16) == res
        assert csms.remove_handler(v16.BootNotification)
        assert not csms.remove_handler("ocpp1.6", "BootNotification")


async def test_typed_async_handler_as_decorator_on_201() -> None:
    async with open_memory_pair("ocpp2.0.1", strict_mode=True) as (station, csms):

        @station.handle(v201.Reset)
        async def reset(ctx: HandlerContext[v201.ResetRequest]) -> v201.ResetResponse:
            return {"status": "Scheduled" if ctx.params["type"] == "OnIdle" else "Accepted"}

        assert await csms.call(v201.Reset({"type": "OnIdle"})) == {"status": "Scheduled"}
        assert await csms.call(v201.Reset({"type": "Immediate"}), timeout=5) == {
            "status": "Accepted"
        }


async def test_typed_handler_may_return_noreply() -> None:
    async with open_memory_pair("ocpp1.6", call_timeout=1) as (station, csms):
        seen: list[str] = []

        def later(ctx: HandlerContext[v16.HeartbeatRequest]) -> v16.HeartbeatResponse | Any:
            seen.append(ctx.message_id)
            return NOREPLY

        csms.handle(v16.Heartbeat, later)
        with pytest.raises(CallTimeout):
            await station.call(v16.Heartbeat({}))
        assert len(seen) == 1


async def test_an_action_of_another_version_is_refused() -> None:
    async with open_memory_pair("ocpp2.0.1") as (station, _csms):
        with pytest.raises(ProtocolMismatchError) as info:
            await station.call(v16.BootNotification(BOOT_16))
        assert str(info.value) == (
            "BootNotification is called as an action of 'ocpp1.6', "
            "but the connection speaks 'ocpp2.0.1'"
        )
        assert station.pending_calls == 0


async def test_a_handler_for_another_version_is_not_used() -> None:
    async with open_memory_pair("ocpp2.0.1") as (station, csms):
        csms.handle(v16.Heartbeat, lambda ctx: {"currentTime": NOW})
        with pytest.raises(CallErrorReceived) as info:
            await station.call(v201.Heartbeat({}))
        assert info.value.code == "NotSupported"


async def test_typed_send_on_21() -> None:
    stream: v21.NotifyPeriodicEventStreamRequest = {
        "id": 1,
        "pending": 0,
        "basetime": NOW,
        "data": [{"t": 0.5, "v": "12.5"}],
    }
    received: list[HandlerContext[v21.NotifyPeriodicEventStreamRequest]] = []
    async with open_memory_pair("ocpp2.1", strict_mode=True) as (station, csms):

        def on_stream(ctx: HandlerContext[v21.NotifyPeriodicEventStreamRequest]) -> None:
            received.append(ctx)

        csms.handle(v21.NotifyPeriodicEventStream, on_stream)
        await station.send(v21.NotifyPeriodicEventStream(stream))
        await trio.testing.wait_all_tasks_blocked()
    assert [(c.params, c.is_send) for c in received] == [(stream, True)]


def test_typed_call_argument_errors() -> None:
    from ocpp_trio._rpc.outbound import parse_call_args

    stream = v21.NotifyPeriodicEventStream({"id": 1, "pending": 0, "basetime": NOW, "data": []})
    with pytest.raises(TypeError, match=r"NotifyPeriodicEventStream is a SEND message.*use send"):
        parse_call_args((stream,))
    assert parse_call_args((stream,), send=True) == (
        "ocpp2.1",
        "NotifyPeriodicEventStream",
        stream.params,
    )
    with pytest.raises(TypeError, match=r"not the action class: Heartbeat\(\{\.\.\.\}\)"):
        parse_call_args((v16.Heartbeat,))
    assert parse_call_args((v16.Heartbeat({}),)) == ("ocpp1.6", "Heartbeat", {})
    assert repr(v16.Heartbeat({})) == "Heartbeat({})"


def test_typed_handle_argument_errors() -> None:
    from ocpp_trio.routing import parse_handle_args

    assert parse_handle_args((v201.Reset,)) == ("ocpp2.0.1", "Reset", None)
    with pytest.raises(TypeError, match=r"takes \(action\) or \(action, fn\), got 3"):
        parse_handle_args((v201.Reset, print, print))
    with pytest.raises(TypeError, match="handler must be callable"):
        parse_handle_args((v201.Reset, "fn"))

    class Nameless(Action[dict[str, Any], dict[str, Any]]):
        pass

    with pytest.raises(TypeError, match="names no protocol and action"):
        parse_handle_args((Nameless,))


# --- a custom protocol -----------------------------------------------------------


class UnlockRequest(TypedDict):
    bay: int


class UnlockResponse(TypedDict):
    status: Literal["Unlocked", "Failed"]


class Unlock(Action[UnlockRequest, UnlockResponse]):
    protocol = "acme1.0"
    action = "Unlock"


ACME_SCHEMAS = {
    "Unlock": {
        "request": {
            "type": "object",
            "properties": {"bay": {"type": "integer", "minimum": 1}},
            "required": ["bay"],
            "additionalProperties": False,
        },
        "response": {
            "type": "object",
            "properties": {"status": {"enum": ["Unlocked", "Failed"]}},
            "required": ["status"],
            "additionalProperties": False,
        },
    }
}


async def test_a_custom_protocol_gets_typed_calls_and_strict_validation() -> None:
    validator = create_validator("acme1.0", ACME_SCHEMAS, require_schema=True)
    async with open_memory_pair(
        "acme1.0", strict_mode=True, strict_mode_validators=[validator]
    ) as (station, csms):

        @station.handle(Unlock)
        def unlock(ctx: HandlerContext[UnlockRequest]) -> UnlockResponse:
            return {"status": "Unlocked" if ctx.params["bay"] < 10 else "Failed"}

        assert await csms.call(Unlock({"bay": 3})) == {"status": "Unlocked"}
        with pytest.raises(ValidationError, match="bay"):
            await csms.call(Unlock({"bay": 0}))
        assert request_type(Unlock) is UnlockRequest
        assert response_type(Unlock) is UnlockResponse


def test_the_public_names_of_ocpp_trio_types() -> None:
    namespace: dict[str, object] = {}
    exec("from ocpp_trio.types import *", namespace)
    for name in ocpp_trio.types.__all__:
        assert namespace[name] is getattr(ocpp_trio.types, name), name
    assert ocpp_trio.types.HandlerContext is HandlerContext
    assert isinstance(v16.Heartbeat({}), Message)
