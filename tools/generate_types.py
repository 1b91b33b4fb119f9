"""Generate ``ocpp_trio/types/v16.py``, ``v201.py`` and ``v21.py`` from ``schemas/``.

For every message schema of a protocol the generated module holds a
``TypedDict`` for the request and one for the response (``XRequest`` /
``XResponse``), a ``TypedDict`` or a ``Literal`` alias per nested type, and a
typed entry per action (``class X(Action[XRequest, XResponse])``, or
``SendAction[XRequest]`` for a SEND-only message) plus ``ActionName`` and
``ACTIONS``, the registry of the version.

Naming, so that the output is deterministic and stable:

* a schema definition keeps its name (``IdTokenInfoType``, ``BootReasonEnumType``);
  the same name in several files is one type when the definitions agree
  (annotations such as ``description`` aside);
* a nested object written inline (OCPP 1.6 core) is named after its property,
  capitalised (``idTagInfo`` -> ``IdTagInfo``);
* when one name stands for different structures, each variant is prefixed
  with the first action (in sorted order) that uses it, then with the message
  name if that is still ambiguous (``SetChargingProfileCsChargingProfiles``);
* a name that would shadow an action, a message or a name of the module gets
  ``Type`` appended.

Enums become ``Literal`` unions, optional properties ``NotRequired``, ``string``
``str`` (``date-time`` included), ``integer`` ``int``, ``number`` ``float``,
``boolean`` ``bool``, ``array`` ``list[...]``, an object without properties
``dict[str, Any]`` and a property without a type ``Any``.  Descriptions become
docstrings, without the OCA data-dictionary identifiers (``urn:x-oca:...``).

Usage::

    python tools/generate_types.py            # (re)write the modules
    python tools/generate_types.py --check    # exit 1 when a module differs
"""

from __future__ import annotations

import argparse
import difflib
import html
import json
import keyword
import re
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ocpp_trio._core.validation import _index_folder, _read_json  # noqa: E402

SCHEMAS = ROOT / "schemas"
TARGET = ROOT / "ocpp_trio" / "types"

#: protocol -> (module name, title used in docstrings)
MODULES: dict[str, tuple[str, str]] = {
    "ocpp1.6": ("v16", "OCPP 1.6"),
    "ocpp2.0.1": ("v201", "OCPP 2.0.1"),
    "ocpp2.1": ("v21", "OCPP 2.1"),
}
#: an AsciiDoc cross reference, ``<<anchor,Text>>`` or ``<<anchor>>``
_XREF = re.compile(r"<<\s*([^,>]+?)\s*(?:,\s*([^>]*?)\s*)?>>")

#: keywords that never change what a payload may be
_ANNOTATIONS = frozenset(
    {"description", "javaType", "comment", "$comment", "title", "$id", "id", "$schema", "default"}
)
_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
_RESERVED = frozenset(
    {"Any", "Literal", "NotRequired", "TypeAlias", "TypedDict", "Final", "Action", "SendAction"}
    | {"ACTIONS", "ActionName", "PROTOCOL", "PROTOCOL_NAME"}
)
_WIDTH = 92


@dataclass
class _Named:
    """A named type of the module: a TypedDict (object) or an alias (enum, other)."""

    candidate: str
    uses: list[tuple[str, str]] = field(default_factory=list)
    name: str = ""


class _Protocol:
    """The schemas of one protocol and the named types found in them."""

    def __init__(self, protocol: str, folder: Path) -> None:
        self.protocol = protocol
        files, send_only = _index_folder(folder)
        self.send_only = send_only
        self.messages: dict[tuple[str, str], Mapping[str, Any]] = {
            key: _read_json(files[key]) for key in sorted(files)
        }
        self.actions = sorted({action for action, _ in self.messages})
        self.top_names = {key: key[0] + key[1].capitalize() for key in self.messages}
        # (candidate, canonical) -> _Named, in order of first appearance
        self.named: dict[tuple[str, str], _Named] = {}
        for key, schema in self.messages.items():
            defs = schema.get("definitions", {})
            for def_name, definition in defs.items():
                self._add(def_name, definition, defs, key)
                self._collect_object(definition, defs, key)
            self._collect_object(schema, defs, key)
        self._assign_names()

    # --- collection ---------------------------------------------------------

    def _canonical(self, node: Any, defs: Mapping[str, Any], seen: tuple[str, ...] = ()) -> Any:
        """The schema with annotations removed and local ``$ref``s expanded."""
        if isinstance(node, list):
            return [self._canonical(item, defs, seen) for item in node]
        if not isinstance(node, Mapping):
            return node
        if "$ref" in node:
            target = _ref_name(node["$ref"])
            if target in seen:
                raise SystemExit(f"{self.protocol}: recursive definition {target} is not supported")
            return self._canonical(defs[target], defs, (*seen, target))
        return {
            key: self._canonical(value, defs, seen)
            for key, value in sorted(node.items())
            if key not in _ANNOTATIONS and key != "definitions"
        }

    def _add(
        self,
        candidate: str,
        schema: Mapping[str, Any],
        defs: Mapping[str, Any],
        key: tuple[str, str],
    ) -> None:
        canonical = json.dumps(self._canonical(schema, defs), sort_keys=True)
        named = self.named.setdefault((candidate, canonical), _Named(candidate))
        named.uses.append(key)

    def _collect_object(
        self, schema: Mapping[str, Any], defs: Mapping[str, Any], key: tuple[str, str]
    ) -> None:
        for prop, sub in schema.get("properties", {}).items():
            self._collect_inline(prop, sub, defs, key)

    def _collect_inline(
        self, prop: str, sub: Mapping[str, Any], defs: Mapping[str, Any], key: tuple[str, str]
    ) -> None:
        if "$ref" in sub:
            return
        if sub.get("type") == "array" and isinstance(sub.get("items"), Mapping):
            self._collect_inline(prop, sub["items"], defs, key)
        elif _is_object(sub):
            self._add(_capitalise(prop), sub, defs, key)
            self._collect_object(sub, defs, key)

    def _assign_names(self) -> None:
        by_candidate: dict[str, list[_Named]] = {}
        for named in self.named.values():
            by_candidate.setdefault(named.candidate, []).append(named)
        reserved = set(_RESERVED) | set(self.actions) | set(self.top_names.values())
        taken: set[str] = set()
        for candidate in sorted(by_candidate):
            variants = by_candidate[candidate]
            if len(variants) == 1:
                names = [candidate]
            else:
                names = [min(v.uses)[0] + candidate for v in variants]
                if len(set(names)) != len(names):
                    names = [self.top_names[min(v.uses)] + candidate for v in variants]
            for named, name in zip(variants, names, strict=True):
                while name in reserved or name in taken:
                    name += "Type"
                named.name = name
                taken.add(name)

    # --- lookup -------------------------------------------------------------

    def lookup(self, candidate: str, schema: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
        canonical = json.dumps(self._canonical(schema, defs), sort_keys=True)
        return self.named[(candidate, canonical)].name


def _ref_name(ref: str) -> str:
    prefix = "#/definitions/"
    if not ref.startswith(prefix):
        raise SystemExit(f"unsupported $ref {ref!r}")
    return ref[len(prefix) :]


def _is_object(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" and bool(schema.get("properties"))


def _capitalise(name: str) -> str:
    return name[:1].upper() + name[1:]


# --- rendering -----------------------------------------------------------------


def clean_description(text: str | None) -> str:
    """A schema description as docstring text: OCA identifiers dropped, lines trimmed.

    The OCA writes ``<data-dictionary name>\\r\\nurn:x-oca:ocpp:uid:...\\r\\n<text>``;
    the name and the URN go, the text stays, one paragraph per source line.  HTML
    entities are decoded and AsciiDoc cross references (``<<anchor,Text>>``) keep
    their text.
    """
    if not text:
        return ""
    text = _XREF.sub(lambda m: m.group(2) or m.group(1), html.unescape(text))
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    kept: list[str] = []
    for index, line in enumerate(lines):
        if line.startswith("urn:x-"):
            if index == 1 and kept:
                kept.pop()  # the data-dictionary name before the first URN
            continue
        if line:
            kept.append(" ".join(line.split()))
    return "\n".join(kept)


def _docstring(text: str, indent: str) -> list[str]:
    if not text:
        return []
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text += " "
    paragraphs = text.split("\n")
    width = _WIDTH - len(indent)
    one = paragraphs[0]
    if len(paragraphs) == 1 and len(one) + 6 <= width:
        return [f'{indent}"""{one}"""']
    wrapped: list[str] = []
    for number, paragraph in enumerate(paragraphs):
        if number:
            wrapped.append("")
        wrapped.extend(textwrap.wrap(paragraph, width, break_on_hyphens=False) or [""])
    out = [f'{indent}"""{wrapped[0]}']
    out.extend(f"{indent}{line}" if line else "" for line in wrapped[1:])
    out.append(f'{indent}"""')
    return out


def _literal(values: list[Any]) -> str:
    return "Literal[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


class _Renderer:
    def __init__(self, proto: _Protocol) -> None:
        self.proto = proto
        self.emitted: set[str] = set()
        self.blocks: list[list[str]] = []

    def expr(self, prop: str, schema: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
        """The annotation of a property; the named types it uses are emitted first."""
        if "$ref" in schema:
            target = _ref_name(schema["$ref"])
            name = self.proto.lookup(target, defs[target], defs)
            self.emit_named(name, target, defs[target], defs)
            return name
        if "enum" in schema:
            return _literal(schema["enum"])
        kind = schema.get("type")
        if kind == "array":
            items = schema.get("items")
            inner = self.expr(prop, items, defs) if isinstance(items, Mapping) else "Any"
            return f"list[{inner}]"
        if _is_object(schema):
            candidate = _capitalise(prop)
            name = self.proto.lookup(candidate, schema, defs)
            self.emit_named(name, candidate, schema, defs)
            return name
        if kind == "object":
            return "dict[str, Any]"
        if isinstance(kind, str) and kind in _SCALARS:
            return _SCALARS[kind]
        return "Any"

    def emit_named(
        self, name: str, candidate: str, schema: Mapping[str, Any], defs: Mapping[str, Any]
    ) -> None:
        """Render a named type once, after the types it uses."""
        if name in self.emitted:
            return
        self.emitted.add(name)
        if _is_object(schema) or schema.get("type") == "object":
            self.emit_typeddict(name, schema, defs, clean_description(schema.get("description")))
            return
        expr = self.expr(candidate, schema, defs)
        block = [f"{name}: TypeAlias = {expr}"]
        block.extend(_docstring(clean_description(schema.get("description")), ""))
        self.blocks.append(block)

    def emit_typeddict(
        self, name: str, schema: Mapping[str, Any], defs: Mapping[str, Any], doc: str
    ) -> None:
        required = set(schema.get("required", ()))
        body: list[str] = []
        for prop, sub in schema.get("properties", {}).items():
            if not prop.isidentifier() or keyword.iskeyword(prop):
                raise SystemExit(f"{name}: property {prop!r} is not a Python identifier")
            expr = self.expr(prop, sub, defs)
            if prop not in required:
                expr = f"NotRequired[{expr}]"
            body.append(f"    {prop}: {expr}")
            body.extend(_docstring(clean_description(sub.get("description")), "    "))
        unknown = required - set(schema.get("properties", {}))
        if unknown:
            raise SystemExit(f"{name}: required but not defined: {sorted(unknown)}")
        block = [f"class {name}(TypedDict):"]
        block.extend(_docstring(doc, "    "))
        if not body and not doc:
            body = ["    pass"]
        block.extend(body)
        self.blocks.append(block)

    def render(self) -> str:
        proto = self.proto
        module, title = MODULES[proto.protocol]
        long_title = title + (" with the Security Extension" if module == "v16" else "")
        entries: list[list[str]] = []
        for action in proto.actions:
            request = proto.messages.get((action, "request"))
            response = proto.messages.get((action, "response"))
            if request is None:
                raise SystemExit(f"{proto.protocol} {action}: a response without a request")
            for direction, schema in (("request", request), ("response", response)):
                if schema is None:
                    continue
                noun = "SEND message" if action in proto.send_only else direction
                doc = clean_description(schema.get("description")) or (
                    f"The {noun} payload of ``{action}`` ({title})."
                )
                self.emit_typeddict(
                    proto.top_names[(action, direction)],
                    schema,
                    schema.get("definitions", {}),
                    doc,
                )
            req_name = proto.top_names[(action, "request")]
            if action in proto.send_only:
                if response is not None:
                    raise SystemExit(f"{proto.protocol} {action}: SEND-only with a response")
                base = f"SendAction[{req_name}]"
                doc = f"``{action}`` ({title}), a SEND message: :class:`{req_name}`, no response."
            else:
                if response is None:
                    raise SystemExit(f"{proto.protocol} {action}: no response schema")
                res_name = proto.top_names[(action, "response")]
                base = f"Action[{req_name}, {res_name}]"
                doc = f"``{action}`` ({title}): :class:`{req_name}` -> :class:`{res_name}`."
            entries.append(
                [
                    f"class {action}({base}):",
                    *_docstring(doc, "    "),
                    "",
                    "    __slots__ = ()",
                    f"    protocol = {json.dumps(proto.protocol)}",
                    f"    action = {json.dumps(action)}",
                ]
            )
        unused = {n.name for n in proto.named.values()} - self.emitted
        if unused:
            raise SystemExit(f"{proto.protocol}: types never used: {sorted(unused)}")
        header = [
            f"# Generated by tools/generate_types.py from schemas/{proto.protocol}/: do not edit.",
            "# Regenerate with `make generate`; `make test` fails when this file is out of date.",
            f'"""The payload types of {long_title}, generated from the OCA JSON schemas.',
            "",
            "One ``TypedDict`` per request and response (``XRequest`` / ``XResponse``) and",
            "per nested type, ``Literal`` unions for enums, and a typed entry per action",
            f"(``{module}.BootNotification({{...}})``) for ``call()`` and ``handle()``; see",
            ":mod:`ocpp_trio.types`.",
            '"""',
            "",
            "from typing import Any, Final, Literal, NotRequired, TypeAlias, TypedDict",
            "",
            "from . import Action, SendAction",
            "",
            f"PROTOCOL: Final = {json.dumps(proto.protocol)}",
            '"""The subprotocol of this module\'s actions."""',
        ]
        registry = [
            "ActionName: TypeAlias = Literal[",
            *(f"    {json.dumps(a)}," for a in proto.actions),
            "]",
            f'"""Every action name of {title}."""',
            "",
            "ACTIONS: Final[dict[str, type[Action[Any, Any]] | type[SendAction[Any]]]] = {",
            *(f"    {json.dumps(a)}: {a}," for a in proto.actions),
            "}",
            f'"""The typed entry of every action of {title}, by name."""',
        ]
        parts = [header, *self.blocks, *entries, registry]
        text = "\n\n\n".join("\n".join(block) for block in parts) + "\n"
        return text


def generate(protocol: str) -> str:
    """The source of the module of ``protocol``."""
    proto = _Protocol(protocol, SCHEMAS / protocol)
    return _Renderer(proto).render()


def _targets() -> Iterator[tuple[str, Path]]:
    for protocol, (module, _) in MODULES.items():
        yield protocol, TARGET / f"{module}.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when a module is out of date")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for protocol, path in _targets():
        new = generate(protocol)
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if new == old:
            continue
        rel = path.relative_to(ROOT)
        if args.check:
            diff = list(
                difflib.unified_diff(
                    old.splitlines(),
                    new.splitlines(),
                    f"{rel} (committed)",
                    f"{rel} (schemas)",
                    n=0,
                    lineterm="",
                )
            )
            changed = sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))
            stale.append(f"{rel}: {changed} line(s) differ")
            for line in diff[:20]:
                print(line, file=sys.stderr)
            if len(diff) > 20:
                print(f"... {len(diff) - 20} more diff lines", file=sys.stderr)
        else:
            path.write_text(new, encoding="utf-8")
            print(f"wrote {rel} ({len(new.splitlines())} lines, {len(new.encode())} bytes)")
    if stale:
        print("generated types are out of date; run `make generate`:", file=sys.stderr)
        for line in stale:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
