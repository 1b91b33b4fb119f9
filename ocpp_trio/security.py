"""Security profiles, HTTP Basic Auth and TLS contexts for OCPP-J connections."""

# Theory of operation
# ===================
#
# OCPP defines three security profiles (OCPP 1.6 Security Whitepaper ed. 3, §2;
# OCPP 2.0.1 Part 2, A00 "Security Profiles"); we add profile 0 for plain
# WebSocket without authentication, which both versions still meet in the field:
#
#   profile  transport  station authenticates with    CSMS authenticates with
#   0        ws://      nothing                        nothing
#   1        ws://      HTTP Basic Auth (RFC 7617)     nothing
#   2        wss://     HTTP Basic Auth                TLS server certificate
#   3        wss://     TLS client certificate         TLS server certificate
#
# Requirement IDs below are those of the 1.6 Security Whitepaper; OCPP 2.0.1
# Part 2 A00 states the same requirements under A00.FR IDs of its own.
#
# Basic Auth (A00.FR.202-205 for profile 1, 301-304 for profile 2): the
# user-id is the station identity, the last path segment of the connection URL
# (OCPP-J 2.0.1 Part 4, the connection URL), and the password is the station's
# secret:
#
# * OCPP 1.6 keeps it in the AuthorizationKey configuration key: at least 16
#   bytes, at most 20, "hexadecimal represented" as up to 40 hex digits
#   (1.6 SW A00.FR.205).  Stations disagree on whether the raw bytes or the hex
#   text go on the wire, so every function here takes the password as bytes
#   (any octets, as RFC 7617 allows) or as str (sent as UTF-8), and
#   :func:`check_authorization_key` accepts either form of a 1.6 key.
# * OCPP 2.0.1 keeps it in the BasicAuthPassword variable, a passwordString of
#   16 to 40 characters, sent as UTF-8.
#
# Passwords are compared with :func:`hmac.compare_digest` and never appear in
# an exception text, a repr or a log line.
#
# TLS (A00.FR.305-324 for profile 2, A00.FR.409 onwards for profile 3):
#
# * TLS 1.2 or above only.  1.6 lets a legacy station fall back to TLS 1.0/1.1
#   with TLS_RSA_WITH_AES_128_CBC_SHA; 2.0.1 forbids it, and so do we (build
#   your own context if you must serve such a station).
# * The CSMS SHALL support TLS_ECDHE_ECDSA_WITH_AES_{128,256}_GCM_SHA{256,384}
#   and TLS_RSA_WITH_AES_{128,256}_GCM_SHA{256,384} (1.6 SW A00.FR.317;
#   2.0.1 A00.FR.318, and A00.FR.421 for profile 3).  We enable exactly those
#   four for TLS 1.2 plus their ECDHE-RSA twins: a server with an RSA key
#   would otherwise be left with the static-RSA suites, which have no forward
#   secrecy and which the spec itself calls the weaker choice (the note of
#   the station's requirement).  ECDHE suites come first; static RSA is the
#   last resort.  TLS 1.3 suites are left to OpenSSL (all of them are AEAD).
# * An ECDSA suite needs an ECDSA server certificate and an RSA suite an RSA
#   one ("the CSMS will have to provide 2 different certificates"): the
#   server context takes several chains, at most one per key type, and
#   OpenSSL picks the one that fits the suite it negotiates.
# * No TLS compression (A00.FR.320 and its profile 3 twin): OP_NO_COMPRESSION.
# * The station verifies the CSMS certificate chain and host name
#   (A00.FR.307/308, 411/412): check_hostname is on.
# * Profile 3: the CSMS verifies the chain of the station certificate
#   (A00.FR.403, CERT_REQUIRED) and that its subject names the station:
#   O = the operator (A00.FR.404), CN = the station's serial number
#   (A00.FR.405).  The server checks by default that the CN (or a DNS
#   subjectAltName) is the identity (``certificate_identity_check``);
#   :func:`check_station_certificate` is the stricter check, O included, for
#   an ``auth`` callback.
#
# This module is synchronous and knows nothing of trio: it builds
# ssl.SSLContext objects and parses header values; the transport uses them.

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import hmac
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Final, TypeAlias, final

from ocpp_trio._core.errors import OCPPError

__all__ = [
    "OCPP_TLS12_CIPHERS",
    "BasicAuthError",
    "CertificateInfo",
    "CertificateMismatch",
    "SecurityProfile",
    "basic_auth_header",
    "certificate_info",
    "check_authorization_key",
    "check_password",
    "check_station_certificate",
    "client_ssl_context",
    "parse_basic_auth",
    "server_ssl_context",
]

StrPath: TypeAlias = str | PathLike[str]
#: A private-key passphrase, as :meth:`ssl.SSLContext.load_cert_chain` takes it.
KeyPassword: TypeAlias = str | bytes | Callable[[], str | bytes]

#: The TLS 1.2 cipher suites we enable, in order of preference (OpenSSL names).
#: The four the OCPP specs require of a CSMS (1.6 SW A00.FR.317, 2.0.1
#: A00.FR.318/421) are
#: ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384,
#: AES128-GCM-SHA256 (TLS_RSA_WITH_AES_128_GCM_SHA256) and AES256-GCM-SHA384
#: (TLS_RSA_WITH_AES_256_GCM_SHA384); the ECDHE-RSA pair gives servers with an
#: RSA key forward secrecy.
OCPP_TLS12_CIPHERS: Final[tuple[str, ...]] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
)


class SecurityProfile(enum.IntEnum):
    """The OCPP security profile of a connection (the SecurityProfile variable).

    Profiles 1-3 are those of OCPP 1.6 Security Whitepaper §2 and OCPP 2.0.1
    Part 2 A00; ``NONE`` (0) is plain WebSocket without authentication.
    """

    NONE = 0
    """Plain ``ws://``, no authentication."""
    BASIC_AUTH = 1
    """Plain ``ws://``, the station sends HTTP Basic Auth (trusted networks only)."""
    TLS_BASIC_AUTH = 2
    """``wss://`` with a CSMS server certificate; the station sends HTTP Basic Auth."""
    TLS_CLIENT_CERT = 3
    """``wss://`` with certificates on both sides (mutual TLS), no password."""

    @property
    def requires_tls(self) -> bool:
        """Whether the connection must run over TLS (``wss://``): profiles 2 and 3."""
        return self >= SecurityProfile.TLS_BASIC_AUTH

    @property
    def requires_password(self) -> bool:
        """Whether the station must send HTTP Basic Auth: profiles 1 and 2."""
        return self in (SecurityProfile.BASIC_AUTH, SecurityProfile.TLS_BASIC_AUTH)

    @property
    def requires_client_cert(self) -> bool:
        """Whether the station must present a TLS client certificate: profile 3."""
        return self is SecurityProfile.TLS_CLIENT_CERT


class BasicAuthError(OCPPError):
    """An ``Authorization`` header that is not well-formed HTTP Basic Auth.

    The message says what is wrong with the header, never what it contains.
    """


class CertificateMismatch(OCPPError):
    """A verified station certificate that does not belong to the station.

    Raised by :func:`check_station_certificate`: the chain was valid, but the
    subject names another station or another operator (A00.FR.404/405).
    """


# --------------------------------------------------------------------------
# Passwords and HTTP Basic Auth (RFC 7617)


def _to_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def check_password(stored: bytes | str, given: bytes | str) -> bool:
    """Compare a station password in constant time.

    Args:
        stored: the password the CSMS holds for the station.
        given: the password the station sent (as :func:`parse_basic_auth`
            returns it).  A ``str`` on either side is compared as its UTF-8
            encoding.

    Returns:
        Whether the two are equal.  The time taken depends on the lengths
        only, never on where the two differ.
    """
    return hmac.compare_digest(_to_bytes(stored), _to_bytes(given))


def check_authorization_key(authorization_key: str, given: bytes | str) -> bool:
    """Check a password against an OCPP 1.6 AuthorizationKey.

    1.6 keeps the Basic Auth password as up to 40 hex digits for up to 20
    bytes (Security Whitepaper A00.FR.205); some stations send those raw bytes
    as the password, others the hex text itself.  This accepts either, each
    compared in constant time.

    Args:
        authorization_key: the key as configured on the station, hex digits.
        given: the password the station sent.

    Returns:
        Whether ``given`` is the key's raw bytes or its hex text (the latter
        compared case-insensitively).
    """
    given_bytes = _to_bytes(given)
    try:
        raw = bytes.fromhex(authorization_key)
    except ValueError:
        raw = None
    # Evaluate both comparisons so the timing does not say which form matched.
    as_text = hmac.compare_digest(authorization_key.lower().encode("utf-8"), given_bytes.lower())
    as_raw = raw is not None and hmac.compare_digest(raw, given_bytes)
    return as_text or as_raw


def basic_auth_header(identity: str, password: bytes | str) -> tuple[str, str]:
    """Build the HTTP Basic Auth header a station sends (profiles 1 and 2).

    Args:
        identity: the station identity, used as the user-id (A00.FR.204/303).
        password: the station password: ``bytes`` are sent as they are (for a
            1.6 AuthorizationKey sent in binary form), a ``str`` as UTF-8.

    Returns:
        ``("Authorization", "Basic <base64(identity:password)>")``.

    Raises:
        ValueError: ``identity`` contains ``":"``, which RFC 7617 §2 forbids in
            a user-id, or is empty.
    """
    if not identity:
        raise ValueError("identity must not be empty")
    if ":" in identity:
        raise ValueError(f"identity {identity!r} contains ':', which a Basic Auth user-id may not")
    credentials = identity.encode("utf-8") + b":" + _to_bytes(password)
    return ("Authorization", "Basic " + base64.b64encode(credentials).decode("ascii"))


def parse_basic_auth(header_value: str | bytes) -> tuple[str, bytes]:
    """Parse the value of an ``Authorization: Basic ...`` header.

    The scheme name is matched case-insensitively (RFC 9110 §11.1); the
    user-id ends at the first ``":"`` (RFC 7617 §2), so the password may
    contain colons and any octets.

    Args:
        header_value: the header value, as text or as the raw header bytes.

    Returns:
        ``(user_id, password)``: the user-id decoded as UTF-8, the password as
        the bytes sent (compare it with :func:`check_password`).

    Raises:
        BasicAuthError: the value is not ASCII, its scheme is not ``Basic``,
            the credentials are missing or not valid base64, they hold no
            ``":"``, or the user-id is not valid UTF-8.  The message never
            includes the header value.
    """
    if isinstance(header_value, bytes):
        try:
            text = header_value.decode("ascii")
        except UnicodeDecodeError:
            raise BasicAuthError("authorization header is not ASCII") from None
    else:
        text = header_value
    scheme, _, token = text.strip().partition(" ")
    if scheme.lower() != "basic":
        raise BasicAuthError("authorization scheme is not Basic")
    token = token.strip()
    if not token:
        raise BasicAuthError("Basic authorization header has no credentials")
    try:
        decoded = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise BasicAuthError("Basic credentials are not valid base64") from None
    user, colon, password = decoded.partition(b":")
    if not colon:
        raise BasicAuthError("Basic credentials have no ':' between user-id and password")
    try:
        user_id = user.decode("utf-8")
    except UnicodeDecodeError:
        raise BasicAuthError("Basic auth user-id is not valid UTF-8") from None
    return user_id, password


# --------------------------------------------------------------------------
# TLS contexts


def _harden(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.set_ciphers(":".join(OCPP_TLS12_CIPHERS))


#: One certificate chain of a server: a PEM file with the key and the chain,
#: or ``(certfile, keyfile)``.
CertChain: TypeAlias = StrPath | tuple[StrPath, StrPath | None]

# DER encodings of the public-key algorithms OpenSSL keeps one server
# certificate for each (its certificate "slots").
_KEY_TYPES: Final[Mapping[bytes, str]] = {
    bytes.fromhex("2a864886f70d010101"): "RSA",  # rsaEncryption
    bytes.fromhex("2a8648ce3d0201"): "ECDSA",  # id-ecPublicKey
    bytes.fromhex("2b6570"): "Ed25519",
    bytes.fromhex("2b6571"): "Ed448",
}
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, content start, content end)`` of the DER item at ``pos``."""
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise IndexError("truncated DER")
    return tag, pos, pos + length


def _certificate_key_type(certfile: StrPath) -> str | None:
    """The public-key algorithm of the first certificate in a PEM file, if known.

    Walks the DER just far enough to read the subjectPublicKeyInfo algorithm
    (RFC 5280 §4.1): Certificate -> TBSCertificate -> [version], serial,
    signature, issuer, validity, subject, subjectPublicKeyInfo.
    """
    with open(certfile, "rb") as f:
        match = _PEM_CERT.search(f.read())
    if match is None:
        return None
    try:
        der = base64.b64decode(b"".join(match.group(1).split()))
        _, cert, _ = _der_item(der, 0)
        _, pos, _ = _der_item(der, cert)  # TBSCertificate
        if der[pos] == 0xA0:  # [0] version
            pos = _der_item(der, pos)[2]
        for _ in range(5):  # serial, signature, issuer, validity, subject
            pos = _der_item(der, pos)[2]
        _, spki, _ = _der_item(der, pos)
        _, algorithm, _ = _der_item(der, spki)
        tag, oid_start, oid_end = _der_item(der, algorithm)
    except (IndexError, binascii.Error, ValueError):
        return None
    return _KEY_TYPES.get(der[oid_start:oid_end]) if tag == 0x06 else None


def _chains(
    certfile: StrPath | Sequence[CertChain] | None, keyfile: StrPath | None
) -> list[tuple[StrPath, StrPath | None]]:
    if certfile is None:
        if keyfile is not None:
            raise ValueError("keyfile given without certfile")
        return []
    if isinstance(certfile, str | PathLike):
        return [(certfile, keyfile)]
    if keyfile is not None:
        raise ValueError(
            "keyfile applies to a single certfile; give each chain of a list as "
            "(certfile, keyfile) or as one PEM file holding the key and the chain"
        )
    chains: list[tuple[StrPath, StrPath | None]] = []
    for chain in certfile:
        if isinstance(chain, str | PathLike):
            chains.append((chain, None))
        elif isinstance(chain, tuple) and len(chain) == 2:
            chains.append((chain[0], chain[1]))
        else:
            raise ValueError(
                f"a certificate chain is a PEM file or (certfile, keyfile), got {chain!r}"
            )
    if not chains:
        raise ValueError("certfile is an empty list: give at least one certificate chain")
    return chains


def server_ssl_context(
    certfile: StrPath | Sequence[CertChain] | None,
    keyfile: StrPath | None = None,
    *,
    cafile: StrPath | None = None,
    cadata: str | bytes | None = None,
    profile: SecurityProfile | int = SecurityProfile.TLS_BASIC_AUTH,
    password: KeyPassword | None = None,
) -> ssl.SSLContext:
    """Build the TLS context of a CSMS for security profile 2 or 3.

    TLS 1.2 is the minimum, TLS 1.2 suites are :data:`OCPP_TLS12_CIPHERS`
    (the server's order wins), compression is off.

    The four TLS 1.2 suites OCPP requires of a CSMS (2.0.1 A00.FR.318) are
    two ECDSA and two RSA ones, and a suite can only be served with a
    certificate of its key type: give both an ECDSA and an RSA chain
    (``certfile=[("csms-ec.pem", "csms-ec.key"), ("csms-rsa.pem",
    "csms-rsa.key")]``) and OpenSSL picks, per handshake, the one that fits
    the suite it negotiates.  With one chain only the suites of its key type
    are offered.

    Profile 3 requires and verifies a client certificate (``CERT_REQUIRED``)
    against ``cafile``/``cadata``.  Profile 2 given a CA *requests* one
    (``CERT_OPTIONAL``): a station that sends a certificate must send a valid
    one, a station that sends none goes on to Basic Auth.  That is the
    context of a server whose stations have profiles of their own
    (``OCPPServer(profile_for=...)``): the server then requires the
    certificate of each profile 3 station, and one listener serves every
    profile, as during a profile upgrade (A05).

    Args:
        certfile: the CSMS certificate chain: a PEM file with the
            certificate and its chain (and the key, unless ``keyfile``); or
            a list of chains, each such a file or ``(certfile, keyfile)``,
            at most one per key type (RSA, ECDSA, Ed25519, Ed448); or
            ``None`` to load it yourself afterwards (e.g. trustme's
            ``configure_cert``), a handshake fails until you do.
        keyfile: PEM file with the private key of a single ``certfile``.
        cafile: PEM file with the CA certificates that sign station certificates.
        cadata: the same in memory: PEM text (``str``) or DER (``bytes``).
        profile: ``TLS_BASIC_AUTH`` (2) or ``TLS_CLIENT_CERT`` (3), or the
            number.
        password: passphrase of the encrypted private keys (never logged).

    Returns:
        A new server-side :class:`ssl.SSLContext`.

    Raises:
        ValueError: ``profile`` is not a security profile or does not use
            TLS, or is 3 without a CA; ``certfile`` is an empty list, holds
            something that is not a chain, or two chains of one key type
            (OpenSSL would silently keep only the last); ``keyfile`` with a
            list.
        OSError, ssl.SSLError: a file cannot be read or a key does not match.
    """
    profile = SecurityProfile(profile)
    if not profile.requires_tls:
        raise ValueError(f"security profile {profile.value} ({profile.name}) does not use TLS")
    has_ca = cafile is not None or cadata is not None
    if profile.requires_client_cert and not has_ca:
        raise ValueError(
            "security profile 3 needs the CA that signs station certificates: pass cafile or cadata"
        )
    chains = _chains(certfile, keyfile)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    loaded: dict[str, StrPath] = {}
    for chain_file, chain_key in chains:
        ctx.load_cert_chain(chain_file, chain_key, password)
        if len(chains) > 1:
            kind = _certificate_key_type(chain_file)
            if kind is not None and kind in loaded:
                raise ValueError(
                    f"two {kind} certificate chains ({str(loaded[kind])!r} and "
                    f"{str(chain_file)!r}): a TLS server holds one per key type; give one "
                    "ECDSA and one RSA chain"
                )
            if kind is not None:
                loaded[kind] = chain_file
    if has_ca:
        ctx.load_verify_locations(cafile=cafile, cadata=cadata)
        ctx.verify_mode = ssl.CERT_REQUIRED if profile.requires_client_cert else ssl.CERT_OPTIONAL
    return ctx


def client_ssl_context(
    *,
    cafile: StrPath | None = None,
    cadata: str | bytes | None = None,
    certfile: StrPath | None = None,
    keyfile: StrPath | None = None,
    password: KeyPassword | None = None,
    profile: SecurityProfile | int = SecurityProfile.TLS_BASIC_AUTH,
) -> ssl.SSLContext:
    """Build the TLS context of a charging station for security profile 2 or 3.

    TLS 1.2 is the minimum, TLS 1.2 suites are :data:`OCPP_TLS12_CIPHERS`,
    compression is off; the CSMS certificate chain and host name are verified
    (A00.FR.307/308).  Without ``cafile`` or ``cadata`` the system's trusted
    CAs are used.

    Args:
        cafile: PEM file with the CA certificates that sign the CSMS certificate.
        cadata: the same in memory: PEM text (``str``) or DER (``bytes``).
        certfile: PEM file with the station certificate (and chain); required
            for profile 3, sent if given for profile 2.
        keyfile: PEM file with its private key, if not in ``certfile``.
        password: passphrase of an encrypted private key (never logged).
        profile: ``TLS_BASIC_AUTH`` (2) or ``TLS_CLIENT_CERT`` (3), or the
            number.

    Returns:
        A new client-side :class:`ssl.SSLContext`.

    Raises:
        ValueError: ``profile`` is not a security profile or does not use
            TLS, or is 3 without ``certfile``.
        OSError, ssl.SSLError: a file cannot be read or a key does not match.
    """
    profile = SecurityProfile(profile)
    if not profile.requires_tls:
        raise ValueError(f"security profile {profile.value} ({profile.name}) does not use TLS")
    if profile.requires_client_cert and certfile is None:
        raise ValueError(
            "security profile 3 needs the station's client certificate: "
            "pass certfile (and keyfile if the key is a separate file)"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    _harden(ctx)
    if cafile is None and cadata is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.load_verify_locations(cafile=cafile, cadata=cadata)
    if certfile is not None:
        ctx.load_cert_chain(certfile, keyfile, password)
    return ctx


# --------------------------------------------------------------------------
# Peer certificates

Pairs: TypeAlias = tuple[tuple[str, str], ...]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateInfo:
    """The facts of a verified peer certificate that OCPP checks.

    Attributes:
        subject: the subject's attributes as ``(name, value)`` pairs in
            certificate order, with the ssl module's names (``"commonName"``,
            ``"organizationName"``, ``"organizationalUnitName"``,
            ``"countryName"``, ...).  An attribute may occur more than once.
        issuer: the issuer's attributes, likewise.
        serial_number: the certificate serial number.
        san: the subjectAltName entries as ``(type, value)`` pairs, e.g.
            ``("DNS", "cp001.example")``, ``("IP Address", "127.0.0.1")``.
        not_before: start of validity (aware, UTC).
        not_after: end of validity (aware, UTC).
    """

    subject: Pairs
    issuer: Pairs
    serial_number: int
    san: Pairs
    not_before: datetime.datetime
    not_after: datetime.datetime

    def subject_values(self, name: str) -> tuple[str, ...]:
        """Return every value of subject attribute ``name``, in order."""
        return tuple(v for k, v in self.subject if k == name)

    def issuer_values(self, name: str) -> tuple[str, ...]:
        """Return every value of issuer attribute ``name``, in order."""
        return tuple(v for k, v in self.issuer if k == name)

    @property
    def common_name(self) -> str | None:
        """The subject CN; ``None`` if there is none or more than one."""
        return _single(self.subject_values("commonName"))

    @property
    def organization_name(self) -> str | None:
        """The subject O; ``None`` if there is none or more than one."""
        return _single(self.subject_values("organizationName"))


def _single(values: tuple[str, ...]) -> str | None:
    return values[0] if len(values) == 1 else None


def _flatten_name(value: object, field: str) -> Pairs:
    # getpeercert() gives a name as a tuple of RDNs, each a tuple of pairs.
    if not isinstance(value, tuple):
        raise ValueError(f"peer certificate field {field!r} is not a tuple of RDNs")
    pairs: list[tuple[str, str]] = []
    for rdn in value:
        if not isinstance(rdn, tuple):
            raise ValueError(f"peer certificate field {field!r} has a malformed RDN")
        pairs.extend(_pairs(rdn, field))
    return tuple(pairs)


def _pairs(value: object, field: str) -> Pairs:
    if not isinstance(value, tuple):
        raise ValueError(f"peer certificate field {field!r} is not a tuple of pairs")
    out: list[tuple[str, str]] = []
    for item in value:
        if not (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], str)
        ):
            raise ValueError(f"peer certificate field {field!r} has a malformed entry")
        out.append((item[0], item[1]))
    return tuple(out)


def _alt_names(value: object) -> Pairs:
    """subjectAltName entries; a ``DirName`` (a whole name) as ``"key=value,..."``."""
    if not isinstance(value, tuple):
        raise ValueError("peer certificate field 'subjectAltName' is not a tuple of pairs")
    out: list[tuple[str, str]] = []
    for item in value:
        if isinstance(item, tuple) and len(item) == 2 and item[0] == "DirName":
            name = _flatten_name(item[1], "subjectAltName")
            out.append(("DirName", ",".join(f"{key}={text}" for key, text in name)))
        else:
            out.extend(_pairs((item,), "subjectAltName"))
    return tuple(out)


def _time(peercert: Mapping[str, object], field: str) -> datetime.datetime:
    value = peercert.get(field)
    if not isinstance(value, str):
        raise ValueError(f"peer certificate has no {field!r} time")
    seconds = ssl.cert_time_to_seconds(value)
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def certificate_info(peercert: Mapping[str, object] | None) -> CertificateInfo:
    """Parse the dict form of a verified peer certificate.

    Takes what ``ssl.SSLObject.getpeercert()`` (or ``SSLSocket.getpeercert()``)
    returns after the handshake.  The ssl module fills that dict only for a
    certificate it verified, i.e. when ``verify_mode`` is ``CERT_REQUIRED``
    or ``CERT_OPTIONAL``; under ``CERT_NONE`` it is empty.  (The binary form
    would need an X.509 parser, which the standard library does not offer.)

    Args:
        peercert: the result of ``getpeercert()``.

    Returns:
        The parsed :class:`CertificateInfo`.

    Raises:
        ValueError: ``peercert`` is ``None`` (the peer sent no certificate),
            empty (it was not verified), or malformed.
    """
    if peercert is None:
        raise ValueError("the peer presented no certificate")
    if not peercert:
        raise ValueError(
            "the peer certificate was not verified (getpeercert() is empty under CERT_NONE)"
        )
    serial = peercert.get("serialNumber")
    if not isinstance(serial, str):
        raise ValueError("peer certificate has no serialNumber")
    try:
        serial_number = int(serial, 16)
    except ValueError:
        raise ValueError(f"peer certificate serialNumber {serial!r} is not hex") from None
    return CertificateInfo(
        subject=_flatten_name(peercert.get("subject", ()), "subject"),
        issuer=_flatten_name(peercert.get("issuer", ()), "issuer"),
        serial_number=serial_number,
        san=_alt_names(peercert.get("subjectAltName", ())),
        not_before=_time(peercert, "notBefore"),
        not_after=_time(peercert, "notAfter"),
    )


def check_station_certificate(
    info: CertificateInfo, identity: str, *, organization: str | None = None
) -> None:
    """Check that a verified client certificate belongs to the station (profile 3).

    OCPP asks the CSMS to check, after the chain (A00.FR.403), that the O
    (organizationName) RDN of the subject contains the operator's name
    (A00.FR.404) and that the CN (commonName) RDN contains the station's
    unique serial number (A00.FR.405); OCPP 2.0.1 Part 2 "Certificate
    Properties" asks the same of a Charging Station certificate.  We take the
    serial number to be the station identity of the connection URL and read
    "contains" strictly: the subject must hold exactly one CN, equal to
    ``identity``, and, when ``organization`` is given, exactly one O equal to
    it.  A substring match would let the certificate of ``CP0012`` pass
    for ``CP001``.  This is stricter than the server's own check (see
    ``OCPPServer``'s ``certificate_identity_check``), which ignores ASCII
    case as identities do and also takes a DNS subjectAltName.

    Args:
        info: the station certificate, from :func:`certificate_info`.
        identity: the station identity the connection claims.
        organization: the operator name to require in O, or ``None`` to skip
            that check.

    Raises:
        CertificateMismatch: the CN or O is absent, repeated or different.
    """
    names = info.subject_values("commonName")
    if len(names) != 1:
        raise CertificateMismatch(
            f"station certificate has {len(names)} commonName values; expected exactly one, "
            f"{identity!r}"
        )
    if names[0] != identity:
        raise CertificateMismatch(
            f"station certificate commonName {names[0]!r} is not the station identity {identity!r}"
        )
    if organization is None:
        return
    orgs = info.subject_values("organizationName")
    if len(orgs) != 1:
        raise CertificateMismatch(
            f"station certificate has {len(orgs)} organizationName values; expected exactly "
            f"one, {organization!r}"
        )
    if orgs[0] != organization:
        raise CertificateMismatch(
            f"station certificate organizationName {orgs[0]!r} is not {organization!r}"
        )
