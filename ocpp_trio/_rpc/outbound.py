"""The outbound call path: one ``call()`` from its FIFO slot to its answer, in one cancel scope.

Theory of operation (OCPP-J 1.6 §4.1.1, 2.0.1 Part 4 §4.1.1: a sender has at
most one CALL outstanding by default).  ``call()`` opens one cancel scope that
ends at the call's deadline (``timeout``, by default ``call_timeout``) and
does everything inside it, so ``trio.current_effective_deadline()`` there is
the call's:

1. a FIFO slot of the ``call_concurrency`` limiter (a ``trio.CapacityLimiter``:
   fair, i.e. FIFO, and resizable at run time by ``reconfigure``; a channel of
   that capacity would need a task to own its receiving end and could not be
   resized).  A free slot is taken without a schedule point; the nowait form
   refuses while anyone is queued, so the order stays FIFO;
2. an open connection (a client may wait for its reconnect here, still
   holding its place in the queue);
3. the exchange (:func:`exchange`): validate (strict mode), register the id in
   the sans-IO core, write, wait for the answer, validate it.

When the deadline passes the scope cancels whatever step is running and
``CallTimeout`` is raised.  Cancelled from outside at any step, the call
raises ``Cancelled`` at once.  Either way the id is forgotten (an answer that
comes later is reported as a ``late_response`` event) and the connection stays
usable, unless the cancellation cut a frame half-way on the wire: then the
transport aborts the connection, and its close reason says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import trio

from .._core.errors import CallTimeout, ProtocolMismatchError, ValidationError
from .._core.validation import SUPPORTED_PROTOCOLS, Validator, get_validator
from ..events import CallEvent
from ..types import Message, SendAction
from .link import Link, PendingCall
from .options import ConnectionOptions
from .state import ConnectionState

_OPEN = ConnectionState.OPEN

#: Known OCPP protocols with official schemas.
BUILTIN_PROTOCOLS = SUPPORTED_PROTOCOLS


class CallSource(Protocol):
    """What :func:`run_call` needs of a connection or a client."""

    @property
    def options(self) -> ConnectionOptions: ...

    def open_link(self) -> Link | None:
        """The open connection's link; None while (re)connecting; raises once closed."""
        ...

    async def wait_link(self) -> Link:
        """Wait for an open connection (a client's reconnect)."""
        ...


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


def validators_for(options: ConnectionOptions, protocols: Iterable[str]) -> list[Validator]:
    """The validators strict mode will use on any of ``protocols`` (each once)."""
    found: dict[int, Validator] = {}
    for protocol in protocols:
        validator = resolve_validator(options, protocol)
        if validator is not None:
            found[id(validator)] = validator
    return list(found.values())


async def prepare_validators(options: ConnectionOptions, protocols: Iterable[str]) -> None:
    """Compile, in a worker thread, every schema strict mode may use on ``protocols``.

    Called by the client and the server before they report themselves
    started, so that the reader never compiles a schema (compiling one takes
    3-30 ms, all of a protocol 0.2-2 s).  Validators are shared by the whole
    process: a protocol compiled once is ready for every later connection,
    and then no thread is started.

    Raises:
        ValueError: a custom validator's schema cannot be compiled.
    """
    for validator in validators_for(options, protocols):
        if not validator.compiled:
            await trio.to_thread.run_sync(validator.precompile)


def prepare_validators_now(options: ConnectionOptions, protocols: Iterable[str]) -> None:
    """:func:`prepare_validators` in the calling task, blocking (for ``ocpp_trio.testing``).

    Under a mock clock a worker thread would let virtual time jump while it
    compiles; the in-memory helpers, which run under one in tests, compile
    here instead, before anything runs.
    """
    for validator in validators_for(options, protocols):
        if not validator.compiled:
            validator.precompile()


async def run_call(
    source: CallSource,
    limiter: trio.CapacityLimiter,
    protocol: str | None,
    method: str,
    params: Mapping[str, Any],
    timeout: float | None,
) -> dict[str, Any]:
    """One whole ``call()``: a FIFO slot, an open connection, the exchange, within ``timeout``.

    See the module docstring.  Raises ``CallTimeout`` when the deadline
    passes, ``Cancelled`` when cancelled from outside, and whatever the
    exchange raises.
    """
    if timeout is None:
        timeout = float(source.options.call_timeout)
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    await trio.lowlevel.checkpoint_if_cancelled()  # nothing is sent by a call cancelled already
    with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
        token = object()
        try:
            limiter.acquire_on_behalf_of_nowait(token)
        except trio.WouldBlock:
            await limiter.acquire_on_behalf_of(token)
        try:
            link = source.open_link()
            if link is None:
                link = await source.wait_link()
            if link.rec is None:
                return await exchange(link, protocol, method, params)
            return await link.rec.call(
                method, scope.deadline, lambda: exchange(link, protocol, method, params)
            )
        finally:
            limiter.release_on_behalf_of(token)
    raise CallTimeout(f"{method}: no answer within {timeout:g} s") from None


async def exchange(
    link: Link, protocol: str | None, method: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Send one CALL on an open connection and return its result payload.

    Runs within the caller's scopes (``run_call``'s deadline).  However it
    ends, the id is forgotten unless answered.
    """
    if protocol is not None and protocol != link.protocol:
        raise ProtocolMismatchError(
            f"{method} is called as an action of {protocol!r}, "
            f"but the connection speaks {link.protocol!r}"
        )
    if link.state is not _OPEN:
        link.check_open()  # raises the error for the state it is in
    validator = link.validator
    if validator is not None:
        invalid = link.validate(method, "request", params, outbound=True, message_id=None)
        if isinstance(invalid, ValidationError):
            raise invalid
    mid, text = link.proto.send_call(method, params)
    call = PendingCall(method)
    link.pending[mid] = call  # wait_idle() sees it: no idle event to reset here
    if link.rec is not None:
        link.rec.sent(2, method, mid, text)
    try:
        await link.write(text)
        if link.emitter.has("call"):
            link.emitter.emit(
                "call",
                CallEvent(message_id=mid, method=method, params=dict(params), outbound=True),
            )
        await call.event.wait()
    finally:
        link.forget_call(mid)
        link.check_idle()
    outcome, call.outcome = call.outcome, None
    if isinstance(outcome, BaseException):
        try:
            raise outcome
        finally:
            outcome = None  # no cycle: traceback -> this frame -> the exception
    assert outcome is not None
    if validator is None:
        return outcome
    invalid = link.validate(method, "response", outcome, outbound=False, message_id=mid)
    if invalid is None:
        return outcome
    if isinstance(invalid, dict):
        return invalid  # repaired by the validation policy's relaxations
    if link.proto.supports_send and link.is_open:
        await link.send_call_result_error(mid, invalid.error)
    raise invalid
