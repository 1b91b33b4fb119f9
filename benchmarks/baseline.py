"""An earlier revision of ocpp_trio, checked out beside the current tree for ``--baseline REV``.

``baseline_worktree(rev)`` makes a detached git worktree of ``rev`` in a
temporary directory and removes it on the way out (errors, Ctrl-C and SIGTERM
included).  A process imports the old package when the worktree comes first on
its ``sys.path`` (``PYTHONPATH``): the editable install of the current tree is a
``.pth`` entry in site-packages, which comes after ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Baseline:
    rev: str  # as given
    commit: str  # full hash
    short: str  # short hash, for labels
    subject: str  # the commit's first line
    path: Path  # the worktree

    @property
    def label(self) -> str:
        return f"ocpp_trio @{self.short}"

    def describe(self) -> str:
        return f"{self.label} is commit {self.commit} ({self.subject}), from a git worktree"


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(
            f"git {' '.join(args)} failed: {done.stderr.strip() or 'no such revision'}"
        )
    return done.stdout.strip()


def _remove(path: Path) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
        capture_output=True,
        check=False,
    )
    if path.exists():  # git could not remove it: remove the files, then git's record
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the ``finally`` that removes the worktree


@contextmanager
def baseline_worktree(rev: str) -> Iterator[Baseline]:
    """A detached worktree of ``rev`` for the duration of the block."""
    commit = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    short = _git("rev-parse", "--short", commit)
    subject = _git("log", "-1", "--format=%s", commit)
    path = Path(tempfile.mkdtemp(prefix=f"ocpp_trio-baseline-{short}-"))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"git worktree add {rev} failed: {done.stderr.strip()}")
        yield Baseline(rev, commit, short, subject, path)
    finally:
        _remove(path)
        signal.signal(signal.SIGTERM, previous)


def pythonpath_env(baseline: Baseline, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the worktree first on ``PYTHONPATH``."""
    out = dict(os.environ if env is None else env)
    rest = out.get("PYTHONPATH", "")
    out["PYTHONPATH"] = str(baseline.path) + (os.pathsep + rest if rest else "")
    return out


def check_import(baseline: Baseline, env: Mapping[str, str]) -> None:
    """Fail early unless a fresh interpreter with ``env`` imports ocpp_trio from the worktree.

    ``-P`` leaves the current directory off ``sys.path``, as for a script (whose
    own folder comes first instead), so this sees what the peers' processes see.
    """
    done = subprocess.run(
        [sys.executable, "-P", "-c", "import ocpp_trio; print(ocpp_trio.__file__)"],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )
    where = done.stdout.strip()
    if done.returncode != 0:
        raise SystemExit(f"{baseline.label}: import ocpp_trio failed: {done.stderr[-1500:]}")
    if not Path(where).resolve().is_relative_to(baseline.path.resolve()):
        raise SystemExit(f"{baseline.label}: ocpp_trio came from {where}, not {baseline.path}")
