"""The sdist can test itself: it holds what `make test` needs, and the test
command's steps pass from the unpacked sdist.

This runs each step of `make test` on the unpacked tree with this
environment's tools (lint, the generated-types check, the strict docs build)
and a quick subset of the suite, importing the unpacked package.  The whole
`make test` from the sdist, with a virtualenv of its own, is `make test-sdist`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[1]
BIN: Final = Path(sys.executable).parent
#: What `make test` reads besides the directories the Makefile lints.
NEEDED: Final = (
    "Makefile",
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "mkdocs.yml",
    ".ci/run",
    "docs/index.md",
    "schemas/ocpp1.6/BootNotification.json",
    "tools/generate_types.py",
    "tools/import_schemas.py",
    "tools/docs_griffe.py",
    "tests/typing",
    "tests/corpus",
    "tests/interop/node/package.json",
    "tests/interop/node/package-lock.json",
)
#: A quick subset of the suite: exports, the README's and guides' examples, the
#: core's frames, the CLI's entry points.
SUBSET: Final = (
    "tests/test_exports.py",
    "tests/test_readme.py",
    "tests/test_docs.py",
    "tests/core/test_frames.py",
)


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _lint_dirs(makefile: str) -> list[str]:
    match = re.search(r"^SRC := (.+)$", makefile, re.M)
    assert match is not None, "the Makefile names no SRC"
    return match.group(1).split()


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, built from this tree and unpacked."""
    for module in ("build", "hatchling"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed: `pip install -e '.[dev]'`")
    tmp = tmp_path_factory.mktemp("sdist")
    built = _run(
        [
            sys.executable,
            "-m",
            "build",
            "--sdist",
            "--no-isolation",
            "--outdir",
            str(tmp),
            str(REPO),
        ],
        cwd=tmp,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (sdist,) = tmp.glob("ocpp_trio-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp, filter="data")
    (root,) = (p for p in tmp.iterdir() if p.is_dir())
    return root


@pytest.mark.slow
def test_the_sdist_holds_what_make_test_needs(unpacked: Path) -> None:
    for name in [*_lint_dirs((unpacked / "Makefile").read_text()), *NEEDED]:
        assert (unpacked / name).exists(), f"the sdist lacks {name}"
    assert not list(unpacked.rglob("node_modules")), "the sdist carries node_modules"
    assert not (unpacked / ".venv").exists()
    if shutil.which("git") is not None and (REPO / ".git").exists():
        tracked = _run(["git", "ls-files"], cwd=REPO)
        if tracked.returncode == 0:
            # every file of the repository that is still there (not deleted
            # in the work tree)
            files = [f for f in tracked.stdout.splitlines() if (REPO / f).exists()]
            missing = [f for f in files if not (unpacked / f).exists()]
            assert not missing, f"tracked files missing from the sdist: {missing[:20]}"


@pytest.mark.slow
def test_the_test_command_passes_from_the_unpacked_sdist(unpacked: Path) -> None:
    where = _run([sys.executable, "-c", "import ocpp_trio; print(ocpp_trio.__file__)"], unpacked)
    assert Path(where.stdout.strip()).is_relative_to(unpacked), where.stdout + where.stderr

    lint_dirs = _lint_dirs((unpacked / "Makefile").read_text())
    steps = [
        [str(BIN / "ruff"), "check", *lint_dirs],
        [str(BIN / "ruff"), "format", "--check", *lint_dirs],
        [sys.executable, "tools/generate_types.py", "--check"],
        [sys.executable, "tools/import_schemas.py", "--check", "--installed"],
        [str(BIN / "mkdocs"), "build", "--strict", "--quiet", "--site-dir", "../site"],
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *SUBSET],
    ]
    for step in steps:
        result = _run(step, cwd=unpacked)
        assert result.returncode == 0, f"{' '.join(step)}:\n{result.stdout}\n{result.stderr}"
    assert " passed" in result.stdout
