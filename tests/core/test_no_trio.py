"""The sans-IO core imports no trio (as h11 and wsproto have no networking code at all)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Final

import ocpp_trio

CORE_MODULES: Final = (
    "ocpp_trio._core",
    "ocpp_trio._core.frames",
    "ocpp_trio._core.errors",
    "ocpp_trio._core.protocol",
    "ocpp_trio._core.validation",
    "ocpp_trio._core.policy",
)
FORBIDDEN: Final = ("trio", "trio_websocket")


def _run(script: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_core_modules_import_no_trio() -> None:
    # The parent package is replaced by an empty one so that only the core's own
    # imports count (ocpp_trio/__init__.py re-exports the Trio layer).
    package_dir = Path(ocpp_trio.__file__).parent
    _run(
        f"""
        import importlib, sys, types
        parent = types.ModuleType("ocpp_trio")
        parent.__path__ = [{str(package_dir)!r}]
        sys.modules["ocpp_trio"] = parent
        for name in {CORE_MODULES!r}:
            importlib.import_module(name)
        loaded = sorted(m for m in {FORBIDDEN!r} if m in sys.modules)
        assert not loaded, f"the core imported {{loaded}}"
        """
    )


# Importing ``ocpp_trio._core`` through the real parent package runs
# ``ocpp_trio/__init__.py``, which re-exports the Trio layer (STYLE: the
# package root only re-exports, eagerly).  The property that matters, that no
# core module imports trio, is checked above with a stand-in parent package.
