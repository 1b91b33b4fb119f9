"""Payload validation against the OCA JSON schemas (strict mode).

Theory of operation
===================

OCPP-J 1.6 §4.2.3 and OCPP-J 2.0.1/2.1 §4.3 say that a receiver answers a
CALL whose payload breaks the message's schema with a CALLERROR naming the
kind of breakage: ``FormatViolation`` (``FormationViolation`` in 1.6),
``PropertyConstraintViolation``, ``OccurrenceConstraintViolation``
(``OccurenceConstraintViolation`` in 1.6) or ``TypeConstraintViolation``.
The same sections cap the CALLERROR's errorDescription at 255 characters; we
name the field path and the rule there, never the payload.

The OCA publishes one JSON schema per message and direction (``schemas/``):

* ``ocpp1.6``: ``X.json`` is the request of action X and ``XResponse.json``
  its response (draft-04; the Security Extension files are draft-06).
* ``ocpp2.0.1`` and ``ocpp2.1``: ``XRequest.json`` / ``XResponse.json``
  (draft-06).  A file with neither suffix (2.1's
  ``NotifyPeriodicEventStream.json``) is the payload of a SEND (OCPP-J 2.1
  §4.4), which has no response: it is filed as a *request* and listed in
  :attr:`Validator.send_only_actions`.

Each file is compiled by fastjsonschema into a plain Python function and
cached for the life of the :class:`Validator` (built-in validators are shared
by the whole process).  Compiling costs 3 ms (BootNotification) to 28 ms
(TransactionEvent) a schema, 0.1 s (1.6) to about 1 s (2.1) a protocol,
nearly all of it Python compiling the generated source
(``benchmarks/validation_startup.py``), and it blocks whoever runs it.  So the
runtime never compiles on a message: a client or server calls
:meth:`Validator.precompile` in a worker thread before it reports itself
started (``ocpp_trio._rpc.outbound.prepare_validators``), and
:attr:`Validator.compiled` says whether anything is left.  Used on its own, a
validator still compiles a schema on its first payload.  A validation then
costs 1 to 13 µs (BootNotification, TransactionEvent).  Generating the code
ahead of time (``compile_to_code``) would remove the start-up compile too, at
the price of about 8.5 MB of generated source for the three protocols.

The error code is chosen by the rule that failed (:data:`RULE_ERRORS`):

==============================================================  ===============================
rule                                                            error class
==============================================================  ===============================
``type``                                                        TypeConstraintViolation
``required``, ``minItems``, ``maxItems``, ``min/maxProperties``  OccurrenceConstraintViolation
``enum``, ``const``, ``pattern``, ``format``, ``multipleOf``,    PropertyConstraintViolation
``minimum``, ``maximum``, ``exclusive*``, ``min/maxLength``
``additionalProperties``, anything else, a non-object payload    FormatViolation
==============================================================  ===============================

We raise the canonical (2.x) classes; the connection sends each version's own
spelling (:func:`ocpp_trio._core.errors.code_for_protocol`).

Numbers
-------
Payloads come from :func:`json.loads`, so numbers are ``int`` or ``float``
(``Decimal`` also works).  ``number`` accepts both; ``bool`` is never a
number.  ``integer`` follows the file's draft, as the JSON Schema drafts (and
the ``jsonschema`` reference implementation) do: draft-04 (OCPP 1.6 core)
rejects ``1.0`` and draft-06 (1.6 Security Extension, 2.0.1, 2.1) accepts it;
``1.5`` is rejected by both.  ``multipleOf`` is checked exactly on the decimal
spelling of the number (fastjsonschema divides ``Decimal(repr(x))``), so a 1.6
charging limit of ``0.7`` is a multiple of ``0.1`` even though ``0.7 / 0.1`` is
``6.999999999999999`` in binary floating point.

Formats
-------
``format`` is an assertion here (the drafts let a validator choose).  OCPP
requires RFC 3339 date-times (the dateTime primitive of OCPP 1.6, 2.0.1 and
2.1), so ``date-time`` is checked against RFC 3339 §5.6 exactly: a real
calendar date, ``T``, a time (leap second ``60`` allowed), optional fraction,
and ``Z`` or a ``+hh:mm`` offset; ASCII digits only.  fastjsonschema's own pattern also
accepts ``+hhmm``, which RFC 3339 does not, so we replace it.  ``uri`` (two
1.6 fields, ``UpdateFirmware.location`` and ``GetDiagnostics.location``) is
RFC 3986 §3's ``URI`` exactly, as its Appendix A's ABNF defines it (an
absolute URI: a scheme and ``:``, an optional ``//authority``, a path, an
optional query and fragment; only ASCII, ``%`` followed by two hex digits):
``x:`` and ``urn:a`` pass, ``http://a/<b>``, ``http://a/%zz``, a relative
reference and an IRI with non-ASCII characters do not.  These are the only
formats the OCA schemas use.  :func:`create_validator` takes
``check_formats=False`` for peers that cannot be fixed.

Load-time adaptations
---------------------
The OCA files are shipped as the OCA published them (``schemas/README.md``
tells their provenance); :func:`adapt_schema` changes the parsed copy (the
list is also :data:`LOAD_TIME_ADAPTATIONS`):

1. The ``$id`` / ``id`` URNs (``urn:OCPP:Cp:2:2025:1:...``, ``urn:OCPP:Cp:1.6:
   2020:3:...``, ``urn:OCPP:1.6:2019:12:...``) are dropped, so every ``$ref`` resolves inside its own file
   and nothing can make the compiler fetch a remote document.
2. Every ``$ref`` must be local (``#...``); any other is refused with
   :class:`ValueError` before compilation (the OCA files have none).
3. Annotation keywords that never validate (``title``, ``description``,
   ``comment``, ``$comment``, ``javaType``) are dropped: compiled code with
   detailed exceptions embeds the schema, and this makes it about 40% smaller.
4. Files are read as UTF-8, tolerating a byte-order mark.

And at compile time (not edits of the schema):

5. ``default`` is never inserted into payloads (``use_default=False``):
   validation does not mutate what it checks.
6. ``date-time`` and ``uri`` are checked as their RFCs define them (above).

Thread safety: compilation is serialised by a lock; validating is lock-free.
This module never imports trio.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, final

import fastjsonschema

from .errors import (
    RPCError,
    RPCFormatViolationError,
    RPCNotImplementedError,
    RPCNotSupportedError,
    RPCOccurrenceConstraintViolationError,
    RPCPropertyConstraintViolationError,
    RPCTypeConstraintViolationError,
    ValidationError,
    truncate_description,
)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "LOAD_TIME_ADAPTATIONS",
    "RULE_ERRORS",
    "SCHEMA_VARIANTS",
    "SUPPORTED_PROTOCOLS",
    "Direction",
    "SchemaSource",
    "Validator",
    "adapt_schema",
    "create_validator",
    "get_validator",
    "load_schemas",
    "send_only_actions",
]

Direction: TypeAlias = Literal["request", "response"]
Schema: TypeAlias = dict[str, Any]
_Key: TypeAlias = tuple[str, Direction]
_Loader: TypeAlias = Callable[[], Schema]
_CompiledFn: TypeAlias = Callable[[Any], Any]

#: What :func:`create_validator` accepts as schemas: a folder laid out like
#: ``schemas/<protocol>/``, ``{(action, direction): schema}`` or
#: ``{action: {"request": schema, "response": schema}}``.
SchemaSource: TypeAlias = (
    str
    | os.PathLike[str]
    | Mapping[tuple[str, str], Mapping[str, Any]]
    | Mapping[str, Mapping[str, Mapping[str, Any]]]
)

#: The protocols whose OCA schemas ship with ocpp_trio.
SUPPORTED_PROTOCOLS: Final = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")

#: The other schema sets shipped for a protocol, by name (``schemas/README.md``
#: tells where each comes from).  ``"pre-errata"``: the OCPP 1.6 JSON schemas
#: as first published, before the OCA's 2019-12 set that came with the 1.6
#: errata sheet v4.0 (no ``additionalProperties: false`` on inner objects, no
#: ``Celsius`` in the ``unit`` enums, ``number`` for three integers), plus the
#: same Security Extension files; what many older stations and CSMSes were
#: built against.  Select it with ``get_validator("ocpp1.6", variant="pre-errata")``.
SCHEMA_VARIANTS: Final[Mapping[str, tuple[str, ...]]] = {"ocpp1.6": ("pre-errata",)}

_DIRECTIONS: Final[frozenset[str]] = frozenset({"request", "response"})

#: Each load-time adaptation, in words (the module docstring explains why).
LOAD_TIME_ADAPTATIONS: Final[tuple[str, ...]] = (
    "drop the `$id` / `id` URN of every schema, so `$ref`s resolve inside their own file",
    "refuse any `$ref` that is not local (`#...`); the OCA files have none",
    "drop annotations that never validate: title, description, comment, $comment, javaType",
    "read files as UTF-8, tolerating a byte-order mark",
    "compile with use_default=False: `default` values are never inserted into payloads",
    "check `date-time` as RFC 3339 §5.6 exactly (fastjsonschema also accepts `+hhmm`)",
    "check `uri` as RFC 3986 §3 `URI` exactly (the ABNF of its Appendix A)",
)

_ANNOTATIONS: Final = frozenset({"title", "description", "comment", "$comment", "javaType"})
_ID_KEYWORDS: Final = frozenset({"$id", "id"})
# Keywords whose value maps names to subschemas, and those holding subschemas.
_SCHEMA_MAPS: Final = frozenset({"properties", "definitions", "patternProperties", "$defs"})
_SCHEMA_VALUES: Final = frozenset(
    {
        "items",
        "additionalItems",
        "additionalProperties",
        "not",
        "contains",
        "propertyNames",
        "if",
        "then",
        "else",
        "allOf",
        "anyOf",
        "oneOf",
        "dependencies",
    }
)

# RFC 3339 §5.6 date-time; the date must exist (29 February only in leap years).
_DATE: Final = (
    r"[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    r"|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29"
)
_TIME: Final = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
_OFFSET: Final = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
DATE_TIME_PATTERN: Final = rf"^(?:{_DATE})[Tt]{_TIME}{_OFFSET}\Z"

# RFC 3986 §3 ``URI``, written out from the ABNF of its Appendix A.  ``host``
# is ``IP-literal / reg-name``: every IPv4address is also a reg-name.
_HEX: Final = "[0-9A-Fa-f]"
_PCT: Final = f"%{_HEX}{_HEX}"
_UNRESERVED_SUB: Final = r"A-Za-z0-9\-._~!$&'()*+,;="  # unreserved / sub-delims
_PCHAR: Final = f"(?:[{_UNRESERVED_SUB}:@]|{_PCT})"
_H16: Final = f"{_HEX}{{1,4}}"
_DEC_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4: Final = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_LS32: Final = f"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6: Final = (
    "(?:"
    + "|".join(
        (
            f"(?:{_H16}:){{6}}{_LS32}",
            f"::(?:{_H16}:){{5}}{_LS32}",
            f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
            f"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
            f"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
            f"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
            f"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
            f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
            f"(?:(?:{_H16}:){{0,6}}{_H16})?::",
        )
    )
    + ")"
)
_IP_LITERAL: Final = rf"\[(?:{_IPV6}|[vV]{_HEX}+\.[{_UNRESERVED_SUB}:]+)\]"
_AUTHORITY: Final = (
    f"(?:(?:[{_UNRESERVED_SUB}:]|{_PCT})*@)?"  # userinfo "@"
    f"(?:{_IP_LITERAL}|(?:[{_UNRESERVED_SUB}]|{_PCT})*)"  # host
    "(?::[0-9]*)?"  # ":" port
)
_SEGMENTS: Final = f"{_PCHAR}+(?:/{_PCHAR}*)*"  # segment-nz *( "/" segment )
_HIER_PART: Final = (
    f"(?://{_AUTHORITY}(?:/{_PCHAR}*)*"  # "//" authority path-abempty
    f"|/(?:{_SEGMENTS})?"  # path-absolute
    f"|{_SEGMENTS}"  # path-rootless
    ")?"  # path-empty
)
_QUERY: Final = f"(?:{_PCHAR}|[/?])*"  # query and fragment
URI_PATTERN: Final = rf"^[A-Za-z][A-Za-z0-9+\-.]*:{_HIER_PART}(?:\?{_QUERY})?(?:#{_QUERY})?\Z"
_FORMATS: Final[Mapping[str, str]] = {"date-time": DATE_TIME_PATTERN, "uri": URI_PATTERN}

#: The error class for each schema rule; a rule not listed gives FormatViolation.
RULE_ERRORS: Final[Mapping[str, type[RPCError]]] = {
    "type": RPCTypeConstraintViolationError,
    "required": RPCOccurrenceConstraintViolationError,
    "minItems": RPCOccurrenceConstraintViolationError,
    "maxItems": RPCOccurrenceConstraintViolationError,
    "minProperties": RPCOccurrenceConstraintViolationError,
    "maxProperties": RPCOccurrenceConstraintViolationError,
    "enum": RPCPropertyConstraintViolationError,
    "const": RPCPropertyConstraintViolationError,
    "pattern": RPCPropertyConstraintViolationError,
    "format": RPCPropertyConstraintViolationError,
    "multipleOf": RPCPropertyConstraintViolationError,
    "minimum": RPCPropertyConstraintViolationError,
    "maximum": RPCPropertyConstraintViolationError,
    "exclusiveMinimum": RPCPropertyConstraintViolationError,
    "exclusiveMaximum": RPCPropertyConstraintViolationError,
    "minLength": RPCPropertyConstraintViolationError,
    "maxLength": RPCPropertyConstraintViolationError,
    "additionalProperties": RPCFormatViolationError,
}

_MAX_NAME_IN_TEXT: Final = 40
# One step of a fastjsonschema path after "data": ".key" or "[index]".
_PATH_STEP: Final = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


# --- loading -----------------------------------------------------------------


def adapt_schema(schema: Mapping[str, Any]) -> Schema:
    """Return a copy of ``schema`` with the load-time adaptations applied.

    See :data:`LOAD_TIME_ADAPTATIONS`.  Values that are data rather than
    subschemas (``enum``, ``required``, ``default``, ``const``...) are copied
    untouched.

    Raises:
        ValueError: the schema has a ``$ref`` that does not start with ``#``.
    """
    adapted = _adapt(schema)
    assert isinstance(adapted, dict)
    return adapted


def _adapt(node: Any) -> Any:
    if isinstance(node, list):
        return [_adapt(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key in _ANNOTATIONS or (key in _ID_KEYWORDS and isinstance(value, str)):
            continue
        if key == "$ref":
            if not isinstance(value, str) or not value.startswith("#"):
                raise ValueError(f"only local $ref ('#/...') are supported, got {value!r}")
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {name: _adapt(sub) for name, sub in value.items()}
        elif key in _SCHEMA_VALUES:
            out[key] = _adapt(value)
        else:
            out[key] = value
    return out


def _builtin_folder(protocol: str, variant: str | None = None) -> Traversable:
    if protocol not in SUPPORTED_PROTOCOLS:
        raise ValueError(
            f"unknown protocol {protocol!r}; the built-in protocols are "
            f"{', '.join(SUPPORTED_PROTOCOLS)} (use create_validator for others)"
        )
    folder = protocol
    if variant is not None:
        known = SCHEMA_VARIANTS.get(protocol, ())
        if variant not in known:
            raise ValueError(
                f"{protocol} has no schema variant {variant!r}; "
                + (f"it has {', '.join(map(repr, known))}" if known else "it has none")
            )
        folder = f"{protocol}-{variant}"
    import importlib.resources  # costs ~10 ms cold, so only when a folder is needed

    try:
        packaged = importlib.resources.files("ocpp_trio").joinpath("_schemas", folder)
        if packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, OSError):  # pragma: no cover - broken install
        pass
    source_tree = Path(__file__).resolve().parents[2] / "schemas" / folder
    if source_tree.is_dir():
        return source_tree
    raise FileNotFoundError(
        f"the {folder} schemas are missing: neither ocpp_trio/_schemas/{folder} "
        f"nor {source_tree} exists"
    )


def _index_folder(folder: Traversable) -> tuple[dict[_Key, Traversable], frozenset[str]]:
    """Map each ``*.json`` of ``folder`` to its (action, direction); list SEND-only actions.

    A folder with any ``*Request.json`` uses the 2.x naming (``XRequest`` /
    ``XResponse``; a file with neither suffix is a SEND-only message); otherwise
    the 1.6 naming (``X`` / ``XResponse``).
    """
    names = sorted(f.name for f in folder.iterdir() if f.name.endswith(".json") and f.is_file())
    stems = [name[: -len(".json")] for name in names]
    two_x = any(stem.endswith("Request") for stem in stems)
    files: dict[_Key, Traversable] = {}
    send_only: set[str] = set()
    for name, stem in zip(names, stems, strict=True):
        key: _Key
        if stem.endswith("Response"):
            key = (stem[: -len("Response")], "response")
        elif two_x and stem.endswith("Request"):
            key = (stem[: -len("Request")], "request")
        else:
            key = (stem, "request")
            if two_x:
                send_only.add(stem)
        if key in files:
            raise ValueError(f"{folder}: two files give {key[0]} {key[1]}")
        files[key] = folder.joinpath(name)
    return files, frozenset(send_only)


def _read_json(file: Traversable) -> Schema:
    data = json.loads(file.read_text(encoding="utf-8-sig"))
    if not isinstance(data, dict):
        raise ValueError(f"{file}: a schema must be a JSON object")
    return data


def load_schemas(
    protocol: str, *, raw: bool = False, variant: str | None = None
) -> dict[tuple[str, str], Schema]:
    """Read every schema of a built-in protocol.

    Args:
        protocol: one of :data:`SUPPORTED_PROTOCOLS`.
        raw: return the OCA files exactly as parsed, without the load-time
            adaptations (for comparing with another validator).
        variant: another shipped set of the protocol (:data:`SCHEMA_VARIANTS`).

    Returns:
        ``{(action, direction): schema}`` with direction ``"request"`` or
        ``"response"``; a SEND-only message is filed as a request.

    Raises:
        ValueError: ``protocol`` is not a built-in protocol, or has no such variant.
    """
    files, _ = _index_folder(_builtin_folder(protocol, variant))
    if raw:
        return {key: _read_json(file) for key, file in files.items()}
    return {key: adapt_schema(_read_json(file)) for key, file in files.items()}


def send_only_actions(protocol: str) -> frozenset[str]:
    """The actions of a built-in protocol that travel as SEND (no response exists)."""
    return _index_folder(_builtin_folder(protocol))[1]


# --- the validator -------------------------------------------------------------


def _file_loader(file: Traversable) -> _Loader:
    return lambda: adapt_schema(_read_json(file))


def _value_loader(schema: Mapping[str, Any]) -> _Loader:
    adapted = adapt_schema(schema)  # refuse remote refs when the validator is built
    return lambda: adapted


@final
class Validator:
    """Validates OCPP payloads of one protocol against precompiled JSON schemas.

    Build one with :func:`get_validator` (built-in protocols, shared) or
    :func:`create_validator` (any schemas); the constructor is not public API.
    Each (action, direction) is compiled on first use and cached; validating
    never blocks on I/O and is safe from several threads.

    Attributes:
        protocol: the OCPP-J subprotocol name, e.g. ``"ocpp2.0.1"``.
        variant: the built-in schema variant it validates against
            (:data:`SCHEMA_VARIANTS`), or None for the default set (and for
            validators of :func:`create_validator`).
        actions: the actions that have a request schema.
        send_only_actions: the actions sent as SEND (request schema only).
        require_schema: whether a payload without a schema is an error.
        check_formats: whether ``format`` (date-time, uri) is asserted.
    """

    __slots__ = (
        "_adapted",
        "_compiled",
        "_known",
        "_lock",
        "_precompiling",
        "_sources",
        "actions",
        "check_formats",
        "protocol",
        "require_schema",
        "send_only_actions",
        "variant",
    )

    def __init__(
        self,
        protocol: str,
        sources: Mapping[_Key, _Loader],
        *,
        send_only: Iterable[str] = (),
        require_schema: bool = False,
        check_formats: bool = True,
        variant: str | None = None,
    ) -> None:
        self.protocol = protocol
        self.variant = variant
        self._sources: dict[_Key, _Loader] = dict(sources)
        self._known = frozenset(action for action, _ in self._sources)
        self.actions = frozenset(a for a, direction in self._sources if direction == "request")
        self.send_only_actions = frozenset(send_only)
        self.require_schema = require_schema
        self.check_formats = check_formats
        self._compiled: dict[_Key, _CompiledFn] = {}
        self._adapted: dict[_Key, Schema] = {}
        self._lock = threading.Lock()
        self._precompiling = threading.Lock()  # one precompile() at a time; the others wait

    def __repr__(self) -> str:
        shown = f"{self.protocol} ({self.variant})" if self.variant else self.protocol
        return f"<Validator {shown}: {len(self._sources)} schemas, {len(self._compiled)} compiled>"

    def has_schema(self, action: str, direction: Direction) -> bool:
        """Whether a schema exists for ``action`` in ``direction``."""
        return (action, direction) in self._sources

    def schema(self, action: str, direction: Direction) -> Schema:
        """Return the (adapted) schema of ``action`` in ``direction``.

        Read on first use and kept: the same object every time, not to be
        modified.

        Raises:
            KeyError: there is no such schema.
        """
        key = (action, direction)
        schema = self._adapted.get(key)
        if schema is None:
            schema = self._adapted[key] = self._sources[key]()
        return schema

    @property
    def compiled(self) -> bool:
        """Whether every schema is compiled already (nothing is left to compile on use)."""
        return len(self._compiled) == len(self._sources)

    def precompile(self) -> None:
        """Compile every schema now instead of on first use (a client's or server's start).

        Safe from several threads at once: one compiles, the others wait for
        it and find everything done (a station process starting many clients
        at once compiles each protocol once).
        """
        with self._precompiling:
            for key in self._sources:
                if key not in self._compiled:
                    self._compile(key)

    def validate(self, action: str, direction: Direction, payload: Any) -> None:
        """Check ``payload`` against the schema of ``action`` in ``direction``.

        The payload is never modified.  The first broken rule decides the
        error; its description names the field path and the rule, in at most
        255 characters, without echoing the payload.

        Raises:
            ValidationError: the payload breaks the schema; ``.error`` is the
                RPC error to answer with (see :data:`RULE_ERRORS`), ``.rule``
                the schema keyword that failed, ``.path`` (and ``.field``, as
                text) where in the payload it applies.  With
                ``require_schema``, a missing schema also raises: an action
                unknown to the protocol gives ``NotImplemented``, a known action
                without a schema in this direction gives ``NotSupported``.
            ValueError: ``direction`` is neither ``"request"`` nor ``"response"``.
        """
        key = (action, direction)
        validate = self._compiled.get(key)
        if validate is None:
            if key not in self._sources:
                self._no_schema(action, direction)
                return
            validate = self._compile(key)
        try:
            validate(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            # `from None`: the fastjsonschema exception holds the payload.
            raise ValidationError(
                _rpc_error(exc),
                protocol=self.protocol,
                action=action,
                direction=direction,
                path=_path_of(exc.name or "data"),
                rule=exc.rule,
            ) from None

    def _compile(self, key: _Key) -> _CompiledFn:
        with self._lock:
            validate = self._compiled.get(key)
            if validate is not None:
                return validate
            schema = self._sources[key]()
            try:
                validate = fastjsonschema.compile(
                    schema,
                    formats=_FORMATS if self.check_formats else {},
                    use_default=False,
                    use_formats=self.check_formats,
                    detailed_exceptions=True,
                )
            except fastjsonschema.JsonSchemaDefinitionException as exc:
                raise ValueError(
                    f"{self.protocol} {key[0]} {key[1]}: the schema cannot be compiled: {exc}"
                ) from exc
            self._compiled[key] = validate
            return validate

    def _no_schema(self, action: str, direction: str) -> None:
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be 'request' or 'response', got {direction!r}")
        if not self.require_schema:
            return
        shown = _short(action)
        error: RPCError
        if action in self._known:
            error = RPCNotSupportedError(
                truncate_description(f"{shown} has no {direction} schema in {self.protocol}")
            )
        else:
            error = RPCNotImplementedError(
                truncate_description(f"{shown} is not an action of {self.protocol}")
            )
        raise ValidationError(error, protocol=self.protocol, action=action, direction=direction)


# --- error descriptions --------------------------------------------------------


def _short(text: str) -> str:
    """``repr`` of a peer-supplied name, cut so it cannot fill the description."""
    if len(text) > _MAX_NAME_IN_TEXT:
        text = text[: _MAX_NAME_IN_TEXT - 3] + "..."
    return repr(text)


def _path_of(name: str) -> tuple[str | int, ...]:
    """fastjsonschema's ``data.meterValue[0].value`` as ``("meterValue", 0, "value")``."""
    rest = name[len("data") :] if name.startswith("data") else name
    return tuple(int(index) if index else key for key, index in _PATH_STEP.findall(rest))


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _rpc_error(exc: fastjsonschema.JsonSchemaValueException) -> RPCError:
    """Translate one fastjsonschema failure into the RPC error the peer gets."""
    rule: str | None = exc.rule
    name: str = exc.name or "data"
    path = name[len("data") :].lstrip(".") if name.startswith("data") else name
    where = path or "payload"
    definition = exc.definition if isinstance(exc.definition, Mapping) else {}
    limit = definition.get(rule) if rule else None
    value = exc.value

    if rule == "type" and not path:
        # OCPP-J: a payload that is not a JSON object does not conform to the PDU.
        return RPCFormatViolationError(f"payload must be a JSON {limit}, not {_json_type(value)}")

    text: str
    if rule == "type":
        wanted = " or ".join(limit) if isinstance(limit, list) else str(limit)
        text = f"{where} must be {wanted}, not {_json_type(value)}"
    elif rule == "required":
        missing = [p for p in limit or () if not isinstance(value, dict) or p not in value]
        prefix = f"{path}." if path else ""
        text = f"{prefix}{missing[0] if missing else '?'} is required"
    elif rule == "additionalProperties":
        declared = definition.get("properties") or {}
        extra = sorted(k for k in value if k not in declared) if isinstance(value, dict) else []
        shown = _short(str(extra[0])) if extra else "?"
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        text = f"{where} has unexpected property {shown}{more}"
    elif rule == "enum":
        text = f"{where} must be one of {limit}"
    elif rule == "const":
        text = f"{where} must be {limit!r}"
    elif rule == "maxLength":
        text = f"{where} must be at most {limit} characters"
    elif rule == "minLength":
        text = f"{where} must be at least {limit} characters"
    elif rule == "minimum":
        # draft-04 spells an exclusive bound as `minimum` plus `exclusiveMinimum: true`.
        op = ">" if definition.get("exclusiveMinimum") is True else ">="
        text = f"{where} must be {op} {_number(limit)}"
    elif rule == "maximum":
        op = "<" if definition.get("exclusiveMaximum") is True else "<="
        text = f"{where} must be {op} {_number(limit)}"
    elif rule == "exclusiveMinimum":
        text = f"{where} must be > {_number(_exclusive(definition, 'minimum', limit))}"
    elif rule == "exclusiveMaximum":
        text = f"{where} must be < {_number(_exclusive(definition, 'maximum', limit))}"
    elif rule == "multipleOf":
        text = f"{where} must be a multiple of {_number(limit)}"
    elif rule == "minItems":
        text = f"{where} must have at least {limit} items"
    elif rule == "maxItems":
        text = f"{where} must have at most {limit} items"
    elif rule == "minProperties":
        text = f"{where} must have at least {limit} properties"
    elif rule == "maxProperties":
        text = f"{where} must have at most {limit} properties"
    elif rule == "pattern":
        text = f"{where} must match {limit}"
    elif rule == "format":
        text = (
            f"{where} must be an RFC 3339 date-time"
            if limit == "date-time"
            else f"{where} must be a valid {limit}"
        )
    else:
        text = f"{where} breaks the schema rule {rule!r}" if rule else f"{where} breaks the schema"
    cls = RULE_ERRORS.get(rule or "", RPCFormatViolationError)
    return cls(truncate_description(text))


def _exclusive(definition: Mapping[str, Any], bound: str, limit: Any) -> Any:
    # draft-04: exclusiveMinimum is a boolean modifying `minimum`; draft-06+: a number.
    return definition.get(bound) if isinstance(limit, bool) else limit


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --- factories -----------------------------------------------------------------

_BUILTIN: dict[tuple[str, str | None], Validator] = {}
_BUILTIN_LOCK: Final = threading.Lock()


def get_validator(protocol: str, *, variant: str | None = None) -> Validator:
    """Return the shared validator of a built-in protocol (created once per process).

    Building it only lists the schema folder; each schema is read and compiled
    on first use.

    Args:
        protocol: one of :data:`SUPPORTED_PROTOCOLS`.
        variant: another shipped schema set of the protocol
            (:data:`SCHEMA_VARIANTS`): ``get_validator("ocpp1.6",
            variant="pre-errata")`` validates against the OCPP 1.6 files as
            first published.  Give it to a connection as
            ``strict_mode_validators=[...]`` (a server's option, ``AuthAccept``'s
            ``options`` for one station, or ``reconfigure``).

    Raises:
        ValueError: ``protocol`` is not in :data:`SUPPORTED_PROTOCOLS`, or has
            no such variant.
    """
    key = (protocol, variant)
    validator = _BUILTIN.get(key)
    if validator is not None:
        return validator
    with _BUILTIN_LOCK:
        validator = _BUILTIN.get(key)
        if validator is None:
            files, send_only = _index_folder(_builtin_folder(protocol, variant))
            sources = {k: _file_loader(file) for k, file in files.items()}
            validator = Validator(protocol, sources, send_only=send_only, variant=variant)
            _BUILTIN[key] = validator
        return validator


def create_validator(
    protocol: str,
    schemas: SchemaSource,
    *,
    require_schema: bool = False,
    check_formats: bool = True,
    send_only: Iterable[str] | None = None,
) -> Validator:
    """Build a validator for a custom or vendor protocol (or a patched built-in one).

    Args:
        protocol: the name the validator reports (any subprotocol name).
        schemas: one of

            * a folder path laid out like ``schemas/<protocol>/`` (1.6 naming
              ``X.json`` / ``XResponse.json``, or 2.x naming ``XRequest.json`` /
              ``XResponse.json`` when any file ends in ``Request.json``; then a
              file with neither suffix is a SEND-only message);
            * ``{(action, direction): schema}``;
            * ``{action: {"request": schema, "response": schema}}`` (either
              direction may be left out).

            Mappings are adapted (and checked for remote refs) now, compiled on
            first use; call :meth:`Validator.precompile` to surface a broken
            schema at once.
        require_schema: a payload whose action has no schema raises
            :class:`ValidationError` (``NotImplemented`` for an unknown action,
            ``NotSupported`` for a known action missing this direction) instead
            of passing.
        check_formats: assert ``format`` (RFC 3339 date-time, uri).
        send_only: the SEND-only actions; by default, from the file names for a
            folder, and for a mapping the actions with a request schema but no
            response schema.

    Raises:
        ValueError: a direction is neither ``"request"`` nor ``"response"``, a
            schema is not a JSON object, or it has a non-local ``$ref``.
        FileNotFoundError: the folder does not exist.
    """
    sources: dict[_Key, _Loader] = {}
    derived: frozenset[str]
    if isinstance(schemas, str | os.PathLike):
        folder = Path(schemas)
        if not folder.is_dir():
            raise FileNotFoundError(f"schema folder {folder} does not exist")
        files, derived = _index_folder(folder)
        sources = {key: _file_loader(file) for key, file in files.items()}
    else:
        for raw_key, value in schemas.items():
            pairs: Iterable[tuple[Any, Any]]
            if isinstance(raw_key, tuple):
                pairs = [(raw_key, value)]
            elif isinstance(value, Mapping):
                pairs = [((raw_key, d), s) for d, s in value.items()]
            else:
                raise ValueError(f"{raw_key!r}: expected {{'request': schema, 'response': schema}}")
            for (action, direction), schema in pairs:
                if direction not in _DIRECTIONS:
                    raise ValueError(
                        f"{action!r}: direction must be 'request' or 'response', got {direction!r}"
                    )
                if not isinstance(schema, Mapping):
                    raise ValueError(f"{action} {direction}: a schema must be a JSON object")
                key: _Key = (str(action), "request" if direction == "request" else "response")
                sources[key] = _value_loader(schema)
        derived = frozenset(
            a for a, d in sources if d == "request" and (a, "response") not in sources
        )
    return Validator(
        protocol,
        sources,
        send_only=derived if send_only is None else send_only,
        require_schema=require_schema,
        check_formats=check_formats,
    )
