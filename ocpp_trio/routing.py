"""Handler registry and dispatch: version-specific, generic, wildcard.

A handler answers the peer's CALL.  Lookup order for an inbound CALL of
``action`` on a connection speaking ``protocol`` (design card, "handle()"):

1. the handler registered for ``(protocol, action)``;
2. the handler registered for ``action`` on any protocol;
3. the wildcard handler;
4. none: the caller answers NotImplemented (the action is unknown to the
   protocol) or NotSupported (the action exists but nobody handles it),
   as OCPP-J 1.6 §4.2.3 / 2.0.1 §4.3 define those codes.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar, final

if TYPE_CHECKING:
    # PEP 696 defaults (typing has them from 3.13): ``HandlerContext`` alone
    # means ``HandlerContext[dict[str, Any]]``.  The checkers read this branch;
    # at run time a plain TypeVar does (defaults change nothing there).
    from typing_extensions import TypeVar as _TypeVarWithDefault

    from ._rpc.connection import OCPPConnection

    P_co = _TypeVarWithDefault("P_co", covariant=True, default=dict[str, Any])
else:
    P_co = TypeVar("P_co", covariant=True)

_Req = TypeVar("_Req")
_Res = TypeVar("_Res")


@final
class _NoReply:
    """The type of :data:`NOREPLY`."""

    _instance: _NoReply | None = None

    def __new__(cls) -> _NoReply:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOREPLY"

    def __reduce__(self) -> str:
        return "NOREPLY"


#: Return this from a handler to send no answer at all (the call is forgotten).
NOREPLY: Final = _NoReply()

NoReply: TypeAlias = _NoReply
"""The type of :data:`NOREPLY`, for handler annotations (``-> ResetResponse | NoReply``)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerContext(Generic[P_co]):
    """What a handler gets for one inbound CALL (or SEND).

    Generic in the type of ``params``: a handler registered with a typed action
    takes ``HandlerContext[v201.ResetRequest]``; plain ``HandlerContext`` is
    ``HandlerContext[dict[str, Any]]``.

    Attributes:
        params: the payload, a plain dict with the wire's camelCase keys.
        protocol: the negotiated subprotocol, e.g. ``"ocpp1.6"``.
        method: the action name, e.g. ``"BootNotification"``.
        message_id: the frame's message id.
        connection: the connection the call came in on.
        is_send: True for an OCPP 2.1 SEND (the return value is ignored).
    """

    params: P_co
    protocol: str
    method: str
    message_id: str
    connection: OCPPConnection
    is_send: bool = False

    @property
    def identity(self) -> str:
        """The station identity of the connection."""
        return self.connection.identity


Handler = Callable[[HandlerContext], Any]
"""A handler: ``fn(ctx)`` returning the result payload (or ``NOREPLY``), sync or async."""

ActionHandler: TypeAlias = Callable[
    [HandlerContext[_Req]], "_Res | NoReply | Awaitable[_Res | NoReply]"
]
"""The handler of a typed action ``Action[_Req, _Res]``: sync or async, returns ``_Res``.

A SEND-only action's handler is ``ActionHandler[Req, object]`` (its result is ignored).
"""

_F = TypeVar("_F", bound=Handler)


@dataclass(frozen=True, slots=True)
class _Entry:
    fn: Handler
    is_async: bool


_WILDCARD: Final = ("", "")


class Router:
    """The handlers of one connection (or of a client, across its reconnects)."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], _Entry] = {}

    def add(self, protocol: str | None, method: str | None, fn: Handler) -> None:
        """Register ``fn`` for ``(protocol, method)``; None means any."""
        if not callable(fn):
            raise TypeError(f"handler must be callable, got {type(fn).__name__}")
        if protocol is not None and method is None:
            raise TypeError("a protocol-specific handler needs a method name")
        key = (protocol or "", method or "")
        self._handlers[key] = _Entry(fn, inspect.iscoroutinefunction(fn))

    def remove(self, protocol: str | None, method: str | None) -> bool:
        """Remove the handler for ``(protocol, method)``; return whether there was one."""
        return self._handlers.pop((protocol or "", method or ""), None) is not None

    def clear(self) -> None:
        """Remove every handler."""
        self._handlers.clear()

    def lookup(self, protocol: str, method: str) -> _Entry | None:
        """The handler for an inbound ``method`` on ``protocol``, in dispatch order."""
        handlers = self._handlers
        return (
            handlers.get((protocol, method))
            or handlers.get(("", method))
            or handlers.get(_WILDCARD)
        )

    def __len__(self) -> int:
        return len(self._handlers)


def parse_handle_args(
    args: tuple[Any, ...],
) -> tuple[str | None, str | None, Handler | None]:
    """Split ``handle(...)`` arguments into ``(protocol, method, fn)``.

    Accepted: ``(fn)``, ``(method)``, ``(method, fn)``, ``(protocol, method)``,
    ``(protocol, method, fn)``, and a typed action in place of the names:
    ``(action)``, ``(action, fn)`` (``v16.Reset`` is ``("ocpp1.6", "Reset")``);
    a missing fn means the decorator form.
    """
    if not args:
        return None, None, None  # @conn.handle() as a wildcard decorator
    from .types import Message  # here: ocpp_trio.types imports this module

    first = args[0]
    if isinstance(first, type) and issubclass(first, Message):
        if len(args) > 2:
            raise TypeError(f"handle() takes (action) or (action, fn), got {len(args)} arguments")
        try:
            protocol, method = first.protocol, first.action
        except AttributeError:
            raise TypeError(
                f"{first.__qualname__} names no protocol and action (class attributes)"
            ) from None
        handler = args[1] if len(args) == 2 else None
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        return protocol, method, handler
    if len(args) > 3:
        raise TypeError(f"handle() takes at most 3 arguments, got {len(args)}")
    names: list[Any] = list(args)
    last = names.pop()
    fn: Handler | None = None
    if callable(last) and not isinstance(last, str):
        fn = last
    else:
        names.append(last)
    if not all(isinstance(n, str) and n for n in names):
        raise TypeError("protocol and method must be non-empty strings")
    if len(names) == 0:
        return None, None, fn
    if len(names) == 1:
        return None, names[0], fn
    if len(names) == 2:
        return names[0], names[1], fn
    raise TypeError("handle() takes (fn), (method, fn) or (protocol, method, fn)")


def register(router: Router, args: tuple[Any, ...]) -> Any:
    """Register from ``handle(...)`` arguments; return fn, or a decorator without one."""
    protocol, method, fn = parse_handle_args(args)
    if fn is not None:
        router.add(protocol, method, fn)
        return fn

    def decorator(func: _F) -> _F:
        router.add(protocol, method, func)
        return func

    return decorator
