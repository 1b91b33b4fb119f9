"""The public surface of ocpp_trio.testing: tidy __all__, and no hypothesis needed."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import types

import pytest

import ocpp_trio.testing
import ocpp_trio.testing.plugin
import ocpp_trio.testing.strategies

MODULES = [ocpp_trio.testing, ocpp_trio.testing.strategies, ocpp_trio.testing.plugin]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_unique_and_importable(module: types.ModuleType) -> None:
    names = list(module.__all__)
    assert len(names) == len(set(names))
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))
    fresh = importlib.import_module(module.__name__)
    namespace: dict[str, object] = {}
    exec(f"from {module.__name__} import *", namespace)
    for name in names:
        assert not name.startswith("_")
        assert namespace[name] is getattr(fresh, name)


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_testing_and_the_plugin_import_without_hypothesis() -> None:
    result = _run(
        """
        import sys
        sys.modules["hypothesis"] = None  # as if it were not installed
        import ocpp_trio.testing, ocpp_trio.testing.plugin
        from ocpp_trio.testing import open_memory_pair, open_memory_server, replay
        assert not any(m.startswith("hypothesis") and sys.modules[m] for m in sys.modules)
        try:
            import ocpp_trio.testing.strategies
        except ImportError as exc:
            print("strategies need hypothesis:", exc)
        else:
            raise AssertionError("strategies imported without hypothesis")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "strategies need hypothesis" in result.stdout
