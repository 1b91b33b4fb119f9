"""The pieces of an outbound call that the connection and the client share.

``call_with_limit`` is the whole life of one ``call()``: a FIFO slot from the
``call_concurrency`` limiter, an open connection (a client may wait for its
reconnect here, still holding its place in the queue), the exchange itself;
all of it inside one cancel scope of ``timeout`` seconds.  When the scope
expires the call is forgotten by the core (a late answer becomes a
``late_response`` event) and ``CallTimeout`` is raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from ._core.errors import CallTimeout
from ._core.validation import Validator, get_validator
from ._options import ConnectionOptions
from .types import Message, SendAction

if TYPE_CHECKING:
    from .connection import OCPPConnection

#: Known OCPP protocols with official schemas.
BUILTIN_PROTOCOLS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")


class Waiter:
    """One outbound call waiting for its answer."""

    __slots__ = ("action", "event", "outcome")

    def __init__(self, action: str) -> None:
        self.action = action
        self.event = trio.Event()
        self.outcome: dict[str, Any] | BaseException | None = None

    def resolve(self, outcome: dict[str, Any] | BaseException) -> None:
        if not self.event.is_set():
            self.outcome = outcome
            self.event.set()


def parse_call_args(
    args: tuple[Any, ...], *, send: bool = False
) -> tuple[str | None, str, Mapping[str, Any]]:
    """Split ``call(...)`` (or ``send(...)``) arguments into ``(protocol, method, params)``.

    Accepted: a typed message (``v16.BootNotification({...})``, which names its
    protocol), ``(method)`` (empty params), ``(method, params)`` and
    ``(protocol, method, params)``.  ``call()`` refuses a SEND-only message.
    """
    if len(args) == 1 and isinstance(args[0], Message):
        message = args[0]
        if not send and isinstance(message, SendAction):
            raise TypeError(
                f"{message.action} is a SEND message of {message.protocol}: "
                "it has no response; use send()"
            )
        protocol, method, params = message.protocol, message.action, message.params
    elif len(args) == 2:
        protocol, (method, params) = None, args
    elif len(args) == 3:
        protocol, method, params = args
        if not isinstance(protocol, str):
            raise TypeError(f"protocol must be a string, got {type(protocol).__name__}")
    elif len(args) == 1:
        method, params = args[0], {}
        protocol = None
        if isinstance(method, type) and issubclass(method, Message):
            raise TypeError(f"pass a message, not the action class: {method.__qualname__}({{...}})")
        if not isinstance(method, str):
            raise TypeError(
                "call() takes a typed action (v16.Heartbeat({})), (method, params) or "
                f"(protocol, method, params), got {type(method).__name__}"
            )
    else:
        raise TypeError(
            f"call() takes (method, params) or (protocol, method, params), got {len(args)} arguments"
        )
    if not isinstance(method, str) or not method:
        raise TypeError("method must be a non-empty string")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    return protocol, method, params


def resolve_validator(options: ConnectionOptions, protocol: str) -> Validator | None:
    """The validator strict mode uses on ``protocol``, or None when it does not validate."""
    for validator in options.strict_mode_validators:
        if validator.protocol == protocol:
            return validator
    strict = options.strict_mode
    if strict is True or (not isinstance(strict, bool) and protocol in strict):
        return get_validator(protocol) if protocol in BUILTIN_PROTOCOLS else None
    return None


def cap_reason(reason: str) -> str:
    data = reason.encode("utf-8")
    if len(data) <= 123:
        return reason
    return data[:123].decode("utf-8", "ignore")


async def call_with_limit(
    target: Any,
    limiter: trio.CapacityLimiter,
    protocol: str | None,
    method: str,
    params: Mapping[str, Any],
    timeout: float | None,
) -> dict[str, Any]:
    """Run one call: FIFO slot, an open connection, the exchange, all within ``timeout``.

    ``target._wait_ready()`` returns an open connection (a client waits for a
    reconnect there).  The slot is held across that wait, so FIFO order holds
    across reconnects.
    """
    if timeout is None:
        timeout = float(target.options.call_timeout)
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    token = object()
    with trio.move_on_after(timeout) as scope:
        await limiter.acquire_on_behalf_of(token)
        try:
            conn: OCPPConnection = await target._wait_ready()
            return await conn._call_open(protocol, method, params)
        finally:
            limiter.release_on_behalf_of(token)
    assert scope.cancelled_caught
    raise CallTimeout(f"{method}: no answer within {timeout:g} s") from None
