"""pytest fixtures for testing code built on ocpp_trio (with pytest-trio).

Enable it in your top-level ``conftest.py``::

    pytest_plugins = ["ocpp_trio.testing.plugin"]

and run async tests with pytest-trio (``trio_mode = true`` in the pytest
configuration, or ``@pytest.mark.trio`` per test).  The fixtures are async
(Trio) fixtures, so only Trio tests can use them.

Fixtures:

- ``ocpp_pair``: a :class:`~ocpp_trio.testing.MemoryPair` ``(station, csms)``
  speaking ``ocpp_protocol``, both ends with ``ocpp_options``, the CSMS end
  running ``ocpp_handler``.
- ``ocpp_server``: a :class:`~ocpp_trio.testing.MemoryServer`, a real
  ``OCPPServer`` running ``ocpp_handler`` with ``ocpp_options`` and
  ``ocpp_server_options``; ``async with ocpp_server.connect("CP1") as station``
  connects an in-memory station offering ``ocpp_protocol``.

Configuration fixtures (override them in a ``conftest.py``, in a test module,
or with ``@pytest.mark.parametrize("ocpp_protocol", [...])``):

- ``ocpp_protocol``: ``"ocpp1.6"``.
- ``ocpp_options``: connection options, ``{"strict_mode": True}``: in tests
  both ends validate every payload against the schemas, so a handler that
  returns an invalid result fails the call (the peer gets InternalError).
- ``ocpp_handler``: None; return your CSMS's per-station function (what you
  pass to ``serve_ocpp``).
- ``ocpp_server_options``: ``{}``; ``OCPPServer`` options such as ``auth``,
  ``security_profile`` (0 or 1 in memory), ``max_connections``.

With hypothesis's ``@given``, open the pair inside the test
(``async with open_memory_pair(...)``) rather than through a fixture:
fixtures are set up once per test, not once per example.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from ..client import ClientKwargs
from ._pair import ConnectionHandler, MemoryPair, open_memory_pair
from ._server import MemoryServer, open_memory_server

__all__ = [
    "ocpp_handler",
    "ocpp_options",
    "ocpp_pair",
    "ocpp_protocol",
    "ocpp_server",
    "ocpp_server_options",
]


@pytest.fixture
def ocpp_protocol() -> str:
    """The subprotocol ``ocpp_pair`` speaks and ``ocpp_server``'s stations offer."""
    return "ocpp1.6"


@pytest.fixture
def ocpp_options() -> dict[str, Any]:
    """Connection options for both ends (strict mode on)."""
    return {"strict_mode": True}


@pytest.fixture
def ocpp_handler() -> ConnectionHandler | None:
    """The CSMS handler under test, ``handler(conn)``; override this fixture."""
    return None


@pytest.fixture
def ocpp_server_options() -> dict[str, Any]:
    """``OCPPServer`` options for ``ocpp_server`` (``auth``, ``max_connections``...)."""
    return {}


@pytest.fixture
async def ocpp_pair(
    ocpp_protocol: str, ocpp_options: dict[str, Any], ocpp_handler: ConnectionHandler | None
) -> AsyncIterator[MemoryPair]:
    """``(station, csms)``: connected in memory; the CSMS runs ``ocpp_handler``."""
    async with open_memory_pair(ocpp_protocol, csms_handler=ocpp_handler, **ocpp_options) as pair:
        yield pair


@pytest.fixture
async def ocpp_server(
    ocpp_protocol: str,
    ocpp_options: dict[str, Any],
    ocpp_handler: ConnectionHandler | None,
    ocpp_server_options: dict[str, Any],
) -> AsyncIterator[MemoryServer]:
    """A real ``OCPPServer`` running ``ocpp_handler``, reached in memory."""

    async def handler(conn: Any) -> None:
        if ocpp_handler is not None:
            result = ocpp_handler(conn)
            if inspect.isawaitable(result):
                await result

    async with open_memory_server(
        handler,
        station_protocols=(ocpp_protocol,),
        station_options=cast(ClientKwargs, dict(ocpp_options)),
        **{**ocpp_options, **ocpp_server_options},
    ) as server:
        yield server
