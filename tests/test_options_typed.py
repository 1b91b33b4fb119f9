"""The typed keyword options match what the client and server accept, and run-time checks stay.

``ConnectionKwargs``, ``ClientKwargs`` and ``ServerKwargs`` are what a type
checker holds ``open_ocpp_client(...)``, ``OCPPServer(...)``,
``serve_ocpp(...)`` and ``reconfigure(...)`` to (``tests/typing``); these
tests keep them equal to the parameters the code really takes, so that a new
option cannot be forgotten in them, and show that an unknown option is still
refused at run time with a ``TypeError`` naming it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing

import pytest

from ocpp_trio import (
    ClientKwargs,
    ConnectionKwargs,
    ConnectionOptions,
    OCPPClient,
    OCPPServer,
    ServerKwargs,
    open_ocpp_client,
    serve_ocpp,
)
from ocpp_trio.events import EVENT_NAMES, EventName, EventPayload
from ocpp_trio.server import ServerEventName
from ocpp_trio.testing import open_memory_pair


def _keyword_only(fn: object, *, without: set[str]) -> set[str]:
    params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    return {
        p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in without
    }


def test_connection_kwargs_are_the_connection_options() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(ConnectionOptions)}
    assert ConnectionKwargs.__optional_keys__ == set(fields)
    assert not ConnectionKwargs.__required_keys__
    # the same annotation text as the dataclass field, key by key, but where a
    # keyword takes a shorthand the field never holds (True: a default gate)
    annotations = {
        name: getattr(ref, "__forward_arg__", ref)
        for name, ref in ConnectionKwargs.__annotations__.items()
    }
    shorthands = {"registration_gate": "RegistrationGate | bool | None"}
    assert annotations == {**fields, **shorthands}


def test_client_kwargs_are_the_client_parameters() -> None:
    own = _keyword_only(OCPPClient.__init__, without={"identity", "protocols", "options"})
    assert ClientKwargs.__optional_keys__ == own | ConnectionKwargs.__optional_keys__
    client_fields = set(ClientKwargs.__annotations__) - set(ConnectionKwargs.__annotations__)
    assert client_fields == own


def test_server_kwargs_are_the_server_parameters() -> None:
    own = _keyword_only(OCPPServer.__init__, without=set())
    assert ServerKwargs.__optional_keys__ == own | ConnectionKwargs.__optional_keys__
    # what serve_ocpp takes itself is not a server option
    assert not _keyword_only(serve_ocpp, without=set()) & ServerKwargs.__optional_keys__


def test_event_names_and_payloads() -> None:
    assert set(typing.get_args(EventName)) == EVENT_NAMES
    assert len(typing.get_args(EventPayload)) == len(EVENT_NAMES)
    assert set(typing.get_args(ServerEventName)) == {"client", "handshake_rejected"}


async def test_a_misspelt_client_option_is_a_type_error_at_run_time() -> None:
    with pytest.raises(TypeError, match="call_timout"):
        async with open_ocpp_client(
            "ws://127.0.0.1:1/ocpp",
            identity="CP1",
            call_timout=5,  # type: ignore[call-arg]
        ):
            pass  # pragma: no cover


def test_a_misspelt_server_option_is_a_type_error_at_run_time() -> None:
    with pytest.raises(TypeError, match="call_timout"):
        OCPPServer(None, call_timout=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="duplicate_polcy"):
        OCPPServer(None, duplicate_polcy="reject")  # type: ignore[call-arg]


async def test_serve_ocpp_passes_ssl_context_and_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="ping_intervall"):
        await serve_ocpp(None, 0, host="127.0.0.1", ping_intervall=0)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="ssl_context"):
        # profile 2 needs TLS: the option reaches the server as before
        await serve_ocpp(
            None, 0, host="127.0.0.1", security_profile=2, auth=lambda r: True, ssl_context=None
        )


async def test_reconfigure_and_on_check_at_run_time() -> None:
    async with open_memory_pair() as pair:
        with pytest.raises(TypeError, match="call_timout"):
            pair.station.reconfigure(call_timout=5)  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="call_timeout"):
            pair.station.reconfigure(call_timeout=0)
        pair.station.reconfigure(call_timeout=2.5)
        assert pair.station.options.call_timeout == 2.5
        with pytest.raises(ValueError, match="unknown event 'closed'"):
            pair.station.on("closed", print)  # type: ignore[call-overload]


def test_memory_pair_kwargs_are_the_connection_options_and_the_per_end_ones() -> None:
    from ocpp_trio.testing import MemoryPairKwargs

    assert MemoryPairKwargs.__optional_keys__ == ConnectionKwargs.__optional_keys__ | {
        "station_options",
        "csms_options",
    }


async def test_the_test_helpers_still_refuse_unknown_options_at_run_time() -> None:
    from ocpp_trio.testing import open_memory_server

    with pytest.raises(TypeError, match="call_timout"):
        async with open_memory_pair(call_timout=5):  # type: ignore[call-arg]
            pass  # pragma: no cover
    with pytest.raises(TypeError, match="strict_mod"):
        async with open_memory_pair(station_options={"strict_mod": True}):  # type: ignore[typeddict-unknown-key]
            pass  # pragma: no cover
    async with open_memory_server(protocols=["ocpp1.6"]) as srv:
        assert srv.server.protocols == ("ocpp1.6",)
        with pytest.raises(TypeError, match="max_reconnect"):
            async with srv.connect("CP1", max_reconnect=1):  # type: ignore[call-arg]
                pass  # pragma: no cover


def test_every_event_has_its_typed_overload() -> None:
    from ocpp_trio._rpc.surface import HandlerSurface

    typed: dict[str, str] = {}
    for overload in typing.get_overloads(HandlerSurface.on):
        name = overload.__annotations__["name"]
        callback = overload.__annotations__["callback"]
        literal = re.fullmatch(r"Literal\[['\"](\w+)['\"]\]", name)
        if literal is None:
            assert name == "EventName"  # the catch-all: any event, any payload
            assert callback == "Callable[[EventPayload], object]"
            continue
        payload = re.fullmatch(r"Callable\[\[(\w+)\], object\]", callback)
        assert payload is not None, callback
        typed[literal[1]] = payload[1]
    assert set(typed) == EVENT_NAMES
    assert len(set(typed.values())) == len(typed)  # one payload class per event
    assert set(typed.values()) == {cls.__name__ for cls in typing.get_args(EventPayload)}
