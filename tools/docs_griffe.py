"""A Griffe extension for the documentation site: Sphinx roles in docstrings as code.

The docstrings are Google style (``Args:``, ``Raises:``, ``Returns:``), which
mkdocstrings renders, but they name other objects with Sphinx roles
(``:func:`payloads```, ``:class:`OCPPServer```), which Markdown would show
literally.  ``mkdocs.yml`` loads this file; it rewrites each role to the code
span it stands for (and reST's ``text::`` before a literal block to
``text:``) before the docstring is parsed, so the reference reads as
``pydoc`` does.  Double-backtick literals are already valid Markdown.
"""

from __future__ import annotations

import re
from typing import Any, Final

import griffe

#: ``:func:`name``` / ``:py:class:`~pkg.Name``` / ``:meth:`label <target>```.
ROLE: Final = re.compile(r":(?:py:)?[a-z]+:`~?([^`<]+?)(?:\s*<[^>]*>)?`")
#: reST's "text::" before an indented literal block (which Markdown also reads
#: as code), shown as "text:".
LITERAL_MARKER: Final = re.compile(r"(?<=\S)::$", re.M)


def strip_roles(text: str) -> str:
    """``text`` with every Sphinx role replaced by a code span of its target's label,
    and reST's ``::`` literal-block marker by a colon."""
    text = ROLE.sub(lambda match: f"`{match.group(1).strip()}`", text)
    return LITERAL_MARKER.sub(":", text)


class SphinxRolesAsCode(griffe.Extension):
    """Rewrites Sphinx roles in every docstring Griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = strip_roles(obj.docstring.value)
