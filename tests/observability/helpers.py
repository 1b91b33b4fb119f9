"""``ocpp-trio serve --ops-port 0`` as a subprocess, with the ports it printed."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

START_TIMEOUT = 15.0


@dataclass
class Serve:
    """A running ``serve``: where it listens, what it printed, how it ended."""

    url: str = ""
    ops_port: int = 0
    lines: list[str] = field(default_factory=list)
    returncode: int | None = None
    err: str = ""


def _read_until_ops_line(proc: subprocess.Popen[bytes], served: Serve) -> None:
    """Read stdout (unbuffered, so nothing read is lost) until the operations line."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = b""
    deadline = time.monotonic() + START_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=deadline - time.monotonic()):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *complete, pending = (pending + chunk).split(b"\n")
            for raw in complete:
                line = raw.decode()
                served.lines.append(line)
                record = json.loads(line) if line.startswith("{") else {}
                if line.startswith("listening on ") or record.get("event") == "listening":
                    served.url = record.get("url") or line.split()[-1]
                ops = record.get("url") if record.get("event") == "ops_listening" else None
                if line.startswith("operations endpoints on "):
                    ops = line.split()[3]
                if ops is not None:
                    served.ops_port = int(ops.rsplit(":", 1)[1])
                    return
    proc.kill()
    _, err = proc.communicate(timeout=10)
    pytest.fail(f"serve did not start its operations endpoints: {served.lines} {err!r}")


@contextmanager
def serving_with_ops(*args: str) -> Iterator[Serve]:
    """Run ``ocpp-trio serve --port 0 --ops-port 0 ARGS``; SIGTERM on exit, killed if need be."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocpp_trio", "serve", "--port", "0", "--ops-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    served = Serve()
    try:
        _read_until_ops_line(proc, served)
        yield served
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        served.lines += out.decode().splitlines()
        served.err = err.decode()
        served.returncode = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
