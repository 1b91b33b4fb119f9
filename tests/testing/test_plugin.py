"""The pytest plugin's fixtures, and the "Testing your handlers" guide's example.

``readme_example.py`` holds the example test module that the guide
(``docs/guides/testing.md``) includes as it is (``README_CONFTEST`` its
conftest).  It runs twice: in this session
(``test_readme_example.py`` collects its tests, with the fixtures of
``conftest.py``), and here in a fresh pytest in a subprocess, laid out exactly
as a user would (``pytest_plugins`` in the conftest, ``trio_mode`` in the
configuration).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from ocpp_trio import CallErrorReceived, OCPPConnection
from ocpp_trio.testing import MemoryPair, MemoryServer

HERE = Path(__file__).resolve().parent
GUIDE = HERE.parent.parent / "docs" / "guides" / "testing.md"
EXAMPLE = HERE / "readme_example.py"
README_CONFTEST = '# conftest.py\npytest_plugins = ["ocpp_trio.testing.plugin"]\n'
PYPROJECT = "[tool.pytest.ini_options]\ntrio_mode = true\n"


@pytest.mark.slow
def test_the_example_runs_in_a_fresh_pytest(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(README_CONFTEST, encoding="utf-8")
    (tmp_path / "test_csms.py").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_the_testing_guide_shows_this_example() -> None:
    """The guide has the conftest as a block and includes the example file itself."""
    text = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert README_CONFTEST in blocks
    snippet = f'--8<-- "{EXAMPLE.relative_to(HERE.parent.parent).as_posix()}"\n'
    assert snippet in blocks


# --- the fixtures themselves ------------------------------------------------------


async def test_defaults(ocpp_pair: MemoryPair, ocpp_protocol: str, ocpp_options: Any) -> None:
    station, csms = ocpp_pair
    assert ocpp_protocol == station.protocol == csms.protocol == "ocpp1.6"
    assert ocpp_options == {"strict_mode": True}
    # strict by default: an invalid request never leaves the station
    with pytest.raises(Exception, match="chargePointModel"):
        await station.call("BootNotification", {"chargePointVendor": "V"})


@pytest.mark.parametrize("ocpp_protocol", ["ocpp2.0.1", "ocpp2.1"])
@pytest.mark.parametrize("ocpp_options", [{"call_timeout": 4}])
async def test_protocol_and_options_are_overridable(
    ocpp_pair: MemoryPair, ocpp_protocol: str, autojump_clock: trio.testing.MockClock
) -> None:
    station, csms = ocpp_pair
    assert station.protocol == ocpp_protocol
    assert csms.options.call_timeout == 4
    assert not station.options.strict_mode
    with pytest.raises(CallErrorReceived):
        await station.call("Heartbeat", {})  # no handler: NotSupported


@pytest.mark.parametrize("ocpp_server_options", [{"max_connections": 1}])
@pytest.mark.parametrize("ocpp_protocol", ["ocpp2.0.1"])
async def test_server_fixture(ocpp_server: MemoryServer, ocpp_server_options: Any) -> None:
    assert ocpp_server.server.max_connections == 1
    async with ocpp_server.connect("CP1") as station:
        assert station.protocol == "ocpp2.0.1"
        assert ocpp_server.clients["CP1"].options.strict_mode is True


class TestSyncHandler:
    """``ocpp_handler`` may be a plain function too (it only installs handlers)."""

    @pytest.fixture
    def ocpp_handler(self) -> Any:
        def setup(conn: OCPPConnection) -> None:
            conn.handle("Heartbeat", lambda ctx: {"currentTime": "2024-01-01T00:00:00Z"})

        return setup

    async def test_pair(self, ocpp_pair: MemoryPair) -> None:
        assert await ocpp_pair.station.call("Heartbeat", {}) == {
            "currentTime": "2024-01-01T00:00:00Z"
        }

    async def test_server(self, ocpp_server: MemoryServer) -> None:
        async with ocpp_server.connect() as station:
            assert await station.call("Heartbeat", {}) == {"currentTime": "2024-01-01T00:00:00Z"}
