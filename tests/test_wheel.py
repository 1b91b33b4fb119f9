"""The built wheel installs into a clean venv and carries its schemas inside the package."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[1]
#: Messages of pip that mean "the index cannot be reached", not "the wheel is broken".
OFFLINE_SIGNS: Final = (
    "No matching distribution found",
    "Could not find a version",
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
)

CHECK_SCRIPT: Final = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import ocpp_trio
    from ocpp_trio import ValidationError, get_validator
    from ocpp_trio._core import validation

    repo = Path(sys.argv[1]).resolve()
    package = Path(ocpp_trio.__file__).resolve().parent
    assert repo not in package.parents, f"imported from the repo: {package}"
    assert "site-packages" in package.parts, package
    assert (package / "py.typed").is_file()

    # the schemas come from inside the installed package, and the source-tree
    # fallback cannot be what was used
    schemas = package / "_schemas"
    for protocol in ("ocpp1.6", "ocpp2.0.1", "ocpp2.1"):
        assert (schemas / protocol).is_dir(), protocol
    assert (schemas / "ocpp1.6" / "BootNotification.json").is_file()
    assert not (Path(validation.__file__).resolve().parents[2] / "schemas").exists()

    validator = get_validator("ocpp1.6")
    validator.validate(
        "BootNotification",
        "request",
        {"chargePointVendor": "Vendor", "chargePointModel": "Model"},
    )
    try:
        validator.validate("BootNotification", "request", {"chargePointVendor": "Vendor"})
    except ValidationError as exc:
        assert exc.error.code == "OccurrenceConstraintViolation", exc.error.code
    else:
        raise AssertionError("a BootNotification without chargePointModel passed")
    for protocol, action in (("ocpp2.0.1", "Heartbeat"), ("ocpp2.1", "Heartbeat")):
        get_validator(protocol).validate(action, "request", {})

    import ocpp_trio.testing  # shipped, and importable without dev dependencies

    assert ocpp_trio.package_ident() == "ocpp-trio/" + ocpp_trio.__version__
    print("ok", ocpp_trio.__version__)
    """
)


def _run(args: list[str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_wheel_installs_and_validates(tmp_path: Path) -> None:
    for module in ("build", "hatchling"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (needed for `python -m build --no-isolation`)")

    dist = tmp_path / "dist"
    built = _run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(REPO),
        ],
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list(dist.glob("ocpp_trio-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=60)
    python = venv / "bin" / "python"
    if made.returncode != 0 or not python.exists():
        pytest.skip(f"cannot create a venv with pip here: {made.stderr.strip()[-300:]}")

    installed = _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheels[0]),
        ],
        cwd=tmp_path,
    )
    if installed.returncode != 0 and any(sign in installed.stderr for sign in OFFLINE_SIGNS):
        pytest.skip(f"the package index is not reachable: {installed.stderr.strip()[-300:]}")
    assert installed.returncode == 0, installed.stderr

    checked = _run([str(python), "-c", CHECK_SCRIPT, str(REPO)], cwd=tmp_path, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("ok ")
