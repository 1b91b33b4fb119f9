"""ocpp_trio: OCPP-J RPC (1.6, 2.0.1, 2.1) for Trio, client and server."""

from ._core.errors import CallErrorReceived as CallErrorReceived
from ._core.errors import CallTimeout as CallTimeout
from ._core.errors import ConnectError as ConnectError
from ._core.errors import ConnectionClosed as ConnectionClosed
from ._core.errors import ConnectTimeout as ConnectTimeout
from ._core.errors import ErrorCode as ErrorCode
from ._core.errors import HandshakeRejected as HandshakeRejected
from ._core.errors import MalformedResponseError as MalformedResponseError
from ._core.errors import OCPPError as OCPPError
from ._core.errors import ProtocolMismatchError as ProtocolMismatchError
from ._core.errors import ProtocolNegotiationError as ProtocolNegotiationError
from ._core.errors import ProtocolStateError as ProtocolStateError
from ._core.errors import RPCError as RPCError
from ._core.errors import RPCFormationViolationError as RPCFormationViolationError
from ._core.errors import RPCFormatViolationError as RPCFormatViolationError
from ._core.errors import RPCFrameworkError as RPCFrameworkError
from ._core.errors import RPCGenericError as RPCGenericError
from ._core.errors import RPCInternalError as RPCInternalError
from ._core.errors import RPCMessageTypeNotSupportedError as RPCMessageTypeNotSupportedError
from ._core.errors import RPCNotImplementedError as RPCNotImplementedError
from ._core.errors import RPCNotSupportedError as RPCNotSupportedError
from ._core.errors import (
    RPCOccurrenceConstraintViolationError as RPCOccurrenceConstraintViolationError,
)
from ._core.errors import RPCPropertyConstraintViolationError as RPCPropertyConstraintViolationError
from ._core.errors import RPCProtocolError as RPCProtocolError
from ._core.errors import RPCSecurityError as RPCSecurityError
from ._core.errors import RPCTypeConstraintViolationError as RPCTypeConstraintViolationError
from ._core.errors import TLSError as TLSError
from ._core.errors import ValidationError as ValidationError
from ._core.errors import create_rpc_error as create_rpc_error
from ._core.errors import error_to_dict as error_to_dict
from ._core.policy import PolicyRule as PolicyRule
from ._core.policy import ValidationPolicy as ValidationPolicy
from ._core.validation import SCHEMA_VARIANTS as SCHEMA_VARIANTS
from ._core.validation import Validator as Validator
from ._core.validation import create_validator as create_validator
from ._core.validation import get_validator as get_validator
from ._rpc.connection import OCPPConnection as OCPPConnection
from ._rpc.options import ConnectionKwargs as ConnectionKwargs
from ._rpc.options import ConnectionOptions as ConnectionOptions
from ._rpc.registration import RegistrationGate as RegistrationGate
from ._rpc.state import ConnectionState as ConnectionState
from ._server.signals import run_server as run_server
from ._server.signals import serve_until_signal as serve_until_signal
from ._version import __version__ as __version__
from ._version import package_ident as package_ident
from .client import ClientKwargs as ClientKwargs
from .client import OCPPClient as OCPPClient
from .client import open_ocpp_client as open_ocpp_client
from .routing import NOREPLY as NOREPLY
from .routing import HandlerContext as HandlerContext
from .security import CertificateInfo as CertificateInfo
from .security import SecurityProfile as SecurityProfile
from .security import basic_auth_header as basic_auth_header
from .security import certificate_info as certificate_info
from .security import check_password as check_password
from .security import check_station_certificate as check_station_certificate
from .security import client_ssl_context as client_ssl_context
from .security import server_ssl_context as server_ssl_context
from .server import AuthAccept as AuthAccept
from .server import AuthReject as AuthReject
from .server import HandshakeRequest as HandshakeRequest
from .server import OCPPServer as OCPPServer
from .server import ServerKwargs as ServerKwargs
from .server import serve_ocpp as serve_ocpp
from .workers import serve_workers as serve_workers

__all__ = [
    "NOREPLY",
    "SCHEMA_VARIANTS",
    "AuthAccept",
    "AuthReject",
    "CallErrorReceived",
    "CallTimeout",
    "CertificateInfo",
    "ClientKwargs",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionKwargs",
    "ConnectionOptions",
    "ConnectionState",
    "ErrorCode",
    "HandlerContext",
    "HandshakeRejected",
    "HandshakeRequest",
    "MalformedResponseError",
    "OCPPClient",
    "OCPPConnection",
    "OCPPError",
    "OCPPServer",
    "PolicyRule",
    "ProtocolMismatchError",
    "ProtocolNegotiationError",
    "ProtocolStateError",
    "RPCError",
    "RPCFormatViolationError",
    "RPCFormationViolationError",
    "RPCFrameworkError",
    "RPCGenericError",
    "RPCInternalError",
    "RPCMessageTypeNotSupportedError",
    "RPCNotImplementedError",
    "RPCNotSupportedError",
    "RPCOccurrenceConstraintViolationError",
    "RPCPropertyConstraintViolationError",
    "RPCProtocolError",
    "RPCSecurityError",
    "RPCTypeConstraintViolationError",
    "RegistrationGate",
    "SecurityProfile",
    "ServerKwargs",
    "TLSError",
    "ValidationError",
    "ValidationPolicy",
    "Validator",
    "__version__",
    "basic_auth_header",
    "certificate_info",
    "check_password",
    "check_station_certificate",
    "client_ssl_context",
    "create_rpc_error",
    "create_validator",
    "error_to_dict",
    "get_validator",
    "open_ocpp_client",
    "package_ident",
    "run_server",
    "serve_ocpp",
    "serve_until_signal",
    "serve_workers",
    "server_ssl_context",
]
