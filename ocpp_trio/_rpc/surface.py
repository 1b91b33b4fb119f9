"""The handler and event surface that the connection and the client share.

Both keep a :class:`~ocpp_trio.routing.Router` of handlers and an
:class:`~ocpp_trio.events.EventEmitter`; a client hands its own to every
connection it opens, so handlers and callbacks survive reconnects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

from ..events import (
    BadMessageEvent,
    CallErrorEvent,
    CallEvent,
    CallResultErrorEvent,
    CallResultEvent,
    CloseEvent,
    ConnectingEvent,
    ErrorEvent,
    EventEmitter,
    EventName,
    EventPayload,
    LateResponseEvent,
    LimitEvent,
    MessageEvent,
    OpenEvent,
    OutboxDeliveredEvent,
    OutboxDroppedEvent,
    OutboxRetryEvent,
    PingEvent,
    PongEvent,
    ReconnectEvent,
    StrictValidationFailureEvent,
)
from ..routing import ActionHandler, Handler, Router, parse_handle_args, register
from ..types import Action, SendAction

F = TypeVar("F", bound=Handler)
Req = TypeVar("Req")
Res = TypeVar("Res")


class HandlerSurface:
    """``handle``, ``remove_handler``, ``remove_all_handlers``, ``on`` and ``off``."""

    __slots__ = ("_emitter", "_router")

    def __init__(self, router: Router, emitter: EventEmitter) -> None:
        self._router = router
        self._emitter = emitter

    @overload
    def handle(
        self, action: type[Action[Req, Res]], fn: ActionHandler[Req, Res], /
    ) -> ActionHandler[Req, Res]: ...
    @overload
    def handle(
        self, action: type[Action[Req, Res]], /
    ) -> Callable[[ActionHandler[Req, Res]], ActionHandler[Req, Res]]: ...
    @overload
    def handle(
        self, action: type[SendAction[Req]], fn: ActionHandler[Req, object], /
    ) -> ActionHandler[Req, object]: ...
    @overload
    def handle(
        self, action: type[SendAction[Req]], /
    ) -> Callable[[ActionHandler[Req, object]], ActionHandler[Req, object]]: ...
    @overload
    def handle(self, fn: F, /) -> F: ...
    @overload
    def handle(self, method: str, fn: F, /) -> F: ...
    @overload
    def handle(self, protocol: str, method: str, fn: F, /) -> F: ...
    @overload
    def handle(self, method: str, /) -> Callable[[F], F]: ...
    @overload
    def handle(self, protocol: str, method: str, /) -> Callable[[F], F]: ...
    @overload
    def handle(self) -> Callable[[F], F]: ...

    def handle(self, *args: Any) -> Any:
        """Register a handler: ``(method, fn)``, ``(protocol, method, fn)`` or ``(fn)``.

        A typed action may stand for the names: ``handle(v201.Reset, fn)`` is
        ``handle("ocpp2.0.1", "Reset", fn)`` with ``fn`` typed as taking a
        ``HandlerContext[v201.ResetRequest]`` and returning a
        ``v201.ResetResponse``.  Without ``fn`` it is a decorator.  The handler
        gets a :class:`HandlerContext` and returns the result payload (or
        ``NOREPLY``); it may be sync or async.  Raise an ``RPCError`` subclass to answer with
        that code; any other exception answers InternalError.  An async handler
        is cancelled when the connection closes.
        """
        return register(self._router, args)

    def remove_handler(self, *args: str | type[Action[Any, Any]] | type[SendAction[Any]]) -> bool:
        """Remove a handler: ``(method)``, ``(protocol, method)``, ``(action)`` or ``()``.

        ``()`` removes the wildcard handler.
        """
        protocol, method, _ = parse_handle_args(args)
        return self._router.remove(protocol, method)

    def remove_all_handlers(self) -> None:
        """Remove every handler (inbound calls then get NotImplemented/NotSupported)."""
        self._router.clear()

    # One overload per name of ``EventName`` with its payload class (also a
    # member of ``EventPayload``); tests/test_options_typed.py checks that
    # every event has one.
    @overload
    def on(
        self, name: Literal["open"], callback: Callable[[OpenEvent], object]
    ) -> Callable[[OpenEvent], object]: ...
    @overload
    def on(
        self, name: Literal["close"], callback: Callable[[CloseEvent], object]
    ) -> Callable[[CloseEvent], object]: ...
    @overload
    def on(
        self, name: Literal["error"], callback: Callable[[ErrorEvent], object]
    ) -> Callable[[ErrorEvent], object]: ...
    @overload
    def on(
        self, name: Literal["connecting"], callback: Callable[[ConnectingEvent], object]
    ) -> Callable[[ConnectingEvent], object]: ...
    @overload
    def on(
        self, name: Literal["reconnect"], callback: Callable[[ReconnectEvent], object]
    ) -> Callable[[ReconnectEvent], object]: ...
    @overload
    def on(
        self, name: Literal["message"], callback: Callable[[MessageEvent], object]
    ) -> Callable[[MessageEvent], object]: ...
    @overload
    def on(
        self, name: Literal["call"], callback: Callable[[CallEvent], object]
    ) -> Callable[[CallEvent], object]: ...
    @overload
    def on(
        self, name: Literal["call_result"], callback: Callable[[CallResultEvent], object]
    ) -> Callable[[CallResultEvent], object]: ...
    @overload
    def on(
        self, name: Literal["call_error"], callback: Callable[[CallErrorEvent], object]
    ) -> Callable[[CallErrorEvent], object]: ...
    @overload
    def on(
        self, name: Literal["bad_message"], callback: Callable[[BadMessageEvent], object]
    ) -> Callable[[BadMessageEvent], object]: ...
    @overload
    def on(
        self, name: Literal["ping"], callback: Callable[[PingEvent], object]
    ) -> Callable[[PingEvent], object]: ...
    @overload
    def on(
        self, name: Literal["pong"], callback: Callable[[PongEvent], object]
    ) -> Callable[[PongEvent], object]: ...
    @overload
    def on(
        self,
        name: Literal["strict_validation_failure"],
        callback: Callable[[StrictValidationFailureEvent], object],
    ) -> Callable[[StrictValidationFailureEvent], object]: ...
    @overload
    def on(
        self, name: Literal["late_response"], callback: Callable[[LateResponseEvent], object]
    ) -> Callable[[LateResponseEvent], object]: ...
    @overload
    def on(
        self, name: Literal["call_result_error"], callback: Callable[[CallResultErrorEvent], object]
    ) -> Callable[[CallResultErrorEvent], object]: ...
    @overload
    def on(
        self, name: Literal["limit"], callback: Callable[[LimitEvent], object]
    ) -> Callable[[LimitEvent], object]: ...
    @overload
    def on(
        self,
        name: Literal["outbox_delivered"],
        callback: Callable[[OutboxDeliveredEvent], object],
    ) -> Callable[[OutboxDeliveredEvent], object]: ...
    @overload
    def on(
        self, name: Literal["outbox_dropped"], callback: Callable[[OutboxDroppedEvent], object]
    ) -> Callable[[OutboxDroppedEvent], object]: ...
    @overload
    def on(
        self, name: Literal["outbox_retry"], callback: Callable[[OutboxRetryEvent], object]
    ) -> Callable[[OutboxRetryEvent], object]: ...
    @overload
    def on(
        self, name: EventName, callback: Callable[[EventPayload], object]
    ) -> Callable[[Any], object]: ...

    def on(self, name: str, callback: Callable[[Any], object]) -> Callable[[Any], object]:
        """Call ``callback(payload)`` on event ``name``; returns ``callback``.

        Each event has its payload type (``"close"``: :class:`CloseEvent`,
        ``"call"``: :class:`CallEvent`, ... see ``ocpp_trio.events``), and a
        type checker holds the callback to it; a callback for any event
        takes :data:`EventPayload`.  Callbacks run synchronously in the task
        where the event happens and must not block; one that raises is
        logged and the others still run.

        Raises:
            ValueError: ``name`` is not an event (see ``EventName``).
            TypeError: ``callback`` is not callable.
        """
        return self._emitter.on(name, callback)

    def off(self, name: EventName, callback: Callable[[Any], object] | None = None) -> None:
        """Remove an event callback (all of ``name``'s when ``callback`` is None)."""
        self._emitter.off(name, callback)
