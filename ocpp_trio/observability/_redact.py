"""The frame log's redaction: what of a payload may be written to a log, and what is masked.

Theory of operation.  The frame log parses its own copy of each frame and
hands the payload to :class:`Redactor`, which returns a masked copy (the
frame on the wire is never touched).  Four rules, applied together at every
depth of objects and arrays:

1. **Key names.**  The value of a key that is redacted (the configured names
   plus the ones that cannot be removed, compared without regard to case, and
   any key whose name contains ``password``, ``passwd``, ``passphrase``,
   ``secret`` or ``privatekey``) becomes :data:`MASK`.  An OCPP 2.x
   ``IdTokenType`` object under such a key (``{"idToken": ..., "type": ...}``)
   is redacted inside instead, so its ``type`` stays readable.
2. **Secrets carried as values.**  Configuration messages carry secrets as
   the *value* of an entry whose *name* says what it is: OCPP 1.6
   ``ChangeConfiguration`` and ``GetConfiguration.conf``'s
   ``configurationKey`` entries are ``{"key": name, "value": secret}``; OCPP
   2.0.1/2.1 ``SetVariables``, ``GetVariables`` results and ``NotifyReport``
   name the variable in ``variable.name`` and carry the value in
   ``attributeValue`` or ``variableAttribute[].value``.  When the name is a
   secret one (or password-like, as in rule 1), those values become
   :data:`MASK`.  The VPN ``key`` of 2.x ``SetNetworkProfile`` is masked too
   (``password``, ``apnPassword``, ``basicAuthPassword`` fall under rule 1).
3. **Private keys.**  A string holding PEM private-key material
   (``PRIVATE KEY-----``) is masked wherever it is.
4. **Free text.**  CALLERROR descriptions and the strings of error details are
   free text: a JSON object or array in them is redacted by the rules above,
   and ``name=value`` / ``name: value`` / ``"name": "value"`` for a redacted
   name has its value masked.

Objects nested deeper than :data:`MAX_DEPTH` are masked whole: redaction is
recursive and a peer chooses the depth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["MASK", "MAX_DEPTH", "PASSWORD_LIKE", "Redactor", "sketch"]

#: What replaces a redacted value.
MASK: Final = "***"

#: Objects and arrays nested deeper than this are masked whole.
MAX_DEPTH: Final = 32

#: A key or configuration name containing one of these (any case) is always secret.
PASSWORD_LIKE: Final = ("password", "passwd", "passphrase", "secret", "privatekey")

_PRIVATE_KEY: Final = "PRIVATE KEY-----"

#: A string literal (maybe cut short), a run of JSON punctuation and spaces, or anything else.
_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\s\[\]{},:]+|[^\s\[\]{},:"]+')
_NUMBER: Final = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS: Final = frozenset({"true", "false", "null"})
_KEY_LIMIT: Final = 40


class Redactor:
    """Masks the secrets of a decoded payload (see the module docstring).

    Args:
        keys: key names whose values are masked, any case.
        secret_names: configuration key / variable names whose values are
            masked, any case.
    """

    __slots__ = ("_text", "keys", "secret_names")

    def __init__(self, keys: Iterable[str], secret_names: Iterable[str]) -> None:
        self.keys = frozenset(k.lower() for k in keys)
        self.secret_names = frozenset(n.lower() for n in secret_names)
        names = sorted(self.keys | self.secret_names, key=len, reverse=True)
        alternatives = [re.escape(n) for n in names if n]
        alternatives.append(r"\w*(?:" + "|".join(PASSWORD_LIKE) + r")\w*")
        self._text = re.compile(
            r"(?i)(?<!\w)(" + "|".join(alternatives) + r")"
            r"(\"?'?\s*[:=]\s*)"
            r"(\"(?:[^\"\\]|\\.)*\"?|'[^']*'?|[^\s,;{}\[\]()]+)"
        )

    def is_key(self, key: str) -> bool:
        """Whether the value of ``key`` is masked wherever it appears."""
        lowered = key.lower()
        return lowered in self.keys or any(word in lowered for word in PASSWORD_LIKE)

    def is_secret_name(self, name: str) -> bool:
        """Whether a configuration key or variable named ``name`` holds a secret."""
        lowered = name.lower()
        return lowered in self.secret_names or any(word in lowered for word in PASSWORD_LIKE)

    def value(self, value: Any, free_text: bool = False, depth: int = 0) -> Any:
        """A masked copy of ``value``; ``free_text``: its strings are free text (rule 4)."""
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                return MASK
            return self._object(value, "", free_text, depth + 1)
        if isinstance(value, list):
            if depth >= MAX_DEPTH:
                return MASK
            return [self.value(item, free_text, depth + 1) for item in value]
        if isinstance(value, str):
            if _PRIVATE_KEY in value:
                return MASK
            if free_text:
                return self.text(value)
        return value

    def _object(self, obj: dict[str, Any], parent: str, free_text: bool, depth: int) -> Any:
        secret = self._holds_secret(obj)
        out: dict[str, Any] = {}
        for key, item in obj.items():
            if self.is_key(key) or (key == "key" and parent == "vpn"):
                if isinstance(item, dict) and "idToken" in item and depth < MAX_DEPTH:
                    out[key] = self._object(item, key, free_text, depth + 1)  # IdTokenType
                else:
                    out[key] = MASK
            elif secret and key in ("value", "attributeValue"):
                out[key] = MASK
            elif secret and key == "variableAttribute" and isinstance(item, list):
                out[key] = [self._attribute(a, free_text, depth + 1) for a in item]
            elif isinstance(item, dict):
                out[key] = (
                    MASK if depth >= MAX_DEPTH else self._object(item, key, free_text, depth + 1)
                )
            else:
                out[key] = self.value(item, free_text, depth)
        return out

    def _attribute(self, attribute: Any, free_text: bool, depth: int) -> Any:
        masked = self.value(attribute, free_text, depth)
        if isinstance(masked, dict) and "value" in masked:
            masked["value"] = MASK
        return masked

    def _holds_secret(self, obj: dict[str, Any]) -> bool:
        """Rule 2: ``obj`` is a configuration entry whose name is a secret one."""
        name = obj.get("key")
        if isinstance(name, str) and "value" in obj:
            return self.is_secret_name(name)  # OCPP 1.6 KeyValue
        variable = obj.get("variable")
        if isinstance(variable, dict):
            name = variable.get("name")
            if isinstance(name, str):
                return self.is_secret_name(name)  # OCPP 2.x VariableType
        return False

    def text(self, text: str) -> str:
        """Free text (rule 4): embedded JSON redacted, ``name=value`` masked for redacted names."""
        if _PRIVATE_KEY in text:
            return MASK
        stripped = text.strip()
        if stripped[:1] in ("{", "["):
            try:
                decoded = json.loads(stripped)
            except (ValueError, RecursionError):
                pass
            else:
                return json.dumps(self.value(decoded, True), ensure_ascii=False)
        return self._text.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2) + MASK


def sketch(text: str, limit: int) -> str:
    """The outline of a frame that is not OCPP-J: its syntax and key names, none of its values.

    Of the first ``limit`` characters of ``text``, JSON punctuation, numbers,
    ``true``/``false``/``null`` and the names of object keys (a string
    followed by ``:``, cut to 40 characters) are kept; every other string
    becomes ``"?"`` and every other word ``?``.  So a log shows why a frame
    was refused (``[2,"?","?",{"idTag":"?"`` is cut short) and never what it
    carried: a bad frame may hold a secret, and a frame that is not JSON at
    all has no keys that say where one is.  Characters that are not
    printable are escaped by the JSON encoding of the record.
    """
    head = text[:limit]
    parts: list[str] = []
    tokens = _TOKEN.findall(head)
    for i, token in enumerate(tokens):
        if token[0] == '"':
            after = tokens[i + 1] if i + 1 < len(tokens) else ""
            if after.lstrip().startswith(":") and token.endswith('"') and len(token) > 1:
                parts.append(token if len(token) <= _KEY_LIMIT else token[: _KEY_LIMIT - 1] + '?"')
            else:
                parts.append('"?"')
        elif _kept(token):
            parts.append(token)
        else:
            parts.append("?")
    if len(text) > limit:
        parts.append(f"...({len(text) - limit} more)")
    return "".join(parts)


def _kept(token: str) -> bool:
    """Punctuation and spaces, numbers and JSON's literals stay in an outline."""
    first = token[0]
    return (
        first.isspace()
        or first in "[]{},:"
        or token in _LITERALS
        or _NUMBER.fullmatch(token) is not None
    )
