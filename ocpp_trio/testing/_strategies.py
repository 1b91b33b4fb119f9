"""Hypothesis strategies that generate OCPP payloads from their JSON schemas.

:func:`payloads` draws payloads that satisfy a message's schema;
:func:`invalid_payloads` draws ``(payload, error_class)`` pairs where the
payload breaks exactly one rule of the schema and ``error_class`` is the
:class:`~ocpp_trio._core.errors.RPCError` subclass a strict receiver answers
with (see :data:`ocpp_trio._core.validation.RULE_ERRORS`).

The generator covers the JSON-schema subset the OCA files use: ``type``
(object, array, string, integer, number, boolean, null, or a list of them),
``properties``, ``required``, ``additionalProperties``, ``enum``, ``const``,
``minLength`` / ``maxLength``, ``pattern``, ``minimum`` / ``maximum`` (and the
exclusive forms of both drafts), ``multipleOf``, ``minItems`` / ``maxItems``,
``items``, ``$ref`` to ``#/...``, ``format`` ``date-time`` and ``uri``, and
``anyOf`` / ``oneOf`` (drawn from one branch; a ``oneOf`` value that happens to
match two branches is not filtered out).

Sizes are kept small so examples are cheap: strings are mostly short (with the
occasional string of exactly ``maxLength``), arrays hold at most three items
(more only when ``minItems`` asks), and an object gets its required properties
plus at most three optional ones.

Only hypothesis (a development dependency) is imported besides ocpp_trio.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Any, Final

from hypothesis import strategies as st

from ocpp_trio._core.errors import (
    RPCError,
    RPCFormatViolationError,
    RPCOccurrenceConstraintViolationError,
    RPCPropertyConstraintViolationError,
    RPCTypeConstraintViolationError,
)
from ocpp_trio._core.validation import Direction, get_validator

__all__ = ["from_schema", "invalid_from_schema", "invalid_payloads", "payloads"]

_MAX_ITEMS: Final = 3
_MAX_OPTIONAL: Final = 3
_SHORT: Final = 8
_INT_LIMIT: Final = 2**31 - 1
_FLOAT_LIMIT: Final = 1e9

_TEXT_CHARS: Final = st.characters(exclude_categories=["Cs"])
_MORE: Final = st.booleans()
_OFFSETS: Final = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
_DATE_TIMES: Final = st.builds(
    lambda dt: dt.isoformat().replace("+00:00", "Z"),
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2199, 12, 31), timezones=_OFFSETS
    ),
)
_URIS: Final = st.builds(
    "{}://{}.example/{}".format,
    st.sampled_from(["http", "https", "ftp", "ftps"]),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789/._-", max_size=12),
)
_BAD_DATE_TIMES: Final = (
    "yesterday",
    "2024-02-30T10:00:00Z",
    "2024-01-01T10:00:00+0100",
    "2024-01-01 10:00:00Z",
    "2024-01-01T25:00:00Z",
)
_WRONG_TYPED: Final[tuple[tuple[str, Any], ...]] = (
    ("string", "oops"),
    ("integer", 7),
    ("boolean", True),
    ("array", []),
    ("object", {}),
    ("null", None),
)
_UNEXPECTED: Final = "unexpectedProperty"
_NOT_IN_ENUM: Final = "#not-in-enum#"

Path = tuple[str | int, ...]


def _types(schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("type")
    if declared is None:
        return []
    return [declared] if isinstance(declared, str) else list(declared)


def _allows(types: list[str], json_type: str) -> bool:
    return json_type in types or (json_type == "integer" and "number" in types)


@dataclass(frozen=True, slots=True)
class _Mutation:
    path: Path
    error: type[RPCError]
    replace: Callable[[Any], Any] | None  # None: delete the item at path


class _Schema:
    """One schema document: resolves its local refs, builds strategies and mutations."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self._refs: dict[str, st.SearchStrategy[Any]] = {}

    def resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise ValueError(f"only local $ref are supported, got {ref!r}")
            target: Any = self.root
            for part in ref[1:].lstrip("/").split("/") if ref != "#" else []:
                part = part.replace("~1", "/").replace("~0", "~")
                target = target[int(part)] if isinstance(target, list) else target[part]
            node = target
            seen += 1
            if seen > 100:
                raise ValueError(f"$ref loop at {ref!r}")
        return node

    # --- valid values ---------------------------------------------------------

    def strategy(self, node: Mapping[str, Any]) -> st.SearchStrategy[Any]:
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref not in self._refs:
                self._refs[ref] = st.deferred(lambda: self.strategy(self.resolve(node)))
            return self._refs[ref]
        for key in ("anyOf", "oneOf"):
            if key in node:
                return st.one_of([self.strategy(branch) for branch in node[key]])
        if "const" in node:
            return st.just(node["const"])
        if "enum" in node:
            return st.sampled_from(list(node["enum"]))
        types = _types(node)
        if not types:
            return st.none() | st.booleans() | st.integers(-100, 100) | st.text(max_size=_SHORT)
        return st.one_of([self._typed(node, t) for t in types])

    def _typed(self, node: Mapping[str, Any], json_type: str) -> st.SearchStrategy[Any]:
        if json_type == "object":
            return self._object(node)
        if json_type == "array":
            low = int(node.get("minItems", 0))
            high = int(node.get("maxItems", max(low, _MAX_ITEMS)))
            items = node.get("items", {})
            item = self.strategy(items) if isinstance(items, Mapping) else st.none()
            return st.lists(item, min_size=low, max_size=max(low, min(high, _MAX_ITEMS)))
        if json_type == "string":
            return self._string(node)
        if json_type == "integer":
            low, high = _bounds(node, integer=True)
            return st.integers(low, high)
        if json_type == "number":
            return self._number(node)
        if json_type == "boolean":
            return st.booleans()
        if json_type == "null":
            return st.none()
        raise ValueError(f"unsupported type {json_type!r}")

    def _object(self, node: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        properties: Mapping[str, Any] = node.get("properties", {})
        required = [name for name in node.get("required", ()) if name in properties]
        # A required name without a declared schema: any scalar will do.
        extra_required = [name for name in node.get("required", ()) if name not in properties]
        optional = sorted(name for name in properties if name not in required)
        required_st = {name: self.strategy(properties[name]) for name in required}
        required_st |= {name: st.text(max_size=_SHORT) for name in extra_required}
        optional_st = {name: self.strategy(properties[name]) for name in optional}
        # Strategies built once: one constructed inside ``build`` would be
        # re-validated on every draw (a third of the time of a big payload).
        picks = {n: st.integers(0, n - 1) for n in range(1, len(optional) + 1)}
        most = min(_MAX_OPTIONAL, len(optional))

        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            out = {name: draw(s) for name, s in required_st.items()}
            # Each optional property is one span of draws (go on?, which, value),
            # like the elements of st.lists: the shrinker drops one by deleting
            # its span, without disturbing the others.
            remaining = list(optional)
            for _ in range(most):
                if not draw(_MORE):
                    break
                name = remaining.pop(draw(picks[len(remaining)]))
                out[name] = draw(optional_st[name])
            return out

        return build()

    def _string(self, node: Mapping[str, Any]) -> st.SearchStrategy[str]:
        fmt = node.get("format")
        if fmt == "date-time":
            return _DATE_TIMES
        if fmt == "uri":
            return _URIS
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True)
        low = int(node.get("minLength", 0))
        high = node.get("maxLength")
        if high is None:
            return st.text(_TEXT_CHARS, min_size=low, max_size=low + _SHORT)
        high = int(high)
        short = st.text(_TEXT_CHARS, min_size=low, max_size=min(high, low + _SHORT))
        if high <= low + _SHORT:
            return short
        # Now and then a string of exactly maxLength, cheaply built by repetition.
        full = st.text(_TEXT_CHARS, min_size=1, max_size=3).map(lambda s: (s * high)[:high])
        return st.one_of(short, short, short, full)

    def _number(self, node: Mapping[str, Any]) -> st.SearchStrategy[int | float]:
        low, high = _bounds(node, integer=False)
        step = node.get("multipleOf")
        if step is not None:
            d_step = Decimal(repr(step))
            k_low = math.ceil(Decimal(repr(low)) / d_step)
            k_high = math.floor(Decimal(repr(high)) / d_step)
            k_high = min(k_high, k_low + 10_000)
            return st.integers(k_low, k_high).map(lambda k: float(Decimal(k) * d_step))
        exclusive = _exclusive_floats(node)
        return st.one_of(
            st.integers(math.ceil(low), math.floor(high)).filter(lambda v: v not in exclusive),
            st.floats(low, high, allow_nan=False, allow_infinity=False).filter(
                lambda v: v not in exclusive
            ),
        )

    # --- invalid values -------------------------------------------------------

    def mutations(self, node: Mapping[str, Any], value: Any, path: Path) -> Iterator[_Mutation]:
        """Every single-rule breakage of ``value`` at ``path`` (and below it)."""
        node = self.resolve(node)
        types = _types(node)
        if types:
            for json_type, wrong in _WRONG_TYPED:
                if not _allows(types, json_type):
                    error = RPCFormatViolationError if not path else RPCTypeConstraintViolationError
                    yield _Mutation(path, error, _const(wrong))
                    break
        if "enum" in node and isinstance(value, str) and _NOT_IN_ENUM not in node["enum"]:
            yield _Mutation(path, RPCPropertyConstraintViolationError, _const(_NOT_IN_ENUM))
        if isinstance(value, str) and "enum" not in node and "pattern" not in node:
            yield from self._string_mutations(node, path)
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield from _number_mutations(node, types, path)
        if isinstance(value, dict):
            properties: Mapping[str, Any] = node.get("properties", {})
            for name in node.get("required", ()):
                if name in value:
                    yield _Mutation((*path, name), RPCOccurrenceConstraintViolationError, None)
            if node.get("additionalProperties") is False and _UNEXPECTED not in properties:
                yield _Mutation((*path, _UNEXPECTED), RPCFormatViolationError, _const("surprise"))
            for name, sub in value.items():
                if name in properties:
                    yield from self.mutations(properties[name], sub, (*path, name))
        if isinstance(value, list):
            low = int(node.get("minItems", 0))
            if low >= 1:
                yield _Mutation(path, RPCOccurrenceConstraintViolationError, _const([]))
            high = node.get("maxItems")
            if high is not None and value and int(high) <= 20:
                yield _Mutation(
                    path,
                    RPCOccurrenceConstraintViolationError,
                    _overfill(int(high)),
                )
            items = node.get("items")
            if isinstance(items, Mapping):
                for index, sub in enumerate(value):
                    yield from self.mutations(items, sub, (*path, index))

    def _string_mutations(self, node: Mapping[str, Any], path: Path) -> Iterator[_Mutation]:
        fmt = node.get("format")
        bad = RPCPropertyConstraintViolationError
        if fmt == "date-time":
            for text in _BAD_DATE_TIMES:
                yield _Mutation(path, bad, _const(text))
            return
        if fmt == "uri":
            yield _Mutation(path, bad, _const("not a uri"))
            return
        if "maxLength" in node:
            yield _Mutation(path, bad, _const("x" * (int(node["maxLength"]) + 1)))
        if int(node.get("minLength", 0)) >= 1:
            yield _Mutation(path, bad, _const("x" * (int(node["minLength"]) - 1)))


def _bounds(node: Mapping[str, Any], *, integer: bool) -> tuple[Any, Any]:
    limit = _INT_LIMIT if integer else _FLOAT_LIMIT
    low = node.get("minimum", -limit)
    high = node.get("maximum", limit)
    ex_low, ex_high = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if integer:
        low, high = math.ceil(low), math.floor(high)
        if ex_low is True or (not isinstance(ex_low, bool) and ex_low == low):
            low += 1
        elif isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
            low = max(low, math.floor(ex_low) + 1)
        if ex_high is True or (not isinstance(ex_high, bool) and ex_high == high):
            high -= 1
        elif isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
            high = min(high, math.ceil(ex_high) - 1)
    else:
        if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
            low = max(low, ex_low)
        if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
            high = min(high, ex_high)
    return low, high


def _exclusive_floats(node: Mapping[str, Any]) -> frozenset[float]:
    """The bounds a number must not equal (exclusive forms of both drafts)."""
    out: set[float] = set()
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        marker = node.get(flag)
        if marker is True and bound in node:
            out.add(node[bound])
        elif isinstance(marker, int | float) and not isinstance(marker, bool):
            out.add(marker)
    return frozenset(out)


def _number_mutations(node: Mapping[str, Any], types: list[str], path: Path) -> Iterator[_Mutation]:
    bad = RPCPropertyConstraintViolationError
    integer = "number" not in types
    step = node.get("multipleOf")
    delta: Any = 1 if integer or step is None else step
    if "minimum" in node:
        below = node["minimum"] - delta
        yield _Mutation(path, bad, _const(math.floor(below) if integer else below))
    if "maximum" in node:
        above = node["maximum"] + delta
        yield _Mutation(path, bad, _const(math.ceil(above) if integer else above))
    if step is not None and "minimum" not in node and "maximum" not in node:
        off = float(Decimal(repr(step)) * Decimal("2.5"))
        if not float(Decimal(repr(off)) / Decimal(repr(step))).is_integer():
            yield _Mutation(path, bad, _const(off))


def _const(value: Any) -> Callable[[Any], Any]:
    """A replacement that ignores the current value (fresh copy each time)."""

    def replace(_current: Any) -> Any:
        return copy.deepcopy(value)

    return replace


def _overfill(max_items: int) -> Callable[[Any], Any]:
    """A replacement that repeats the first item until the array has one too many."""

    def replace(current: Any) -> Any:
        return [*current, *[copy.deepcopy(current[0])] * (max_items + 1 - len(current))]

    return replace


def _apply(payload: Any, mutation: _Mutation) -> Any:
    if not mutation.path:
        assert mutation.replace is not None
        return mutation.replace(payload)
    out = copy.deepcopy(payload)
    parent: Any = out
    for step in mutation.path[:-1]:
        parent = parent[step]
    last: Any = mutation.path[-1]
    if mutation.replace is None:
        del parent[last]
    else:
        current = parent[last] if isinstance(parent, list) or last in parent else None
        parent[last] = mutation.replace(current)
    return out


# --- public API ----------------------------------------------------------------


def from_schema(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for values that satisfy ``schema`` (a whole schema document).

    ``$ref`` must be local (``#/definitions/...``); see the module docstring for
    the supported keywords and the size limits.
    """
    doc = _Schema(schema)
    return doc.strategy(schema)


def invalid_from_schema(schema: Mapping[str, Any]) -> st.SearchStrategy[tuple[Any, type[RPCError]]]:
    """A strategy for ``(value, error_class)``: a value breaking exactly one rule of ``schema``.

    The value is a valid value with one mutation: a wrong type, a required
    property removed, an unexpected property added, an enum value out of range,
    a string too long or too short, a bad date-time or uri, a number out of
    range or not a multiple, an array too short or too long.  ``error_class``
    is what a strict receiver answers with; a wrong type at the top level is a
    ``FormatViolation`` (the payload is not an object).
    """
    doc = _Schema(schema)
    valid = doc.strategy(schema)

    @st.composite
    def build(draw: st.DrawFn) -> tuple[Any, type[RPCError]]:
        value = draw(valid)
        candidates = list(doc.mutations(schema, value, ()))
        mutation = draw(st.sampled_from(candidates))
        return _apply(value, mutation), mutation.error

    return build()


@cache
def payloads(
    protocol: str, action: str, direction: Direction = "request", *, variant: str | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid payloads of a built-in protocol's ``action`` in ``direction``.

    ``variant`` names another shipped schema set of the protocol
    (``SCHEMA_VARIANTS``, e.g. ``"pre-errata"`` for OCPP 1.6).

    Raises:
        KeyError: the protocol has no schema for ``action`` in ``direction``.
        ValueError: ``protocol`` is not a built-in protocol, or has no such variant.
    """
    return from_schema(get_validator(protocol, variant=variant).schema(action, direction))


@cache
def invalid_payloads(
    protocol: str, action: str, direction: Direction = "request", *, variant: str | None = None
) -> st.SearchStrategy[tuple[Any, type[RPCError]]]:
    """``(payload, error_class)`` pairs, each payload breaking exactly one rule.

    See :func:`invalid_from_schema`; ``error_class`` is the canonical class
    (``RPCFormatViolationError``, ``RPCOccurrenceConstraintViolationError``...):
    the connection sends each version's own spelling.  ``variant`` as for
    :func:`payloads`.

    Raises:
        KeyError: the protocol has no schema for ``action`` in ``direction``.
        ValueError: ``protocol`` is not a built-in protocol, or has no such variant.
    """
    return invalid_from_schema(get_validator(protocol, variant=variant).schema(action, direction))
