"""The ocpp_trio.testing pytest plugin, for these tests.

Users enable it with ``pytest_plugins = ["ocpp_trio.testing.plugin"]`` in their
top-level conftest; pytest forbids that in a nested conftest like this one, so
the fixtures are imported instead (which registers them just the same).
``test_plugin.py`` runs the README's example in a fresh pytest with the real
``pytest_plugins`` line.
"""

from ocpp_trio.testing.plugin import (  # noqa: F401
    ocpp_handler,
    ocpp_options,
    ocpp_pair,
    ocpp_protocol,
    ocpp_server,
    ocpp_server_options,
)
