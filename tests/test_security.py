"""Tests for ocpp_trio.security: Basic Auth, TLS contexts over real loopback TLS."""

from __future__ import annotations

import base64
import datetime
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trustme
from cryptography import x509

from ocpp_trio._core.errors import OCPPError
from ocpp_trio.security import (
    OCPP_TLS12_CIPHERS,
    BasicAuthError,
    CertificateInfo,
    CertificateMismatch,
    SecurityProfile,
    basic_auth_header,
    certificate_info,
    check_authorization_key,
    check_password,
    check_station_certificate,
    client_ssl_context,
    parse_basic_auth,
    server_ssl_context,
)

TIMEOUT = 10.0
IDENTITY = "CP001"
OPERATOR = "Example CSO"
SECRET = "correct-horse-battery-staple"

# The four suites OCPP requires of a CSMS (1.6 SW A00.FR.317, 2.0.1 A00.FR.318/421),
# by their OpenSSL names.
REQUIRED_SUITES = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
)


# ---------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class PKI:
    ca_file: Path
    server_file: Path  # key + chain, ECDSA, for 127.0.0.1 and localhost
    rsa_server_file: Path  # key + chain, RSA
    client_file: Path  # station CP001, signed by the CA
    foreign_client_file: Path  # station CP001, signed by another CA
    foreign_ca_pem: str
    client_cert: x509.Certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    foreign_ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    rsa_server = ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.RSA)
    client = ca.issue_cert(IDENTITY, common_name=IDENTITY, organization_name=OPERATOR)
    foreign_client = foreign_ca.issue_cert(
        IDENTITY, common_name=IDENTITY, organization_name=OPERATOR
    )
    files = {
        "ca_file": ca.cert_pem,
        "server_file": server.private_key_and_cert_chain_pem,
        "rsa_server_file": rsa_server.private_key_and_cert_chain_pem,
        "client_file": client.private_key_and_cert_chain_pem,
        "foreign_client_file": foreign_client.private_key_and_cert_chain_pem,
    }
    paths: dict[str, Path] = {}
    for name, blob in files.items():
        path = directory / f"{name}.pem"
        blob.write_to_path(str(path))
        paths[name] = path
    return PKI(
        **paths,
        foreign_ca_pem=foreign_ca.cert_pem.bytes().decode("ascii"),
        client_cert=x509.load_pem_x509_certificate(client.cert_chain_pems[0].bytes()),
    )


def profile2_server(pki: PKI) -> ssl.SSLContext:
    return server_ssl_context(pki.server_file)


def profile3_server(pki: PKI) -> ssl.SSLContext:
    return server_ssl_context(
        pki.server_file, cafile=pki.ca_file, profile=SecurityProfile.TLS_CLIENT_CERT
    )


def profile3_client(pki: PKI, certfile: Path | None = None) -> ssl.SSLContext:
    return client_ssl_context(
        cafile=pki.ca_file,
        certfile=certfile or pki.client_file,
        profile=SecurityProfile.TLS_CLIENT_CERT,
    )


def tls12_only(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# ---------------------------------------------------------------- loopback TLS


@dataclass
class Exchange:
    """What each side of one loopback TLS connection saw."""

    server_error: BaseException | None = None
    client_error: BaseException | None = None
    client_failed_in_handshake: bool = False
    server_peercert: Mapping[str, object] | None = None
    server_received: bytes = b""
    client_received: bytes = b""
    version: str | None = None
    cipher: str | None = None


async def exchange(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    *,
    server_hostname: str = "127.0.0.1",
) -> Exchange:
    """Handshake over loopback, then send one message each way, then close.

    The client reads after its handshake: under TLS 1.3 a server that rejects
    the client certificate does so only after the client's handshake is done.
    """
    result = Exchange()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def server() -> None:
        stream = trio.SSLStream(await listeners[0].accept(), server_ctx, server_side=True)
        try:
            await stream.do_handshake()
            result.server_peercert = stream.getpeercert()
            await stream.send_all(b"ok")
            result.server_received = bytes(await stream.receive_some(16))
        except trio.BrokenResourceError as exc:
            result.server_error = exc
        finally:
            await stream.aclose()

    async def client() -> None:
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        stream = trio.SSLStream(tcp, client_ctx, server_hostname=server_hostname)
        try:
            try:
                await stream.do_handshake()
            except trio.BrokenResourceError:
                result.client_failed_in_handshake = True
                raise
            result.version = stream.version()
            cipher = stream.cipher()
            result.cipher = cipher[0] if cipher else None
            result.client_received = bytes(await stream.receive_some(16))
            await stream.send_all(b"hi")
        except trio.BrokenResourceError as exc:
            result.client_error = exc
        finally:
            await stream.aclose()

    try:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server)
                nursery.start_soon(client)
    finally:
        for listener in listeners:
            await listener.aclose()
    return result


def assert_ok(result: Exchange) -> None:
    assert result.server_error is None
    assert result.client_error is None
    assert result.client_received == b"ok"
    assert result.server_received == b"hi"


def ssl_cause(exc: BaseException | None) -> ssl.SSLError:
    """The ssl.SSLError trio's BrokenResourceError wraps."""
    assert isinstance(exc, trio.BrokenResourceError)
    assert isinstance(exc.__cause__, ssl.SSLError)
    return exc.__cause__


# ---------------------------------------------------------------- profiles


@pytest.mark.parametrize(
    ("profile", "tls", "password", "client_cert"),
    [
        (SecurityProfile.NONE, False, False, False),
        (SecurityProfile.BASIC_AUTH, False, True, False),
        (SecurityProfile.TLS_BASIC_AUTH, True, True, False),
        (SecurityProfile.TLS_CLIENT_CERT, True, False, True),
    ],
)
def test_profile_properties(
    profile: SecurityProfile, tls: bool, password: bool, client_cert: bool
) -> None:
    assert profile.requires_tls is tls
    assert profile.requires_password is password
    assert profile.requires_client_cert is client_cert
    assert SecurityProfile(int(profile)) is profile


# ---------------------------------------------------------------- passwords


def test_check_password() -> None:
    assert check_password(SECRET, SECRET)
    assert check_password(SECRET, SECRET.encode())
    assert check_password(SECRET.encode(), SECRET)
    assert check_password("pässwörd", "pässwörd".encode())
    assert check_password(b"\xff\x00\x01", b"\xff\x00\x01")
    assert not check_password(SECRET, SECRET + "x")
    assert not check_password(SECRET, SECRET[:-1])
    assert not check_password(SECRET, "")
    assert not check_password(SECRET, SECRET.upper())
    assert not check_password("pässwörd", "pässwörd".encode("latin-1"))


def test_check_authorization_key_accepts_raw_and_hex_forms() -> None:
    raw = bytes(range(1, 21))
    key = raw.hex()
    assert len(key) == 40
    assert check_authorization_key(key, raw)
    assert check_authorization_key(key, key)
    assert check_authorization_key(key, key.upper().encode())
    assert not check_authorization_key(key, raw[:-1])
    assert not check_authorization_key(key, key[:-1])
    assert not check_authorization_key("not hex", b"\x00")
    assert check_authorization_key("not hex", "not hex")


def test_basic_auth_header_rfc7617_example() -> None:
    assert basic_auth_header("Aladdin", "open sesame") == (
        "Authorization",
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
    )


@pytest.mark.parametrize(
    "password",
    [
        SECRET,
        "pass:with:colons",
        "pässwörd-ünïcode",
        bytes(range(1, 21)),  # a 1.6 AuthorizationKey in binary form
        b"\xff\xfe:\x00\x80 not utf-8",
        b"",
    ],
)
def test_basic_auth_roundtrip(password: bytes | str) -> None:
    name, value = basic_auth_header(IDENTITY, password)
    assert name == "Authorization"
    user, given = parse_basic_auth(value)
    assert user == IDENTITY
    assert check_password(password, given)
    assert parse_basic_auth(value.encode("ascii")) == (user, given)


def test_basic_auth_header_non_ascii_identity() -> None:
    _, value = basic_auth_header("Station-É", SECRET)
    assert parse_basic_auth(value) == ("Station-É", SECRET.encode())


@pytest.mark.parametrize("identity", ["", "CP:001"])
def test_basic_auth_header_rejects_bad_identity(identity: str) -> None:
    with pytest.raises(ValueError, match="identity"):
        basic_auth_header(identity, SECRET)


@pytest.mark.parametrize(
    "value", ["basic Q1AwMDE6cHc=", "BASIC Q1AwMDE6cHc=", "  Basic   Q1AwMDE6cHc=  "]
)
def test_parse_basic_auth_is_lenient_about_case_and_spaces(value: str) -> None:
    assert parse_basic_auth(value) == ("CP001", b"pw")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"Bearer {SECRET}", "scheme is not Basic"),
        (_b64(f"CP001:{SECRET}".encode()), "scheme is not Basic"),
        ("", "scheme is not Basic"),
        ("Basic", "no credentials"),
        ("Basic    ", "no credentials"),
        (f"Basic {SECRET}!", "not valid base64"),
        (f"Basic {_b64(f'CP001:{SECRET}'.encode())[:-1]}", "not valid base64"),
        (f"Basic {_b64(SECRET.encode())}", "no ':'"),
        ("Basic " + _b64(b"CP\xff001:" + SECRET.encode()), "not valid UTF-8"),
        (f"Basic {_b64(f'CP001:{SECRET}'.encode())}".encode() + b"\xff", "not ASCII"),
    ],
)
def test_parse_basic_auth_errors_do_not_leak(value: str | bytes, message: str) -> None:
    with pytest.raises(BasicAuthError, match=message) as info:
        parse_basic_auth(value)
    exc = info.value
    assert isinstance(exc, OCPPError)
    assert exc.__cause__ is None
    assert exc.__suppress_context__ or exc.__context__ is None
    token = _b64(f"CP001:{SECRET}".encode())
    for text in (str(exc), repr(exc)):
        assert SECRET not in text
        assert SECRET[:8] not in text
        assert token[:8] not in text


# ---------------------------------------------------------------- contexts


def test_contexts_refuse_profiles_without_tls(pki: PKI) -> None:
    for profile in (SecurityProfile.NONE, SecurityProfile.BASIC_AUTH):
        with pytest.raises(ValueError, match="does not use TLS"):
            server_ssl_context(pki.server_file, profile=profile)
        with pytest.raises(ValueError, match="does not use TLS"):
            client_ssl_context(cafile=pki.ca_file, profile=profile)


def test_profile3_needs_ca_on_server_and_cert_on_client(pki: PKI) -> None:
    with pytest.raises(ValueError, match="cafile or cadata"):
        server_ssl_context(pki.server_file, profile=SecurityProfile.TLS_CLIENT_CERT)
    with pytest.raises(ValueError, match="certfile"):
        client_ssl_context(cafile=pki.ca_file, profile=SecurityProfile.TLS_CLIENT_CERT)


def test_context_settings(pki: PKI) -> None:
    server2 = profile2_server(pki)
    server2_ca = server_ssl_context(pki.server_file, cafile=pki.ca_file)
    server3 = profile3_server(pki)
    client2 = client_ssl_context(cafile=pki.ca_file)
    client3 = profile3_client(pki)
    assert server2.verify_mode == ssl.CERT_NONE
    assert server2_ca.verify_mode == ssl.CERT_OPTIONAL
    assert server3.verify_mode == ssl.CERT_REQUIRED
    assert server3.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    for ctx in (client2, client3):
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert ctx.check_hostname
    for ctx in (server2, server2_ca, server3, client2, client3):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.options & ssl.OP_NO_COMPRESSION
        tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
        assert tls12 == list(OCPP_TLS12_CIPHERS)
        assert set(REQUIRED_SUITES) <= set(tls12)
        # TLS 1.3 suites are left as OpenSSL has them.
        assert any(c["protocol"] == "TLSv1.3" for c in ctx.get_ciphers())


def test_client_context_with_system_cas() -> None:
    ctx = client_ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname


def test_server_context_with_cadata_and_no_certfile(pki: PKI) -> None:
    ctx = server_ssl_context(
        None, cadata=pki.foreign_ca_pem, profile=SecurityProfile.TLS_CLIENT_CERT
    )
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1


# ---------------------------------------------------------------- loopback TLS


async def test_profile2_handshake(pki: PKI) -> None:
    result = await exchange(profile2_server(pki), client_ssl_context(cafile=pki.ca_file))
    assert_ok(result)
    assert result.version == "TLSv1.3"
    assert result.server_peercert is None


async def test_profile2_over_tls12_uses_an_ocpp_suite(pki: PKI) -> None:
    client = tls12_only(client_ssl_context(cafile=pki.ca_file))
    result = await exchange(profile2_server(pki), client)
    assert_ok(result)
    assert result.version == "TLSv1.2"
    assert result.cipher == "ECDHE-ECDSA-AES128-GCM-SHA256"


async def test_rsa_server_key_gets_forward_secrecy(pki: PKI) -> None:
    client = tls12_only(client_ssl_context(cafile=pki.ca_file))
    result = await exchange(server_ssl_context(pki.rsa_server_file), client)
    assert_ok(result)
    assert result.cipher == "ECDHE-RSA-AES128-GCM-SHA256"


async def test_static_rsa_suite_required_by_ocpp_is_served(pki: PKI) -> None:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(pki.ca_file)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers("AES256-GCM-SHA384")
    result = await exchange(server_ssl_context(pki.rsa_server_file), client)
    assert_ok(result)
    assert result.cipher == "AES256-GCM-SHA384"


@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
async def test_profile3_handshake_and_certificate_info(pki: PKI, tls12: bool) -> None:
    client = profile3_client(pki)
    if tls12:
        tls12_only(client)
    result = await exchange(profile3_server(pki), client)
    assert_ok(result)
    assert isinstance(result.server_peercert, dict)
    info = certificate_info(result.server_peercert)
    expected = pki.client_cert
    assert info.common_name == IDENTITY
    assert info.organization_name == OPERATOR
    assert info.subject_values("commonName") == (IDENTITY,)
    assert info.issuer_values("organizationName") == (
        expected.issuer.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value,
    )
    assert info.serial_number == expected.serial_number
    assert info.san == (("DNS", IDENTITY.lower()),)
    assert info.not_after == expected.not_valid_after_utc
    assert info.not_before == expected.not_valid_before_utc
    assert info.not_after.tzinfo is datetime.UTC
    check_station_certificate(info, IDENTITY, organization=OPERATOR)


@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
async def test_profile3_without_client_cert_is_rejected(pki: PKI, tls12: bool) -> None:
    client = client_ssl_context(cafile=pki.ca_file)
    if tls12:
        tls12_only(client)
    result = await exchange(profile3_server(pki), client)
    # Server: BrokenResourceError from SSLError
    #   "[SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE] peer did not return a certificate".
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in str(ssl_cause(result.server_error))
    # Client: trio's SSLStream does not flush the server's alert before closing,
    # so the client sees only EOF (SSLEOFError "UNEXPECTED_EOF_WHILE_READING"):
    # under TLS 1.3 on its first read after a successful handshake, under
    # TLS 1.2 in the handshake itself.
    assert isinstance(ssl_cause(result.client_error), ssl.SSLError)
    assert result.client_failed_in_handshake is tls12
    assert result.client_received == b""


@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
async def test_profile3_client_cert_from_another_ca_is_rejected(pki: PKI, tls12: bool) -> None:
    client = profile3_client(pki, certfile=pki.foreign_client_file)
    if tls12:
        tls12_only(client)
    result = await exchange(profile3_server(pki), client)
    # Server: SSLCertVerificationError "[SSL: CERTIFICATE_VERIFY_FAILED]
    #   certificate verify failed: unable to get local issuer certificate".
    cause = ssl_cause(result.server_error)
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(cause)
    assert isinstance(ssl_cause(result.client_error), ssl.SSLError)
    assert result.client_failed_in_handshake is tls12


async def test_mixed_listener_accepts_profile2_and_verifies_sent_certs(pki: PKI) -> None:
    server = server_ssl_context(pki.server_file, cafile=pki.ca_file)  # profile 2 with a CA
    result = await exchange(server, client_ssl_context(cafile=pki.ca_file))
    assert_ok(result)
    assert result.server_peercert is None
    result = await exchange(server, profile3_client(pki))
    assert_ok(result)
    assert certificate_info(result.server_peercert).common_name == IDENTITY
    result = await exchange(server, profile3_client(pki, certfile=pki.foreign_client_file))
    assert isinstance(ssl_cause(result.server_error), ssl.SSLCertVerificationError)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
async def test_tls11_client_is_rejected(pki: PKI) -> None:
    # Our own context cannot even offer TLS 1.1: its suites are all TLS 1.2+,
    # so the client fails locally with NO_CIPHERS_AVAILABLE.
    ours = client_ssl_context(cafile=pki.ca_file)
    ours.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ours.maximum_version = ssl.TLSVersion.TLSv1_1
    result = await exchange(profile2_server(pki), ours)
    assert result.client_failed_in_handshake
    assert isinstance(ssl_cause(result.client_error), ssl.SSLError)
    assert result.server_error is not None

    # A legacy client that does offer TLS 1.0/1.1 is refused by the server
    # (UNSUPPORTED_PROTOCOL), unless the local OpenSSL refuses first.
    legacy = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    legacy.load_verify_locations(pki.ca_file)
    legacy.minimum_version = ssl.TLSVersion.TLSv1
    legacy.maximum_version = ssl.TLSVersion.TLSv1_1
    legacy.set_ciphers("DEFAULT:@SECLEVEL=0")
    result = await exchange(profile2_server(pki), legacy)
    assert result.client_failed_in_handshake
    assert isinstance(ssl_cause(result.client_error), ssl.SSLError)
    assert isinstance(ssl_cause(result.server_error), ssl.SSLError)


async def test_client_without_an_ocpp_suite_is_rejected(pki: PKI) -> None:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(pki.ca_file)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    result = await exchange(profile2_server(pki), client)
    assert "NO_SHARED_CIPHER" in str(ssl_cause(result.server_error))
    assert result.client_failed_in_handshake


async def test_client_rejects_server_from_untrusted_ca(pki: PKI) -> None:
    client = client_ssl_context(cadata=pki.foreign_ca_pem)
    result = await exchange(profile2_server(pki), client)
    cause = ssl_cause(result.client_error)
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert cause.verify_message == "unable to get local issuer certificate"
    assert result.client_failed_in_handshake
    assert isinstance(ssl_cause(result.server_error), ssl.SSLError)


async def test_client_rejects_server_with_wrong_host_name(pki: PKI) -> None:
    client = client_ssl_context(cafile=pki.ca_file)
    result = await exchange(profile2_server(pki), client, server_hostname="csms.example.org")
    cause = ssl_cause(result.client_error)
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in cause.verify_message
    assert isinstance(ssl_cause(result.server_error), ssl.SSLError)


# ---------------------------------------------------------------- certificates


def _info(subject: tuple[tuple[str, str], ...]) -> CertificateInfo:
    when = datetime.datetime(2030, 6, 1, 12, tzinfo=datetime.UTC)
    return CertificateInfo(
        subject=subject,
        issuer=(("commonName", "Test CA"),),
        serial_number=1,
        san=(),
        not_before=when,
        not_after=when,
    )


def test_certificate_info_from_dict() -> None:
    peercert = {
        "subject": (
            (("countryName", "NL"),),
            (("organizationName", OPERATOR),),
            (("commonName", IDENTITY),),
        ),
        "issuer": ((("commonName", "Test CA"),),),
        "version": 3,
        "serialNumber": "0A1B",
        "notBefore": "Jan  1 00:00:00 2020 GMT",
        "notAfter": "Jun  1 12:00:00 2030 GMT",
        "subjectAltName": (("DNS", "cp001.example"), ("IP Address", "10.0.0.1")),
    }
    info = certificate_info(peercert)
    assert info.subject == (
        ("countryName", "NL"),
        ("organizationName", OPERATOR),
        ("commonName", IDENTITY),
    )
    assert info.issuer_values("commonName") == ("Test CA",)
    assert info.serial_number == 0x0A1B
    assert info.san == (("DNS", "cp001.example"), ("IP Address", "10.0.0.1"))
    assert info.not_after == datetime.datetime(2030, 6, 1, 12, tzinfo=datetime.UTC)
    assert info.not_before == datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    hash(info)


def test_certificate_info_takes_a_dirname_alt_name() -> None:
    """getpeercert() gives a DirName subjectAltName as a whole name (a tuple of RDNs)."""
    peercert = {
        "subject": ((("commonName", "SN-0042"),),),
        "serialNumber": "01",
        "notBefore": "Jan  1 00:00:00 2020 GMT",
        "notAfter": "Jun  1 12:00:00 2030 GMT",
        "subjectAltName": (
            ("DirName", ((("countryName", "DE"),), (("commonName", IDENTITY),))),
            ("DNS", "cp001.example"),
        ),
    }
    info = certificate_info(peercert)
    assert info.san == (
        ("DirName", f"countryName=DE,commonName={IDENTITY}"),
        ("DNS", "cp001.example"),
    )


@pytest.mark.parametrize(
    ("peercert", "message"),
    [
        (None, "no certificate"),
        ({}, "not verified"),
        ({"subject": ()}, "serialNumber"),
        ({"serialNumber": "zz"}, "not hex"),
        ({"serialNumber": "01", "subject": "CN=x"}, "subject"),
        ({"serialNumber": "01", "subject": ((("commonName",),),)}, "malformed"),
        ({"serialNumber": "01", "notBefore": "Jan  1 00:00:00 2020 GMT"}, "notAfter"),
    ],
)
def test_certificate_info_rejects_bad_input(
    peercert: dict[str, object] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        certificate_info(peercert)


def test_check_station_certificate_ok() -> None:
    info = _info((("organizationName", OPERATOR), ("commonName", IDENTITY)))
    check_station_certificate(info, IDENTITY)
    check_station_certificate(info, IDENTITY, organization=OPERATOR)


@pytest.mark.parametrize(
    ("subject", "organization", "message"),
    [
        ((("commonName", "CP002"),), None, "'CP002' is not the station identity 'CP001'"),
        ((("commonName", "CP0012"),), None, "is not the station identity"),
        ((("commonName", "cp001"),), None, "is not the station identity"),
        ((("organizationName", OPERATOR),), None, "0 commonName values"),
        ((("commonName", IDENTITY), ("commonName", "CP002")), None, "2 commonName values"),
        ((("commonName", IDENTITY), ("organizationName", "Other")), OPERATOR, "'Other' is not"),
        ((("commonName", IDENTITY),), OPERATOR, "0 organizationName values"),
    ],
)
def test_check_station_certificate_mismatch(
    subject: tuple[tuple[str, str], ...], organization: str | None, message: str
) -> None:
    with pytest.raises(CertificateMismatch, match=message) as info:
        check_station_certificate(_info(subject), IDENTITY, organization=organization)
    assert isinstance(info.value, OCPPError)


# ---------------------------------------------------------------- every suite OCPP requires


@dataclass(frozen=True)
class DualPKI:
    """An ECDSA chain and an RSA chain for the CSMS, each from a CA of its own key type."""

    ecdsa_file: Path  # key + chain in one file
    rsa_cert_file: Path  # chain only
    rsa_key_file: Path
    cadata: str  # both CAs


@pytest.fixture(scope="module")
def dual(tmp_path_factory: pytest.TempPathFactory) -> DualPKI:
    directory = tmp_path_factory.mktemp("dual")
    ecdsa_ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    rsa_ca = trustme.CA(key_type=trustme.KeyType.RSA)
    ecdsa = ecdsa_ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.ECDSA)
    rsa = rsa_ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.RSA)
    ecdsa_file = directory / "csms-ecdsa.pem"
    ecdsa.private_key_and_cert_chain_pem.write_to_path(str(ecdsa_file))
    rsa_cert_file = directory / "csms-rsa.pem"
    for blob in rsa.cert_chain_pems:
        blob.write_to_path(str(rsa_cert_file), append=True)
    rsa_key_file = directory / "csms-rsa.key"
    rsa.private_key_pem.write_to_path(str(rsa_key_file))
    cadata = ecdsa_ca.cert_pem.bytes().decode("ascii") + rsa_ca.cert_pem.bytes().decode("ascii")
    return DualPKI(ecdsa_file, rsa_cert_file, rsa_key_file, cadata)


def dual_server(dual: DualPKI) -> ssl.SSLContext:
    return server_ssl_context([dual.ecdsa_file, (dual.rsa_cert_file, dual.rsa_key_file)])


def offering(dual: DualPKI, ciphers: str) -> ssl.SSLContext:
    """A TLS 1.2 client that offers only ``ciphers`` (not one of our contexts)."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cadata=dual.cadata)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers(ciphers)
    return client


@pytest.mark.parametrize(
    "suite",
    [*REQUIRED_SUITES, "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"],
)
async def test_every_required_suite_negotiates_with_an_ecdsa_and_an_rsa_chain(
    dual: DualPKI, suite: str
) -> None:
    """OCPP 2.0.1 A00.FR.318: all four suites (and the ECDHE-RSA pair) on one context."""
    result = await exchange(dual_server(dual), offering(dual, suite))
    assert_ok(result)
    assert result.version == "TLSv1.2"
    assert result.cipher == suite


@pytest.mark.parametrize(
    ("chain", "missing"),
    [
        ("ecdsa", ("AES128-GCM-SHA256", "AES256-GCM-SHA384")),
        ("rsa", ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384")),
    ],
)
async def test_one_chain_serves_only_the_suites_of_its_key_type(
    dual: DualPKI, chain: str, missing: tuple[str, ...]
) -> None:
    server = (
        server_ssl_context(dual.ecdsa_file)
        if chain == "ecdsa"
        else server_ssl_context(dual.rsa_cert_file, dual.rsa_key_file)
    )
    for suite in missing:
        result = await exchange(server, offering(dual, suite))
        assert "NO_SHARED_CIPHER" in str(ssl_cause(result.server_error))
        assert result.client_failed_in_handshake


@pytest.mark.parametrize(
    "suite",
    [
        "ECDHE-ECDSA-AES128-SHA",  # CBC
        "ECDHE-RSA-AES256-SHA384",  # CBC
        "AES128-SHA256",  # static RSA, CBC
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
    ],
)
async def test_other_tls12_suites_are_refused_by_the_dual_server(dual: DualPKI, suite: str) -> None:
    result = await exchange(dual_server(dual), offering(dual, suite))
    assert "NO_SHARED_CIPHER" in str(ssl_cause(result.server_error))
    assert result.client_failed_in_handshake


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
async def test_tls10_and_tls11_are_refused_by_the_dual_server(dual: DualPKI, version: str) -> None:
    legacy = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    legacy.load_verify_locations(cadata=dual.cadata)
    legacy.minimum_version = legacy.maximum_version = ssl.TLSVersion[version]
    legacy.set_ciphers("DEFAULT:@SECLEVEL=0")
    result = await exchange(dual_server(dual), legacy)
    # The ClientHello reached the server, which refused its version.
    assert "UNSUPPORTED_PROTOCOL" in str(ssl_cause(result.server_error))
    assert result.client_failed_in_handshake


def test_server_context_refuses_chains_it_cannot_use(dual: DualPKI, pki: PKI) -> None:
    with pytest.raises(ValueError, match="two ECDSA certificate chains"):
        server_ssl_context([dual.ecdsa_file, pki.server_file])
    with pytest.raises(ValueError, match="two RSA certificate chains"):
        server_ssl_context([(dual.rsa_cert_file, dual.rsa_key_file), pki.rsa_server_file])
    with pytest.raises(ValueError, match="empty"):
        server_ssl_context([])
    with pytest.raises(ValueError, match="keyfile"):
        server_ssl_context([dual.ecdsa_file], dual.rsa_key_file)
    with pytest.raises(ValueError, match="keyfile"):
        server_ssl_context(None, dual.rsa_key_file)
    with pytest.raises(ValueError, match="PEM file or"):
        server_ssl_context([(dual.rsa_cert_file,)])  # type: ignore[list-item]
    with pytest.raises(ssl.SSLError):  # the RSA key with the ECDSA certificate
        server_ssl_context([(dual.ecdsa_file, dual.rsa_key_file)])
    # A single chain in a list, and the classic two arguments, still work.
    assert server_ssl_context([dual.ecdsa_file]).verify_mode == ssl.CERT_NONE
    assert isinstance(
        server_ssl_context(str(dual.rsa_cert_file), str(dual.rsa_key_file)), ssl.SSLContext
    )
