"""Coverage instrumentation for atheris runs: the imports under it are instrumented.

Only when the fuzz target is run for atheris (not ``--hypothesis``) and atheris
is installed; otherwise a no-op, so the targets import fine in the test suite.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    if "--hypothesis" in sys.argv or "pytest" in sys.modules:
        yield
        return
    try:
        import atheris  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        yield
        return
    with atheris.instrument_imports():
        yield
