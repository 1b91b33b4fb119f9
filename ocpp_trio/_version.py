"""The version of ocpp_trio, in one place (read by the build and by the package)."""

from __future__ import annotations

__version__ = "0.1.0.dev0"


def package_ident() -> str:
    """Return ``"ocpp-trio/<version>"``, as sent in a ``User-Agent`` or ``Server`` header."""
    return f"ocpp-trio/{__version__}"
