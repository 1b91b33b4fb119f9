"""The documentation site: every public name is in the API reference, the links
between the README and the guides resolve, and the strict build fails on a dead
link.  (`make docs`, part of `make test`, builds the site itself.)"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pytest

import ocpp_trio
import ocpp_trio.asgi
import ocpp_trio.cluster
import ocpp_trio.events
import ocpp_trio.observability
import ocpp_trio.outbox
import ocpp_trio.security
import ocpp_trio.server
import ocpp_trio.testing
import ocpp_trio.types

ROOT: Final = Path(__file__).resolve().parent.parent
DOCS: Final = ROOT / "docs"
REFERENCE: Final = DOCS / "reference"
#: Summarised on the typed-payloads page rather than rendered name by name.
SUMMARISED: Final = {"ocpp_trio.types.v16", "ocpp_trio.types.v201", "ocpp_trio.types.v21"}


def _event_names() -> list[str]:
    """``ocpp_trio.events`` has no ``__all__``: its public names are the payload classes."""
    module = ocpp_trio.events
    return [
        name
        for name, obj in vars(module).items()
        if name.endswith("Event") and dataclasses.is_dataclass(obj)
    ] + ["EventName", "EVENT_NAMES"]


#: Every module users import, with its public names.
PUBLIC: Final[dict[ModuleType, list[str]]] = {
    ocpp_trio: list(ocpp_trio.__all__),
    ocpp_trio.server: list(ocpp_trio.server.__all__),
    ocpp_trio.security: list(ocpp_trio.security.__all__),
    ocpp_trio.events: _event_names(),
    ocpp_trio.types: list(ocpp_trio.types.__all__),
    ocpp_trio.testing: list(ocpp_trio.testing.__all__),
    ocpp_trio.cluster: list(ocpp_trio.cluster.__all__),
    ocpp_trio.asgi: list(ocpp_trio.asgi.__all__),
    ocpp_trio.outbox: list(ocpp_trio.outbox.__all__),
    ocpp_trio.observability: list(ocpp_trio.observability.__all__),
}


def _resolve(path: str) -> Any:
    """The object a ``::: dotted.path`` directive names."""
    try:
        return importlib.import_module(path)
    except ImportError:
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)


def _directives() -> dict[str, list[str] | None]:
    """Each ``::: target`` of the reference pages, with its ``members:`` list (None: all)."""
    found: dict[str, list[str] | None] = {}
    for page in sorted(REFERENCE.glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("::: "):
                continue
            target = line[4:].strip()
            members: list[str] | None = None
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                if lines[j].strip() == "members:":
                    members = []
                elif members is not None and lines[j].strip().startswith("- "):
                    members.append(lines[j].strip()[2:])
                j += 1
            found[target] = members
    return found


def _documented() -> set[int]:
    """The ids of every object the reference renders."""
    ids: set[int] = set()
    for target, members in _directives().items():
        obj = _resolve(target)
        ids.add(id(obj))
        if isinstance(obj, ModuleType):
            names = members if members is not None else list(getattr(obj, "__all__", []))
            ids.update(id(getattr(obj, name)) for name in names)
    return ids


def test_every_reference_directive_names_an_object() -> None:
    directives = _directives()
    assert len(directives) > 50
    for target, members in directives.items():
        obj = _resolve(target)
        for name in members or []:
            assert hasattr(obj, name), f"{target} has no {name}"


@pytest.mark.parametrize("module", list(PUBLIC), ids=lambda m: m.__name__)
def test_every_public_name_is_in_the_reference(module: ModuleType) -> None:
    documented = _documented()
    missing = [
        f"{module.__name__}.{name}"
        for name in PUBLIC[module]
        if f"{module.__name__}.{name}" not in SUMMARISED
        and id(getattr(module, name)) not in documented
    ]
    assert not missing, f"not in docs/reference/*.md: {missing}"


@pytest.mark.parametrize("module", list(PUBLIC), ids=lambda m: m.__name__)
def test_every_public_class_and_function_has_a_docstring(module: ModuleType) -> None:
    bare = [
        f"{module.__name__}.{name}"
        for name in PUBLIC[module]
        if (inspect.isclass(obj := getattr(module, name)) or inspect.isfunction(obj))
        and not (obj.__doc__ or "").strip()
    ]
    assert not bare, f"no docstring: {bare}"


def test_sphinx_roles_render_as_code() -> None:
    """tools/docs_griffe.py, which mkdocs.yml loads for the API reference."""
    spec = importlib.util.spec_from_file_location("docs_griffe", ROOT / "tools" / "docs_griffe.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.strip_roles(
        ":func:`payloads` draws; :py:class:`~ocpp_trio.OCPPServer`, :meth:`close <x.close>`"
    ) == ("`payloads` draws; `ocpp_trio.OCPPServer`, `close`")
    assert module.strip_roles("``literal`` stays; for example::\n\n    code\n") == (
        "``literal`` stays; for example:\n\n    code\n"
    )
    assert module.strip_roles("a line\n::\n") == "a line\n::\n"


def _slug(heading: str) -> str:
    """The anchor a Markdown heading gets (GitHub's and Python-Markdown's toc agree here)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_readme_links_resolve() -> None:
    """Relative links of the README point to files that exist, anchors to its headings."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    anchors = {_slug(h) for h in re.findall(r"^#+ (.*)$", prose, re.M)}
    links = re.findall(r"\]\(([^)\s]+)\)", prose)
    assert len(links) > 10
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        path, _, anchor = link.partition("#")
        if path:
            assert (ROOT / path).exists(), f"README links to a missing file: {link}"
        else:
            assert anchor in anchors, f"README links to a missing heading: {link}"


def test_every_guide_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert pages
    for page in pages:
        assert f": {page}\n" in config, f"{page} is not in mkdocs.yml's nav"


@pytest.mark.slow
def test_the_strict_build_fails_on_a_dead_link(tmp_path: Path) -> None:
    """mkdocs.yml's strict mode turns a dead link into a failed build."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        pytest.fail("mkdocs is not installed: `pip install -e '.[dev]'` (or '.[docs]')")
    tree = tmp_path / "tree"
    shutil.copytree(DOCS, tree / "docs")
    for name in ("mkdocs.yml", "ocpp_trio", "tools", "examples"):
        source = ROOT / name
        (tree / name).symlink_to(source, target_is_directory=source.is_dir())
    (tree / "tests").mkdir()
    (tree / "tests" / "testing").symlink_to(ROOT / "tests" / "testing", target_is_directory=True)
    guide = tree / "docs" / "guides" / "closing.md"
    guide.write_text(
        guide.read_text(encoding="utf-8") + "\nSee [the missing page](no-such-page.md).\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "no-such-page.md" in result.stderr
