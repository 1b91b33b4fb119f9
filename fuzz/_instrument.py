"""What the fuzz targets share: atheris instrumentation and the command line.

``instrumented()`` instruments the imports under it, only when the target is
run for atheris (not ``--hypothesis``) and atheris is installed; otherwise it
is a no-op, so the targets import fine in the test suite.  ``fuzz_main`` runs a
target either way.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    if "--hypothesis" in sys.argv or "pytest" in sys.modules:
        yield
        return
    try:
        import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        yield
        return
    with atheris.instrument_imports():
        yield


def fuzz_main(
    name: str,
    description: str,
    run_hypothesis: Callable[..., None],
    atheris_input: Callable[[bytes], None],
    argv: list[str] | None = None,
) -> None:
    """``--hypothesis [--examples N] [--seed S]`` runs the property; otherwise atheris."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--hypothesis", action="store_true", help="run with hypothesis")
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None)
    args, rest = parser.parse_known_args(argv)
    if args.hypothesis:
        run_hypothesis(args.examples, seed=args.seed)
        print(f"{name}: {args.examples} examples, no failure")
        return
    import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]

    atheris.Setup([sys.argv[0], *rest], atheris_input)
    atheris.Fuzz()
