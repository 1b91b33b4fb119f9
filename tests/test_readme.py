"""The Python examples of the README and of the guides in docs/ compile and
import only names that exist; the README's station and CSMS work together."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
#: (page, index, source) of every ```python block; a block that only includes a
#: file (``--8<-- "path"``) is that file, which its own tests run.
BLOCKS = [
    (page.relative_to(ROOT).as_posix(), i, source)
    for page in PAGES
    for i, source in enumerate(re.findall(r"```python\n(.*?)```", page.read_text("utf-8"), re.S))
    if not source.startswith("--8<--")
]


def test_readme_and_guides_have_examples() -> None:
    assert sum(1 for page, _, _ in BLOCKS if page == "README.md") >= 2
    assert len(BLOCKS) >= 12


@pytest.mark.parametrize(
    "source", [s for _, _, s in BLOCKS], ids=[f"{p}-{i}" for p, i, _ in BLOCKS]
)
def test_example_compiles_and_its_imports_resolve(source: str) -> None:
    tree = ast.parse(source)
    compile(tree, "README.md", "exec")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            exec(compile(ast.Module(body=[node], type_ignores=[]), "README.md", "exec"), {})


def _block_under(heading: str) -> str:
    """The first Python block after ``heading`` in the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match is not None
    return match.group(1)


def _without_run(source: str) -> str:
    """The block without its top-level ``trio.run(...)`` line (the test runs it)."""
    return "\n".join(line for line in source.splitlines() if not line.startswith("trio.run("))


@pytest.mark.parametrize("protocols", [None, ["ocpp1.6"], ["ocpp2.1"]])
async def test_the_readme_station_and_csms_work_together(
    protocols: list[str] | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first station and CSMS of the README, as written, complete a boot."""
    import functools

    import trio

    from ocpp_trio import serve_ocpp

    csms: dict[str, object] = {}
    exec(_without_run(_block_under("## A CSMS")), csms)
    station_source = _without_run(_block_under("## A charging station"))
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            functools.partial(serve_ocpp, csms["on_station"], 0, host="127.0.0.1")
        )
        station_source = station_source.replace(
            "ws://127.0.0.1:9000/ocpp", f"ws://127.0.0.1:{server.port}/ocpp"
        )
        if protocols is not None:  # the same code, offering other versions
            station_source = station_source.replace('["ocpp2.0.1", "ocpp1.6"]', repr(protocols))
        station: dict[str, object] = {}
        exec(station_source, station)
        wanted = ["Accepted"]  # the station's boot, in any version
        if protocols == ["ocpp1.6"]:
            wanted.append("CP001 GetConfiguration: NotSupported")
        out = ""
        # The station runs until its connection closes: stopped once it has
        # printed what is expected (bounded: a first use of a version's
        # validators in this process compiles them, ~2 s for 2.1).
        with trio.move_on_after(30):
            async with trio.open_nursery() as running:
                running.start_soon(station["station"])  # type: ignore[arg-type]
                while not all(line in out.splitlines() for line in wanted):
                    await trio.sleep(0.05)
                    out += capsys.readouterr().out
                await trio.sleep(0.2)  # anything the CSMS would send next
                running.cancel_scope.cancel()
        await server.close()
        nursery.cancel_scope.cancel()
    out += capsys.readouterr().out
    assert "Accepted" in out.splitlines()
    if protocols == ["ocpp1.6"]:
        # The CSMS asks for the configuration; the README's station has no
        # handler for it: an answer, not a closed connection.
        assert "CP001 GetConfiguration: NotSupported" in out.splitlines()
    else:
        assert "NotSupported" not in out
