"""Outcomes of a routed call, as JSON, so the caller raises what a local call would.

An answer is ``{"ok": result}`` or ``{"error": {"type": ..., ...}}``.  The
types a local ``call()`` raises travel with their attributes; anything else
becomes a :class:`RemoteError` naming the remote type.
"""

from __future__ import annotations

from typing import Any

import trio

from .._core.errors import (
    CallErrorReceived,
    CallTimeout,
    ConnectionClosed,
    MalformedResponseError,
    ProtocolMismatchError,
    ValidationError,
    create_rpc_error,
)
from ._errors import ClusterUnavailable, RemoteError, StationOffline


def ok(result: Any) -> dict[str, Any]:
    """An answer carrying a result."""
    return {"ok": result}


def encode_error(exc: BaseException) -> dict[str, Any]:
    """An answer carrying ``exc`` (never a secret: only types and texts our code wrote)."""
    err: dict[str, Any]
    match exc:
        case CallErrorReceived():
            err = {
                "type": "call_error",
                "code": exc.code,
                "description": exc.description,
                "details": dict(exc.details),
                "action": exc.action,
            }
            if exc.malformed:  # errorDetails as the peer sent it (JSON, from its frame)
                err["malformed"] = True
                err["raw_details"] = exc.raw_details
        case CallTimeout():
            err = {"type": "timeout", "message": str(exc)}
        case ConnectionClosed():
            err = {"type": "closed", "message": str(exc), "code": exc.code, "reason": exc.reason}
        case trio.ClosedResourceError():
            err = {
                "type": "closed",
                "message": "the station's connection was closed by its instance",
            }
        case ValidationError():
            err = {
                "type": "validation",
                "code": exc.error.code,
                "description": exc.error.description,
                "details": dict(exc.error.details),
                "protocol": exc.protocol,
                "action": exc.action,
                "direction": exc.direction,
            }
        case MalformedResponseError():
            err = {
                "type": "malformed",
                "code": exc.error.code,
                "description": exc.error.description,
                "action": exc.action,
            }
        case ProtocolMismatchError():
            err = {"type": "protocol_mismatch", "message": str(exc)}
        case StationOffline():
            err = {"type": "offline", "identity": exc.identity, "message": str(exc)}
        case ClusterUnavailable():
            err = {"type": "unavailable", "message": str(exc)}
        case _:
            err = {"type": "remote", "kind": type(exc).__name__, "message": str(exc)}
    return {"error": err}


def decode(answer: Any) -> Any:
    """The result an answer carries; raises the error it carries."""
    if not isinstance(answer, dict):
        raise RemoteError("ProtocolError", f"malformed answer {answer!r:.100}")
    if "ok" in answer:
        return answer["ok"]
    err = answer.get("error")
    if not isinstance(err, dict):
        raise RemoteError("ProtocolError", f"malformed answer {answer!r:.100}")
    raise error_of(err)


def error_of(err: dict[str, Any]) -> Exception:
    """Rebuild the exception an encoded error describes."""
    kind = err.get("type")
    message = str(err.get("message", ""))
    if kind == "call_error":
        return CallErrorReceived(
            str(err.get("code", "")),
            str(err.get("description", "")),
            _details(err),
            action=str(err.get("action", "")),
            raw_details=err.get("raw_details"),
            malformed=err.get("malformed") is True,
        )
    if kind == "timeout":
        return CallTimeout(message)
    if kind == "closed":
        code = err.get("code")
        return ConnectionClosed(
            message,
            code=code if isinstance(code, int) else None,
            reason=str(err.get("reason") or ""),
        )
    if kind == "validation":
        rpc = create_rpc_error(
            str(err.get("code", "")), str(err.get("description", "")), _details(err)
        )
        return ValidationError(
            rpc,
            protocol=str(err.get("protocol", "")),
            action=str(err.get("action", "")),
            direction=str(err.get("direction", "")),
        )
    if kind == "malformed":
        rpc = create_rpc_error(str(err.get("code", "")), str(err.get("description", "")))
        return MalformedResponseError(rpc, action=str(err.get("action", "")))
    if kind == "protocol_mismatch":
        return ProtocolMismatchError(message)
    if kind == "offline":
        return StationOffline(str(err.get("identity", "")), message)
    if kind == "unavailable":
        return ClusterUnavailable(message)
    return RemoteError(str(err.get("kind", kind)), message)


def _details(err: dict[str, Any]) -> dict[str, Any]:
    details = err.get("details")
    return details if isinstance(details, dict) else {}
