"""Validation policy: what strict mode does with a payload that breaks its schema.

Strict mode answers every schema failure the same way by default: the payload
is refused (``reject``).  Real chargers break the schemas in small, known ways
(a connectorId sent as ``"1"``, a vendor key inside a sampled value, ``"accepted"``
for ``"Accepted"``, a timestamp without its zone), and a CSMS facing one such
firmware should not have to turn validation off for everything.  A
:class:`ValidationPolicy` says, per protocol, action, direction and schema
rule, one of:

``reject``
    today's behaviour: an inbound CALL is answered with the CALLERROR the rule
    gives, an inbound result fails the call, an outbound payload is not sent;
    a ``strict_validation_failure`` event is emitted.
``report``
    the payload is delivered (or sent) as it is; a ``strict_validation_failure``
    event with ``outcome="report"`` is emitted and the connection's
    ``validation_counts["report"]`` moves.
``ignore``
    the payload is delivered (or sent) silently; ``validation_counts["ignore"]``
    moves.

and which *relaxations* apply (each off by default).  A relaxation repairs one
kind of breakage in a payload the peer sent, after which the payload is checked
again; the handler (or the caller of ``call()``) gets the repaired payload:

``numbers_as_strings``
    a string holding a JSON number where the schema wants an integer or a
    number: ``"connectorId": "1"`` becomes ``1``, ``"12.5"`` becomes ``12.5``
    (an integer only from an integer spelling).
``unknown_properties``
    properties an object's schema does not declare (``additionalProperties:
    false``) are let through, and kept in the payload delivered.
``enum_case``
    a string that matches exactly one value of the enum when case is ignored
    becomes that value: ``"accepted"`` becomes ``"Accepted"``.
``timestamps_without_zone``
    an RFC 3339 date-time without its offset, ``2024-01-01T10:00:00``, is
    taken as UTC and becomes ``2024-01-01T10:00:00Z``.

Relaxations apply only to what the peer sends (inbound CALLs and results):
our own payloads are what our code built.  Repairs are bounded
(:data:`MAX_REPAIRS` per payload); a payload still broken after them, or
broken in a way no enabled relaxation covers, is judged by the policy's rules
on the remaining failure.

Cost: a connection without a policy pays nothing (strict mode checks
``policy is None`` only once a payload has already failed); with one, a payload
that passes its schema pays nothing either.  The failure path costs one
dictionary lookup per failure; a repair costs a copy of the payload and one
validation per repair.  The first repair in an action reads that action's
schema (``Validator.schema``, kept afterwards); nothing is compiled.

This module never imports trio.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, get_args

from .errors import ValidationError
from .validation import DATE_TIME_PATTERN, Direction, Validator

__all__ = [
    "MAX_REPAIRS",
    "RELAXATIONS",
    "Outcome",
    "PolicyRule",
    "Relaxation",
    "ValidationPolicy",
    "Verdict",
]

Outcome: TypeAlias = Literal["reject", "report", "ignore"]
Relaxation: TypeAlias = Literal[
    "numbers_as_strings", "unknown_properties", "enum_case", "timestamps_without_zone"
]
#: Every relaxation, by name.
RELAXATIONS: Final[frozenset[str]] = frozenset(get_args(Relaxation))
_OUTCOMES: Final[frozenset[str]] = frozenset(get_args(Outcome))
_ANY: Final = "*"

#: At most this many repairs (relaxations applied) per payload.
MAX_REPAIRS: Final = 64

_INTEGER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_DATE_TIME: Final = re.compile(DATE_TIME_PATTERN)


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One line of a policy: ``outcome`` for the failures it matches.

    Each of ``protocol``, ``action``, ``direction`` and ``rule`` is a value to
    match or ``"*"`` for any.  ``rule`` is the JSON schema keyword that failed
    (``"type"``, ``"enum"``, ``"additionalProperties"``, ``"required"``,
    ``"maxLength"``, ``"format"``...; ``ValidationError.rule``).

    Example: ``PolicyRule("report", action="MeterValues", rule="additionalProperties")``.
    """

    outcome: Outcome
    protocol: str = _ANY
    action: str = _ANY
    direction: Direction | Literal["*"] = _ANY
    rule: str = _ANY

    def __post_init__(self) -> None:
        if self.outcome not in _OUTCOMES:
            raise ValueError(
                f"outcome must be one of {', '.join(sorted(_OUTCOMES))}, got {self.outcome!r}"
            )
        if self.direction not in ("request", "response", _ANY):
            raise ValueError(
                f"direction must be 'request', 'response' or '*', got {self.direction!r}"
            )
        for name in ("protocol", "action", "rule"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string or '*'")

    @property
    def specificity(self) -> int:
        """How many of the four fields name a value (the most specific rule wins)."""
        return sum(
            value != _ANY for value in (self.protocol, self.action, self.direction, self.rule)
        )

    def matches(self, protocol: str, action: str, direction: str, rule: str | None) -> bool:
        """Whether this line applies to a failure of ``rule`` in that message."""
        return (
            self.protocol in (_ANY, protocol)
            and self.action in (_ANY, action)
            and self.direction in (_ANY, direction)
            and self.rule in (_ANY, rule)
        )


@dataclass(frozen=True, slots=True, init=False)
class ValidationPolicy:
    """What strict mode does with schema failures, and which relaxations apply.

    Args:
        rules: the policy's lines; for a failure, the most specific matching
            line decides (the one naming most of protocol, action, direction,
            rule), the later one among equally specific lines.
        default: the outcome when no line matches (``"reject"``, as without a
            policy).
        relaxations: the relaxations to apply to what the peer sends (see the
            module docstring), by name.

    Give it to a client or server as ``validation_policy=``, to one station
    from ``auth`` (``AuthAccept(options={"validation_policy": ...})``), or at
    run time with ``conn.reconfigure(validation_policy=...)``.  A policy only
    acts where strict mode validates (``strict_mode`` /
    ``strict_mode_validators``).

    Raises:
        ValueError: an unknown outcome or relaxation.
    """

    rules: tuple[PolicyRule, ...] = ()
    default: Outcome = "reject"
    relaxations: frozenset[Relaxation] = frozenset()
    _memo: dict[tuple[str, str, str, str | None], Outcome] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __init__(
        self,
        rules: Iterable[PolicyRule] = (),
        *,
        default: Outcome = "reject",
        relaxations: Collection[Relaxation] = (),
    ) -> None:
        rules = tuple(rules)
        for rule in rules:
            if not isinstance(rule, PolicyRule):
                raise TypeError(f"rules must be PolicyRule objects, got {type(rule).__name__}")
        if default not in _OUTCOMES:
            raise ValueError(
                f"default must be one of {', '.join(sorted(_OUTCOMES))}, got {default!r}"
            )
        if isinstance(relaxations, str):
            raise TypeError("relaxations takes a collection of names, not a string")
        unknown = set(relaxations) - RELAXATIONS
        if unknown:
            raise ValueError(
                f"unknown relaxation(s) {', '.join(sorted(map(repr, unknown)))}; "
                f"known: {', '.join(sorted(RELAXATIONS))}"
            )
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "relaxations", frozenset(relaxations))
        object.__setattr__(self, "_memo", {})

    def outcome(self, protocol: str, action: str, direction: str, rule: str | None) -> Outcome:
        """The outcome for a failure of ``rule`` in ``action``'s ``direction`` payload."""
        key = (protocol, action, direction, rule)
        found = self._memo.get(key)
        if found is not None:
            return found
        best: PolicyRule | None = None
        for line in self.rules:
            if line.matches(protocol, action, direction, rule) and (
                best is None or line.specificity >= best.specificity
            ):
                best = line
        found = best.outcome if best is not None else self.default
        if len(self._memo) < 4096:  # a peer chooses action names: bounded
            self._memo[key] = found
        return found

    def judge(
        self,
        validator: Validator,
        action: str,
        direction: Direction,
        payload: Any,
        error: ValidationError,
        *,
        inbound: bool,
    ) -> Verdict:
        """What to do with ``payload``, which failed with ``error``.

        Relaxations are tried first (``inbound`` payloads only); the policy's
        lines then judge the failure that remains.
        """
        if inbound and self.relaxations and isinstance(payload, dict):
            attempt = _repair(validator, action, direction, payload, error, self.relaxations)
            if not isinstance(attempt, ValidationError):
                return Verdict("relaxed", error, attempt)
            error = attempt
        return Verdict(self.outcome(validator.protocol, action, direction, error.rule), error)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The policy's decision on one failed payload.

    Attributes:
        outcome: ``"reject"``, ``"report"``, ``"ignore"``, or ``"relaxed"``
            (relaxations repaired it; it passes).
        error: the failure judged (for ``"relaxed"``, the first one repaired).
        payload: for ``"relaxed"``, the repaired payload to deliver; else None
            (the payload goes on as it is).
    """

    outcome: Literal["reject", "report", "ignore", "relaxed"]
    error: ValidationError
    payload: dict[str, Any] | None = None


# --- repairs -------------------------------------------------------------------


def _repair(
    validator: Validator,
    action: str,
    direction: Direction,
    payload: dict[str, Any],
    error: ValidationError,
    relaxations: frozenset[Relaxation],
) -> dict[str, Any] | ValidationError:
    """The payload repaired until it passes, or the failure no relaxation covers.

    The payload is copied only once a repair applies: a failure that no
    relaxation covers costs one look at the schema.
    """
    fix = _fix(validator, action, direction, payload, error, relaxations)
    if fix is None:
        return error
    fixed = copy.deepcopy(payload)
    set_aside: list[tuple[tuple[str | int, ...], str, Any]] = []
    for _ in range(MAX_REPAIRS):
        path, replacement = fix
        if isinstance(replacement, _Drop):  # unknown properties: out while checking
            node = _at(fixed, path)
            set_aside.extend((path, key, node.pop(key)) for key in replacement.keys)
        else:
            _at(fixed, path[:-1])[path[-1]] = replacement
        try:
            validator.validate(action, direction, fixed)
        except ValidationError as exc:
            error = exc
            fix = _fix(validator, action, direction, fixed, error, relaxations)
            if fix is None:
                return error
            continue
        for where, key, value in set_aside:  # ... and back in what is delivered
            _at(fixed, where)[key] = value
        return fixed
    return error


@dataclass(frozen=True, slots=True)
class _Drop:
    """A repair that takes the object's undeclared properties out while it is checked."""

    keys: tuple[str, ...]


def _at(root: Any, path: tuple[str | int, ...]) -> Any:
    node = root
    for step in path:
        node = node[step]
    return node


def _schema_at(
    validator: Validator, action: str, direction: Direction, path: tuple[str | int, ...]
) -> Mapping[str, Any] | None:
    """:func:`_subschema`, every list index as 0 (``items`` is one schema in OCPP), cached."""
    return _subschema(
        validator, action, direction, tuple(0 if isinstance(step, int) else step for step in path)
    )


@functools.lru_cache(maxsize=1024)
def _subschema(
    validator: Validator, action: str, direction: Direction, path: tuple[str | int, ...]
) -> Mapping[str, Any] | None:
    """The (adapted) subschema that applies at ``path``, following local ``$ref``s.

    Adapted schemas are plain dicts (``isinstance`` against ``Mapping`` would
    cost ten times as much here).
    """
    root = validator.schema(action, direction)
    node: Any = root
    for step in path:
        node = _deref(root, node)
        if isinstance(step, int):
            node = node.get("items") if isinstance(node, dict) else None
        else:
            props = node.get("properties") if isinstance(node, dict) else None
            node = props.get(step) if isinstance(props, dict) else None
        if node is None:
            return None
    node = _deref(root, node)
    return node if isinstance(node, dict) else None


def _deref(root: Mapping[str, Any], node: Any) -> Any:
    for _ in range(16):  # a chain of refs, bounded
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            return node
        target: Any = root
        for part in node["$ref"].lstrip("#").split("/"):
            if part:
                target = target.get(part) if isinstance(target, dict) else None
        node = target
    return node


def _fix(
    validator: Validator,
    action: str,
    direction: Direction,
    payload: dict[str, Any],
    error: ValidationError,
    relaxations: frozenset[Relaxation],
) -> tuple[tuple[str | int, ...], Any] | None:
    """The repair of the one failure ``error`` names: ``(path, new value or _Drop)``.

    None when no enabled relaxation covers it.  Changes nothing.
    """
    path, rule = error.path, error.rule
    if not path and rule != "additionalProperties":
        return None  # the payload itself is not an object: nothing to relax
    try:
        value = _at(payload, path)
    except (KeyError, IndexError, TypeError):  # pragma: no cover - paths come from the validator
        return None
    schema = _schema_at(validator, action, direction, path)
    if schema is None:
        return None
    if rule == "type" and "numbers_as_strings" in relaxations and isinstance(value, str):
        wanted = schema.get("type")
        if wanted == "integer" and _INTEGER.match(value):
            return path, int(value)
        if wanted == "number" and _NUMBER.match(value):
            if _INTEGER.match(value):
                return path, int(value)
            number = float(value)
            return (path, number) if math.isfinite(number) else None
        return None
    if rule == "enum" and "enum_case" in relaxations and isinstance(value, str):
        folded = value.casefold()
        matches = [
            v for v in schema.get("enum", ()) if isinstance(v, str) and v.casefold() == folded
        ]
        if len(matches) != 1 or matches[0] == value:
            return None
        return path, matches[0]
    if rule == "format" and "timestamps_without_zone" in relaxations and isinstance(value, str):
        if schema.get("format") != "date-time" or not _DATE_TIME.match(value + "Z"):
            return None
        return path, value + "Z"
    if (
        rule == "additionalProperties"
        and "unknown_properties" in relaxations
        and isinstance(value, dict)
    ):
        declared = schema.get("properties") or {}
        extra = tuple(key for key in value if key not in declared)
        return (path, _Drop(extra)) if extra else None
    return None
