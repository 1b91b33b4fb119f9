"""(f) Start-up: import time, time to a started strict server and a connected client, first calls.

Each figure comes from a fresh interpreter (median of several), so it includes
what a freshly started CSMS or station pays: imports; ``serve_ocpp`` with
strict mode until it reports itself started (it builds every validator of its
protocol first); ``open_ocpp_client`` with strict mode until connected, on
loopback (its validators are the server's, built already: one process); then
the first and second BootNotification (the first used to compile its schemas;
it no longer does).  Compiled bytecode is kept in a temporary ``PYTHONPYCACHEPREFIX`` (one
warm-up run first), as an installed package has it, whether or not the source
tree has ``__pycache__`` folders.  Prints a Markdown table; asserts nothing.

    python benchmarks/startup.py [--runs 7] [--baseline REV]

With ``--baseline REV`` the same figures are taken for ocpp_trio as of the git
revision REV too (a detached worktree, first on the child's ``sys.path``),
interleaved run by run with the current tree's, and the table gets a column
saying which tree a row is: ``ocpp_trio`` (this tree) or ``ocpp_trio @<hash>``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

from baseline import baseline_worktree

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from functools import partial
    sys.path.insert(0, {root!r})
    t0 = time.perf_counter()
    import ocpp_trio
    import_ms = (time.perf_counter() - t0) * 1e3
    import trio
    from ocpp_trio import open_ocpp_client, serve_ocpp

    async def on_station(conn):
        conn.handle("BootNotification", lambda ctx: {result!r})

    async def main():
        async with trio.open_nursery() as nursery:
            t1 = time.perf_counter()
            server = await nursery.start(partial(
                serve_ocpp, on_station, 0, host="127.0.0.1", protocols=[{protocol!r}],
                strict_mode=True, ping_interval=0))
            server_ms = (time.perf_counter() - t1) * 1e3
            t2 = time.perf_counter()
            async with open_ocpp_client(
                f"ws://127.0.0.1:{{server.port}}/ocpp", identity="CP1",
                protocols=[{protocol!r}], strict_mode=True, ping_interval=0,
            ) as client:
                client_ms = (time.perf_counter() - t2) * 1e3
                t3 = time.perf_counter()
                await client.call("BootNotification", {params!r})
                first = (time.perf_counter() - t3) * 1e3
                t4 = time.perf_counter()
                await client.call("BootNotification", {params!r})
                second = (time.perf_counter() - t4) * 1e3
            await server.close()
            nursery.cancel_scope.cancel()
        return server_ms, client_ms, first, second

    server_ms, client_ms, first, second = trio.run(main)
    print(json.dumps({{"import_ms": import_ms, "server_ms": server_ms, "client_ms": client_ms,
                      "first_ms": first, "second_ms": second, "file": ocpp_trio.__file__}}))
    """
)

CASES = {
    "ocpp1.6": (
        {"chargePointVendor": "V", "chargePointModel": "M"},
        {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300},
    ),
    "ocpp2.0.1": (
        {"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"},
        {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300},
    ),
    "ocpp2.1": (
        {"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"},
        {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300},
    ),
}


def measure(
    root: Path, cache: str, protocol: str, params: object, result: object
) -> dict[str, float]:
    """One fresh interpreter importing ocpp_trio from ``root``: its figures."""
    code = CHILD.format(root=str(root), protocol=protocol, params=params, result=result)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=child_env(root, cache),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?")
    out = json.loads(done.stdout)
    where = Path(out.pop("file")).resolve()
    if not where.is_relative_to(root.resolve()):
        raise RuntimeError(f"ocpp_trio came from {where}, not from {root}")
    return {key: float(value) for key, value in out.items()}


def child_env(root: Path, cache: str) -> dict[str, str]:
    """This process's environment, ``root`` first on ``PYTHONPATH``, bytecode kept in ``cache``."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = cache
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--baseline", metavar="REV", help="also measure ocpp_trio as of this git revision"
    )
    opts = parser.parse_args(argv)
    failed = False
    with contextlib.ExitStack() as stack:
        cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="ocpp_trio-pycache-"))
        trees = [("ocpp_trio", ROOT)]
        if opts.baseline:
            baseline = stack.enter_context(baseline_worktree(opts.baseline))
            trees.append((baseline.label, baseline.path))
            print(f"Baseline: {baseline.describe()}.\n")
        first_case = next(iter(CASES.items()))
        for _, root in trees:  # warm-up: fills the bytecode cache; a failure shows below
            with contextlib.suppress(RuntimeError):
                measure(root, cache, first_case[0], *first_case[1])
        tree_head = "| tree " if opts.baseline else ""
        print(
            f"| protocol {tree_head}| import ocpp_trio ms | server started ms "
            "| client connected ms | first strict call ms | second call ms |"
        )
        print("|" + " --- |" * (7 if opts.baseline else 6))
        for protocol, (params, result) in CASES.items():
            rows: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
            errors: dict[str, str] = {}
            for _ in range(opts.runs):  # interleaved: current, baseline, current, ...
                for label, root in trees:
                    if label in errors:
                        continue
                    try:
                        rows[label].append(measure(root, cache, protocol, params, result))
                    except RuntimeError as exc:
                        errors[label] = str(exc)
            for label, _ in trees:
                tree = f"| {label} " if opts.baseline else ""
                if label in errors:
                    failed = True
                    print(f"| {protocol} {tree}| failed: {errors[label]} | — | — | — | — |")
                    continue
                med = {k: statistics.median(r[k] for r in rows[label]) for k in rows[label][0]}
                print(
                    f"| {protocol} {tree}| {med['import_ms']:.0f} | {med['server_ms']:.1f} "
                    f"| {med['client_ms']:.1f} | {med['first_ms']:.1f} | {med['second_ms']:.2f} |"
                )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
