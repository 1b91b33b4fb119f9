"""The CSMS side of the OCPP-J opening handshake: records, decisions, small helpers.

What the server decides from an upgrade request, in order (``stream.py``
runs it).  Nothing that a request fails here has touched another station:
the identity is claimed (and a duplicate evicted) only after every check.

1. The upgrade itself, as websockets' ``ServerProtocol.accept`` would check
   it (RFC 6455 §4.2.1): method ``GET`` (else 405), HTTP/1.1 (505),
   ``Connection: Upgrade`` and ``Upgrade: websocket`` (426), a
   ``Sec-WebSocket-Key`` of 16 base64 bytes and ``Sec-WebSocket-Version: 13``
   (400, the latter with the version we speak, §4.4), well-formed
   extension and subprotocol offers (400).
2. The station identity is the last non-empty segment of the request path,
   percent-decoded (OCPP-J 1.6 §3.1.1; OCPP 2.0.1 Part 4 §3.1.1: the
   station appends "/" and its percent-encoded identity to the endpoint
   URL, e.g. ``/ocppj/RDAM%20123``).  Decoding is strict: a ``%`` not
   followed by two hex digits, an empty identity, anything but printable
   ASCII (U+0020-U+007E: control characters and every non-ASCII character,
   however encoded), or more than 48 characters (2.0.1 Part 4 §3.1.1)
   answer HTTP 400.  OCPP 2.0.1 and 2.1 type the identity as an
   identifierString (Part 2 §2.1.3: ``a-z A-Z 0-9 * - _ = : + | @ .``,
   case-insensitive), OCPP 1.6 as a case-insensitive CiString of printable
   ASCII whose own example holds a space; printable ASCII takes both.  Two
   identities that differ only in ASCII case are the same station
   (:func:`station_key`): one claim, one entry in ``clients``, one
   cluster presence.  A ``:`` is let through (1.6 stations use it); with
   Basic Auth such an identity can never match its user-id, so it gets 401.
   The path before the identity (``endpoint``) and the query are kept for
   the auth callback.
3. The station's security profile: the server's ``security_profile``, or
   what ``profile_for(identity)`` returns for this station (sync or async,
   under the handshake's deadline; raising answers 503, returning no
   profile 500), so one listener serves stations of every profile, as a
   fleet being upgraded (OCPP 2.0.1 A05) needs.  Profiles 2 and 3 need TLS,
   else 403.  Then the credentials the profile asks for (OCPP 1.6 Security
   Whitepaper §2, OCPP 2.0.1 Part 2 A00): profiles 1 and 2 need HTTP Basic
   Auth whose user-id is the identity (A00.FR.204/303), else 401 with
   ``WWW-Authenticate: Basic realm="OCPP"`` (RFC 7617 §2); profile 3 needs a
   verified TLS client certificate that names the station (its subject CN,
   or one of its DNS subjectAltNames, is the identity: A00.FR.405 puts the
   station's serial number, which the identity is, in the CN), else 401.
   ``certificate_identity_check=False`` leaves that last check to ``auth``.
   A station whose profile is 3 never passes with a password alone, and
   one whose profile is 1 or 2 never without one.
4. ``auth``, then the subprotocol: the server's ``protocols`` in the
   server's order of preference among those offered (RFC 6455 §4.2.2 leaves
   the choice to the server).  None in common: OCPP-J's answer is 101
   without ``Sec-WebSocket-Protocol`` and a close; with
   ``refuse_unknown_subprotocol`` it is HTTP 400 instead, with a body that
   names the subprotocols we speak.

The records here never show a password or an ``Authorization`` header in
their repr.  The small trio helper at the end (``Gate``)
ends a handshake at once when trio-websocket's reader task ends.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import logging
import math
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeAlias, final, runtime_checkable
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit

import trio
from websockets.exceptions import (
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMethod,
    InvalidProtocol,
    InvalidUpgrade,
)
from websockets.headers import (
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
)

from .._rpc.options import ConnectionOptions
from .._websocket.transport import HandshakeInfo
from ..observability._names import RejectionCause, cause_for_status
from ..security import (
    BasicAuthError,
    CertificateInfo,
    SecurityProfile,
    certificate_info,
    parse_basic_auth,
)

log = logging.getLogger("ocpp_trio.server")

#: OCPP 2.0.1 SecurityCtrlr.Identity: an identity has at most 48 characters.
MAX_IDENTITY_LENGTH: Final = 48
#: At most this many query parameters are parsed; more answer HTTP 400.
MAX_QUERY_FIELDS: Final = 64
#: The challenge sent with every 401 of profiles 1 and 2 (RFC 7617 §2).
BASIC_CHALLENGE: Final = ("WWW-Authenticate", 'Basic realm="OCPP"')
#: Handshakes (accepted streams whose connection does not run yet) at once, by default.
DEFAULT_MAX_PENDING_HANDSHAKES: Final = 1024

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
_REDACTED: Final = "<redacted>"
_NO_QUERY: Final[Mapping[str, str]] = MappingProxyType({})
_SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})


class Refusal(Exception):
    """The handshake is refused with HTTP ``status``; ``reason`` is logged, never sent.

    ``body``, when not empty, is the text of the answer (meant for the peer);
    ``cause`` names the reason in the closed list of ``REJECTION_CAUSES``
    (by default, what ``status`` stands for).
    """

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        body: str = "",
        cause: RejectionCause | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = tuple(headers)
        self.body = body
        self.cause: RejectionCause = cause if cause is not None else cause_for_status(status)


@dataclass(frozen=True, slots=True)
class Target:
    """A request target split into what OCPP-J gives meaning to."""

    identity: str
    endpoint: str
    query: Mapping[str, str]


def check_server_options(
    *,
    protocols: Sequence[str],
    auth: object,
    profile: SecurityProfile,
    ssl_context: ssl.SSLContext | None,
    max_connections: float,
    max_pending_handshakes: float,
    handshake_timeout: float,
    duplicate_policy: str,
    certificate_identity_check: bool,
    profile_for: object = None,
) -> None:
    """Raise ValueError for server options that cannot work together."""
    if profile_for is not None and not callable(profile_for):
        raise TypeError(
            f"profile_for must be a function of the identity, got {type(profile_for).__name__}"
        )
    if isinstance(protocols, str) or not protocols:
        raise ValueError("protocols must be a non-empty list of subprotocol names")
    if any(not isinstance(p, str) or not p for p in protocols):
        raise ValueError("protocols must be non-empty strings")
    if profile.requires_tls and ssl_context is None:
        raise ValueError(f"security profile {int(profile)} requires an ssl_context")
    if profile.requires_password and auth is None:
        raise ValueError(
            f"security profile {int(profile)} requires an auth callback to check passwords"
        )
    if (
        profile.requires_client_cert
        and ssl_context is not None
        and ssl_context.verify_mode == ssl.CERT_NONE
    ):
        raise ValueError(
            "security profile 3 requires an ssl_context that verifies client certificates "
            "(verify_mode CERT_REQUIRED, as server_ssl_context(profile=3) builds)"
        )
    if (
        (profile.requires_client_cert or profile_for is not None)
        and not certificate_identity_check
        and auth is None
    ):
        raise ValueError(
            "certificate_identity_check=False leaves it to the auth callback to check that a "
            "certificate names its station: pass auth"
        )
    if not (
        max_connections == math.inf or (isinstance(max_connections, int) and max_connections >= 1)
    ):
        raise ValueError(
            f"max_connections must be an integer >= 1 or math.inf, got {max_connections!r}"
        )
    if not (
        max_pending_handshakes == math.inf
        or (isinstance(max_pending_handshakes, int) and max_pending_handshakes >= 1)
    ):
        raise ValueError(
            "max_pending_handshakes must be an integer >= 1 or math.inf, "
            f"got {max_pending_handshakes!r}"
        )
    if not handshake_timeout > 0:
        raise ValueError(f"handshake_timeout must be > 0 seconds, got {handshake_timeout!r}")
    if duplicate_policy not in ("replace", "reject"):
        raise ValueError(
            f"duplicate_policy must be 'replace' or 'reject', got {duplicate_policy!r}"
        )


class ServerEvents:
    """The server's event registry: ``"client"`` and ``"handshake_rejected"``."""

    NAMES: Final = frozenset({"client", "handshake_rejected"})

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[[Any], object]]] = {}

    def on(self, name: str, callback: Callable[[Any], object]) -> Callable[[Any], object]:
        """Add ``callback`` to event ``name``; returns it."""
        if name not in self.NAMES:
            raise ValueError(
                f"unknown server event {name!r}; known: {', '.join(sorted(self.NAMES))}"
            )
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._callbacks.setdefault(name, []).append(callback)
        return callback

    def off(self, name: str, callback: Callable[[Any], object] | None = None) -> None:
        """Remove ``callback`` from ``name`` (every callback of ``name`` when None)."""
        if callback is None:
            self._callbacks.pop(name, None)
        elif callback in self._callbacks.get(name, ()):
            self._callbacks[name].remove(callback)

    def emit(self, name: str, payload: object) -> None:
        """Call the callbacks of ``name``; one that raises is logged and skipped."""
        for callback in tuple(self._callbacks.get(name, ())):
            try:
                callback(payload)
            except Exception:
                log.exception("server callback %r for %r raised", callback, name)


def parse_target(target: str) -> Target:
    """Split a request target into identity, endpoint (path before it) and query.

    Raises:
        Refusal: 400, when there is no usable identity.
    """
    if target.startswith("/"):
        path, _, query = target.partition("?")
    else:  # absolute-form (RFC 9112 §3.2.2), as sent to a proxy
        try:
            parts = urlsplit(target)
        except ValueError:
            raise Refusal(400, "request target is not a path or URL") from None
        path, query = parts.path, parts.query
    segments = path.split("/")
    index = next((i for i in range(len(segments) - 1, -1, -1) if segments[i]), None)
    if index is None:
        raise Refusal(400, "no station identity in the request path")
    raw = segments[index]
    if _BAD_PERCENT.search(raw):
        raise Refusal(400, "malformed percent-encoding in the station identity")
    try:
        identity = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "the station identity is not valid UTF-8") from None
    if not identity:
        raise Refusal(400, "empty station identity")
    if len(identity) > MAX_IDENTITY_LENGTH:
        raise Refusal(
            400,
            f"station identity has {len(identity)} characters, "
            f"at most {MAX_IDENTITY_LENGTH} are allowed",
        )
    if not _PRINTABLE_ASCII.fullmatch(identity):
        # Control characters would reach logs; non-ASCII letters would make
        # look-alikes (fullwidth letters, a Kelvin sign for a K) of another
        # station's identity, which OCPP's character sets do not allow.
        raise Refusal(400, "the station identity is not printable ASCII")
    try:
        pairs = parse_qsl(
            query, keep_blank_values=True, errors="replace", max_num_fields=MAX_QUERY_FIELDS
        )
    except ValueError:
        raise Refusal(400, f"more than {MAX_QUERY_FIELDS} query parameters") from None
    endpoint = "/".join(segments[:index]) or "/"
    params = MappingProxyType(dict(pairs)) if pairs else _NO_QUERY
    return Target(identity=identity, endpoint=endpoint, query=params)


_ASCII_LOWER: Final = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def station_key(identity: str) -> str:
    """The key that identifies a station in the server's tables and the cluster.

    OCPP compares identities without regard to case (OCPP 2.0.1 Part 2
    §2.1.3 identifierString; OCPP 1.6 CiString): the key is the identity
    with its ASCII letters in lower case.  Identities the server accepts are
    printable ASCII (see :func:`parse_target`); any other text (e.g. an
    identity an application looks up) keeps its non-ASCII characters as
    they are, so no Unicode case mapping can make it another station's key.
    """
    return identity.lower() if identity.isascii() else identity.translate(_ASCII_LOWER)


@runtime_checkable
class RequestLine(Protocol):
    """The request line of an upgrade request, for front ends whose request tells it."""

    @property
    def method(self) -> str: ...

    @property
    def http_version(self) -> str: ...


def check_upgrade(
    headers: Mapping[str, str],
    *,
    method: str = "GET",
    http_version: str = "HTTP/1.1",
    extensions: bool = True,
) -> None:
    """Check an upgrade request as websockets' ``ServerProtocol.accept`` does.

    RFC 6455 §4.2.1 lists what a server reads of the opening handshake.  The
    checks, statuses and reasons are websockets' own (``process_request``),
    run here so that they come before any decision, and before the
    identity is claimed, without changing what a station sees.
    ``extensions``: whether ``Sec-WebSocket-Extensions`` is read at all
    (only when the server negotiates compression, as websockets does).

    Raises:
        Refusal: 405 (with ``Allow: GET``), 505, 426 (with ``Upgrade:
            websocket``) or 400; a ``Sec-WebSocket-Version`` other than 13
            is answered with the version we speak (RFC 6455 §4.4).
    """
    try:
        _check_upgrade(headers, method, http_version, extensions)
    except InvalidMethod as exc:
        raise Refusal(405, f"{_NOT_AN_UPGRADE}{exc}", (("Allow", "GET"),)) from None
    except InvalidProtocol as exc:
        raise Refusal(505, f"{_NOT_AN_UPGRADE}{exc}") from None
    except InvalidUpgrade as exc:
        raise Refusal(426, f"{_NOT_AN_UPGRADE}{exc}", (("Upgrade", "websocket"),)) from None
    except InvalidHeader as exc:
        extra = (("Sec-WebSocket-Version", "13"),) if exc.name == "Sec-WebSocket-Version" else ()
        raise Refusal(400, f"{_NOT_AN_UPGRADE}{exc}", extra) from None


_NOT_AN_UPGRADE: Final = "not a valid WebSocket upgrade: "


def _check_upgrade(
    headers: Mapping[str, str], method: str, http_version: str, extensions: bool
) -> None:
    # The steps of websockets' ServerProtocol.process_request, on our header
    # map (a repeated header is one value, its parts joined by ", ").
    if method != "GET":
        raise InvalidMethod(method)
    if http_version != "HTTP/1.1":
        raise InvalidProtocol(http_version)
    connection = parse_connection(headers["connection"]) if "connection" in headers else []
    if not any(option.lower() == "upgrade" for option in connection):
        raise InvalidUpgrade("Connection", ", ".join(connection) if connection else None)
    upgrade = parse_upgrade(headers["upgrade"]) if "upgrade" in headers else []
    # Case-insensitive, as websockets is: RFC 6455 §11.2 spells it "WebSocket".
    if not (len(upgrade) == 1 and upgrade[0].lower() == "websocket"):
        raise InvalidUpgrade("Upgrade", ", ".join(upgrade) if upgrade else None)
    key = headers.get("sec-websocket-key")
    if key is None:
        raise InvalidHeader("Sec-WebSocket-Key")
    try:
        raw_key = base64.b64decode(key.encode("latin-1"), validate=True)
    except (binascii.Error, ValueError):
        raw_key = b""
    if len(raw_key) != 16:
        raise InvalidHeaderValue("Sec-WebSocket-Key", key)
    version = headers.get("sec-websocket-version")
    if version is None:
        raise InvalidHeader("Sec-WebSocket-Version")
    if version != "13":
        raise InvalidHeaderValue("Sec-WebSocket-Version", version)
    if extensions and "sec-websocket-extensions" in headers:
        parse_extension(headers["sec-websocket-extensions"])
    if "sec-websocket-protocol" in headers:
        parse_subprotocol(headers["sec-websocket-protocol"])


def select_protocol(preference: Sequence[str], offered: Sequence[str]) -> str | None:
    """The first of ``preference`` (the server's order) that the station offered."""
    return next((p for p in preference if p in offered), None)


def header_map(raw: Sequence[tuple[bytes, bytes]]) -> Mapping[str, str]:
    """Request headers as a read-only mapping: lower-cased names, repeats joined by ``", "``."""
    out: dict[str, str] = {}
    for name, value in raw:
        key = bytes(name).decode("latin-1").lower()
        text = bytes(value).decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return MappingProxyType(out)


#: Request headers whose values are mostly the same for a whole fleet of
#: stations (one host, one model's user agent...).  A server keeps every
#: station's headers (``conn.handshake.request_headers``) for the life of
#: the connection: pairs of these, and redacted ones, are kept once for all.
_FLEET_HEADERS: Final = frozenset(
    {
        "host",
        "upgrade",
        "connection",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "user-agent",
        "origin",
        "accept-encoding",
        "cache-control",
        "pragma",
    }
)
#: Names of other common headers, kept once too (their values are the station's own).
_HEADER_NAMES: Final = {
    name: name for name in ("sec-websocket-key", "x-forwarded-for", "x-real-ip", "forwarded")
}
#: At most this many shared pairs; past it the table starts over.
_MAX_SHARED_PAIRS: Final = 1024
_shared_pairs: dict[tuple[str, str], tuple[str, str]] = {}


def _shared(name: str, value: str) -> tuple[str, str]:
    pair = (name, value)
    if name not in _FLEET_HEADERS and value is not _REDACTED:
        return (_HEADER_NAMES.get(name, name), value)
    shared = _shared_pairs.get(pair)
    if shared is None:
        if len(_shared_pairs) >= _MAX_SHARED_PAIRS:
            _shared_pairs.clear()
        shared = _shared_pairs[pair] = pair
    return shared


def redacted(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Headers as pairs, with credentials replaced (for records that have a repr).

    Pairs most stations send alike are shared between connections.
    """
    return tuple(_shared(k, _REDACTED if k in _SECRET_HEADERS else v) for k, v in headers.items())


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeRequest:
    """A station's upgrade request, as the server's ``auth`` callback sees it.

    The server has already checked what the security profile requires (the
    Basic Auth user-id is the identity for profiles 1-2, a verified client
    certificate for profile 3); the callback decides whether *this* station
    with *these* credentials may connect.

    Attributes:
        identity: the station identity, percent-decoded.
        endpoint: the request path before the identity, as sent (``"/ocpp"``).
        path: the whole request target, as sent.
        query: the query parameters (the last value of a repeated name wins).
        remote: ``(host, port)`` of the station, when it is a TCP peer.
        headers: the request headers, lower-cased names (not in the repr).
        protocols: the subprotocols the station offered, in its order.
        password: the Basic Auth password sent with user-id ``identity``
            (compare it with :func:`ocpp_trio.check_password`), else None.
            Never in the repr.
        certificate: the verified TLS client certificate, if any.
        security_profile: the security profile applied to this station
            (``profile_for``'s answer, else the server's), whose checks
            passed.
    """

    identity: str
    endpoint: str
    path: str
    query: Mapping[str, str]
    remote: tuple[str, int] | None
    headers: Mapping[str, str] = field(repr=False)
    protocols: tuple[str, ...]
    password: bytes | None = field(repr=False)
    certificate: CertificateInfo | None
    security_profile: SecurityProfile


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StationHandshake(HandshakeInfo):
    """``conn.handshake`` on the server side: the handshake facts plus what OCPP made of them.

    ``request_headers`` has credentials (``Authorization``, ``Cookie``)
    replaced by ``"<redacted>"``.

    Attributes:
        identity: the station identity.
        endpoint: the request path before the identity.
        query: the query parameters.
        offered_protocols: the subprotocols the station offered.
        certificate: the verified TLS client certificate, if any.
        security_profile: the security profile the station was admitted with.
    """

    identity: str = ""
    endpoint: str = "/"
    query: Mapping[str, str] = field(default_factory=dict)
    offered_protocols: tuple[str, ...] = ()
    certificate: CertificateInfo | None = None
    security_profile: SecurityProfile = SecurityProfile.NONE


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AuthAccept:
    """Returned by an ``auth`` callback: let the station in.

    Attributes:
        session: data for the application, visible as ``conn.session``.
        protocol: the subprotocol to use instead of the server's preference;
            it must be one the station offered.
        options: connection options for this station only, on top of the
            server's: ``{"validation_policy": ValidationPolicy(...)}``,
            ``{"strict_mode_validators": [get_validator("ocpp1.6",
            variant="pre-errata")]}``, ``{"call_timeout": 60}``...  An unknown
            name or a bad value refuses the station with 500 (logged: a bug
            in the application).
    """

    session: Mapping[str, Any] = field(default_factory=dict)
    protocol: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@final
@dataclass(frozen=True, slots=True)
class AuthReject:
    """Returned by an ``auth`` callback: refuse the station with an HTTP status.

    Attributes:
        status: 400-599; e.g. 401 (bad credentials, sent with the Basic
            challenge on profiles 1-2), 403, 404 (unknown station, as OCPP-J
            1.6 §3.2 suggests).
        headers: extra response headers.
        reason: why, for the server's log and the ``handshake_rejected``
            event (``"wrong password"``); never sent to the station.  Keep
            secrets out of it.
    """

    status: int = 401
    headers: Sequence[tuple[str, str]] = ()
    reason: str = ""


AuthResult: TypeAlias = AuthAccept | AuthReject | bool | None
#: ``auth(request)``: sync or async; True/None accept, False rejects with 401.
AuthCallback: TypeAlias = Callable[[HandshakeRequest], AuthResult | Awaitable[AuthResult]]


def certificate_names(certificate: CertificateInfo, identity: str) -> bool:
    """Whether a verified client certificate names the station ``identity``.

    OCPP 2.0.1 Part 2 A00.FR.405 (1.6 Security Whitepaper likewise) has the
    CSMS check that the subject's CN holds the station's serial number,
    which is its identity in the connection URL; a certificate issued with
    the identity as a DNS subjectAltName names it as well.  The comparison
    ignores ASCII case, as identities do (:func:`station_key`).  A subject
    with more than one CN names nobody: which one would count is anyone's
    guess.
    """
    key = station_key(identity)
    common_name = certificate.common_name
    if common_name is not None and station_key(common_name) == key:
        return True
    return any(kind == "DNS" and station_key(value) == key for kind, value in certificate.san)


def check_credentials(
    profile: SecurityProfile,
    identity: str,
    headers: Mapping[str, str],
    peercert: Mapping[str, object] | None,
    *,
    certificate_identity_check: bool = True,
) -> tuple[bytes | None, CertificateInfo | None]:
    """The password and client certificate a station presented, as ``profile`` needs them.

    The password is returned only when the Basic Auth user-id is the
    identity; the certificate only when TLS verified it.  On profile 3 the
    certificate must name the station (:func:`certificate_names`) unless
    ``certificate_identity_check`` is False: without that check any station
    of the CA could connect as any other, and evict it.

    Raises:
        Refusal: 401 when the profile's credential is missing or malformed,
            or when a profile 3 certificate names another station.
    """
    password: bytes | None = None
    value = headers.get("authorization")
    if value is None:
        if profile.requires_password:
            raise Refusal(401, "no Authorization header", (BASIC_CHALLENGE,))
    else:
        try:
            user, secret = parse_basic_auth(value)
        except BasicAuthError as exc:
            if profile.requires_password:
                raise Refusal(401, str(exc), (BASIC_CHALLENGE,)) from None
        else:
            if user == identity:
                password = secret
            elif profile.requires_password:
                raise Refusal(
                    401, "Basic Auth user-id is not the station identity", (BASIC_CHALLENGE,)
                )
    certificate: CertificateInfo | None = None
    if peercert:
        try:
            certificate = certificate_info(peercert)
        except ValueError:
            certificate = None
    if profile.requires_client_cert:
        if certificate is None:
            raise Refusal(401, "no verified TLS client certificate")
        if certificate_identity_check and not certificate_names(certificate, identity):
            raise Refusal(401, "the TLS client certificate does not name the station")
    return password, certificate


ProfileResult: TypeAlias = SecurityProfile | int | None
#: ``profile_for(identity)``: sync or async; the station's security profile,
#: or None for the server's ``security_profile``.
ProfileLookup: TypeAlias = Callable[[str], ProfileResult | Awaitable[ProfileResult]]


async def station_profile(
    lookup: ProfileLookup | None, default: SecurityProfile, identity: str
) -> SecurityProfile:
    """The security profile of station ``identity``: ``lookup(identity)``, else ``default``.

    Runs in the handshake's cancel scopes (deadline, peer gone, server
    closing): a lookup that awaits is cancelled with them.

    Raises:
        Refusal: 503 when the lookup raises (logged with its traceback,
            nothing of it sent: the profile store may be down for a while);
            500 when it returns something that is not a profile (logged: a
            bug in the application).
    """
    if lookup is None:
        return default
    result = await _call_app(lookup, identity, "profile_for", identity, 503)
    if result is None:
        return default
    if isinstance(result, int) and not isinstance(result, bool) and 0 <= result <= 3:
        return SecurityProfile(result)
    log.error(
        "profile_for returned %r for %r, not a security profile (0-3 or None); answering 500",
        result,
        identity,
    )
    raise Refusal(500, "profile_for returned no security profile")


async def station_credentials(
    identity: str,
    headers: Mapping[str, str],
    peercert: Mapping[str, object] | None,
    *,
    tls: bool,
    default: SecurityProfile,
    lookup: ProfileLookup | None,
    has_auth: bool,
    certificate_identity_check: bool = True,
) -> tuple[SecurityProfile, bytes | None, CertificateInfo | None]:
    """The station's profile, and its credentials checked against it.

    ``(profile, password, certificate)``: the profile from
    :func:`station_profile`; TLS when it asks for it; then
    :func:`check_credentials`.  ``has_auth``: whether an ``auth`` callback
    will check the password (profiles 1 and 2 cannot do without one).

    Raises:
        Refusal: as :func:`station_profile`; 403 when a profile 2 or 3
            station came without TLS; as :func:`check_credentials`; 500
            when a password would go unchecked (logged).
    """
    profile = default if lookup is None else await station_profile(lookup, default, identity)
    if profile.requires_tls and not tls:
        raise Refusal(403, f"security profile {int(profile)} requires TLS (wss://)")
    if profile.requires_password and not has_auth:
        log.error(
            "station %r has security profile %d, whose password only an auth callback can "
            "check, and the server has none; answering 500",
            identity,
            int(profile),
        )
        raise Refusal(500, f"security profile {int(profile)} with no auth callback")
    try:
        password, certificate = check_credentials(
            profile,
            identity,
            headers,
            peercert,
            certificate_identity_check=certificate_identity_check,
        )
    except Refusal as exc:
        if lookup is None:
            raise
        raise Refusal(
            exc.status, f"{exc.reason} (security profile {int(profile)})", exc.headers
        ) from None
    return profile, password, certificate


def no_common_subprotocol(offered: Sequence[str], protocols: Sequence[str]) -> Refusal:
    """The HTTP 400 of ``refuse_unknown_subprotocol``: no subprotocol in common.

    The body names what we speak (never a secret), so a person reading a
    test tool's log sees at once what to offer; it echoes nothing of the
    request.  The reason (logged) names what the station offered.
    """
    if offered:
        reason = f"none of the offered subprotocols ({', '.join(offered)}) is spoken here"
    else:
        reason = "no subprotocol offered (Sec-WebSocket-Protocol)"
    body = (
        "No OCPP subprotocol in common: offer one of these in Sec-WebSocket-Protocol: "
        f"{', '.join(protocols)}\n"
    )
    return Refusal(400, reason, body=body, cause="no_subprotocol")


async def run_auth(auth: AuthCallback, request: HandshakeRequest) -> object:
    """Call ``auth(request)`` (sync or async).

    Raises:
        Refusal: 500 when it raises; the exception is logged, never sent.
    """
    return await _call_app(auth, request, "auth callback", request.identity, 500)


async def _call_app(
    fn: Callable[[Any], object], arg: object, what: str, identity: str, status: int
) -> object:
    """``fn(arg)``, awaited if it returns an awaitable; what it raises becomes ``Refusal(status)``.

    The exception is logged with its traceback, never sent to the station.
    """
    try:
        result: object = fn(arg)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        log.error(
            "%s raised %s for %r; answering %d",
            what,
            type(exc).__name__,
            identity,
            status,
            exc_info=exc,
        )
        raise Refusal(status, f"{what} raised {type(exc).__name__}") from None
    return result


def auth_decision(
    result: object, offered: Sequence[str], protocol: str | None, profile: SecurityProfile
) -> tuple[Mapping[str, Any], str | None, Mapping[str, Any]]:
    """Interpret what an ``auth`` callback returned: ``(session, protocol, options)``.

    Raises:
        Refusal: the callback refused (its status), or returned something
            invalid (500, logged as an error: a bug in the application).
    """
    if isinstance(result, AuthReject) or result is False:
        status = result.status if isinstance(result, AuthReject) else 401
        extra = tuple(result.headers) if isinstance(result, AuthReject) else ()
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            log.error("auth callback returned HTTP status %r, not 400-599; answering 500", status)
            raise Refusal(500, "auth callback returned an invalid status")
        if status == 401 and profile.requires_password:
            extra = (*extra, BASIC_CHALLENGE)
        why = result.reason if isinstance(result, AuthReject) else ""
        raise Refusal(
            status,
            f"refused by the auth callback: {why}" if why else "refused by the auth callback",
            extra,
        )
    if isinstance(result, AuthAccept):
        if result.protocol is not None:
            if result.protocol not in offered:
                log.error("auth callback chose subprotocol %r, not offered", result.protocol)
                raise Refusal(500, "auth callback chose a subprotocol the station did not offer")
            protocol = result.protocol
        if result.options:
            try:
                ConnectionOptions().replace(**result.options)
            except (TypeError, ValueError) as exc:
                log.error("auth callback gave bad connection options: %s; answering 500", exc)
                raise Refusal(500, "auth callback gave bad connection options") from None
        return result.session, protocol, result.options
    if result is True or result is None:
        return {}, protocol, {}
    log.error("auth callback returned a %s; answering 500", type(result).__name__)
    raise Refusal(500, "auth callback returned an unexpected value")


class Gate:
    """Ends the opening handshake at once when trio-websocket's reader ends (peer gone)."""

    __slots__ = ("_current", "accepted", "gone")

    def __init__(self) -> None:
        self._current: trio.CancelScope | None = None
        self.accepted = False
        self.gone = False

    def scope(self) -> trio.CancelScope:
        """A new cancel scope for one phase; already cancelled if the peer is gone."""
        self._current = trio.CancelScope()
        if self.gone:
            self._current.cancel()
        return self._current

    def reader_done(self) -> None:
        """The reader ended: before ``101`` that cancels the current phase."""
        if not self.accepted:
            self.gone = True
            if self._current is not None:
                self._current.cancel()


def remote_of(stream: trio.abc.Stream) -> tuple[str, int] | None:
    """``(host, port)`` of the peer of a TCP (or TLS over TCP) stream, else None."""
    inner = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if not isinstance(inner, trio.SocketStream):
        return None
    try:
        addr = inner.socket.getpeername()
    except OSError:
        return None
    if isinstance(addr, tuple) and len(addr) >= 2:
        return (str(addr[0]), int(addr[1]))
    return None


def tls_reason(exc: BaseException) -> str:
    """What made a TLS handshake fail, from the ``ssl.SSLError`` behind ``exc``."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"{cause.reason}: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"{cause.reason or type(cause).__name__}"
        cause = cause.__cause__ or cause.__context__
    return f"connection lost ({type(exc).__name__})"


class UpgradeRequest(Protocol):
    """What the server reads of an upgrade request, whichever WebSocket backend parsed it."""

    @property
    def path(self) -> str: ...

    @property
    def headers(self) -> list[tuple[bytes, bytes]]: ...

    @property
    def proposed_subprotocols(self) -> tuple[str, ...]: ...

    # ``body``: the answer's text; bytes for trio-websocket's request and the
    # ASGI front end's, str for our own parser's (``ServerHandshake``).
    async def reject(
        self, status: int, /, *, extra_headers: Any = ..., body: Any = ...
    ) -> None: ...


def encode_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Header pairs as trio-websocket takes them."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeRejectedEvent:
    """The server event ``"handshake_rejected"``: a connection attempt that failed.

    Attributes:
        remote: ``(host, port)`` of the peer, when known.
        identity: the station identity, once parsed.
        status: the HTTP status sent, or None when nothing was sent (TLS
            failure, timeout, the peer went away, no subprotocol in common).
        reason: what went wrong (no secrets).
        cause: the reason in a closed list, for metrics and alerts (one of
            ``ocpp_trio.observability.REJECTION_CAUSES``: ``"tls"``,
            ``"not_websocket"``, ``"bad_request"``, ``"unauthorized"``,
            ``"forbidden"``, ``"not_found"``, ``"no_subprotocol"``,
            ``"duplicate"``, ``"capacity"``, ``"closing"``, ``"timeout"``,
            ``"peer_gone"``, ``"server_error"``, ``"other"``).
    """

    remote: tuple[str, int] | None
    identity: str | None
    status: int | None
    reason: str
    cause: RejectionCause = "other"
