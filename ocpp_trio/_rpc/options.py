"""The options of a connection, shared by the client and the server.

Times are in seconds; ``math.inf`` disables a limit and ``0`` disables pings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, cast

from .._core.policy import ValidationPolicy
from .registration import RegistrationGate

if TYPE_CHECKING:
    from .._core.validation import Validator

#: The largest inbound message accepted by default: 256 KiB of text, after
#: decompression (permessage-deflate); a larger one closes the connection with
#: 1009 (RFC 6455 §7.4.1).
#:
#: Why this size.  OCPP sets no message size, but its real messages are small,
#: and the cost of a message grows with its size whatever it holds: decoding
#: and validating the densest payload the 2.0.1 schemas accept (a MeterValues
#: of tiny sampled values) takes 0.15 to 0.25 ms per KiB on one core, so the
#: old default, 4 MiB, let one message of 14 KiB on the wire (deflated) cost
#: about a second.
#: Sizes of large but real messages, compact JSON as sent:
#:
#: ===============================================================  ===========
#: 2.0.1 MeterValues, 24 samples of 12 values                          42 KiB
#: 2.0.1 NotifyReport, 100 / 500 variables                           39 / 196 KiB
#: 2.0.1 SetChargingProfile, 1 schedule of 1024 periods (maxItems)      55 KiB
#: 2.0.1 SetChargingProfile, 3 schedules of 1024 periods (maxItems)    165 KiB
#: 2.0.1 SetChargingProfile, 1024 periods and 1024 tariff entries      246 KiB
#: 2.0.1 SendLocalList, 1000 tokens                                    222 KiB
#: 1.6 SendLocalList, 1000 / 2000 tags                               130 / 260 KiB
#: 2.0.1 CertificateSigned, a full chain (maxLength 10000)              10 KiB
#: ===============================================================  ===========
#:
#: Stations split long reports themselves (``tbc``, ``ItemsPerMessage...``,
#: ``BytesPerMessage...`` in 2.0.1; EVerest's libocpp splits NotifyReport at
#: 65,000 bytes by default), and a CSMS splits a local list by the station's
#: ``ItemsPerMessageSendLocalList`` (``SendLocalListMaxLength`` in 1.6).  256 KiB
#: takes every message above but the 2,000-tag list, with room for vendors'
#: DataTransfer; at it, the densest payload costs ~40 ms to decode and validate
#: (64 KiB: ~14 ms; 4 MiB: ~1 s).  Raise it for a peer known to send more; lower
#: it where CPU per message matters more.
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOptions:
    """Everything that tunes one OCPP-J connection.

    Attributes:
        call_timeout: how long ``call()`` waits in all (queue, send, answer).
        call_concurrency: our CALLs in flight at once; OCPP asks for 1.  Callers
            beyond it wait in FIFO order.
        inbound_call_concurrency: the peer's CALLs handled by async handlers at
            once; a CALL beyond it is answered at once with a GenericError
            ("busy") rather than queued, so the reader never stops.
        ping_interval: seconds between WebSocket pings; 0 or ``math.inf`` disables.
        pong_timeout: how long to wait for a pong before the peer is declared dead.
        defer_pings_on_activity: skip a ping while messages keep arriving.
        strict_mode: validate against the schemas: True for every protocol that
            has them, or a list of protocols.
        strict_mode_validators: extra validators (``create_validator``), e.g.
            for vendor protocols, or a built-in protocol's schema variant
            (``get_validator("ocpp1.6", variant="pre-errata")``); they win
            over the built-in ones.
        validation_policy: what strict mode does with a payload that breaks
            its schema, per protocol, action, direction and rule (reject,
            report, ignore), and which relaxations repair what peers send
            (``ValidationPolicy``); None (the default): every failure is
            rejected, at no cost.
        max_bad_messages: consecutive malformed frames tolerated before closing
            with 1002; ``math.inf`` never closes.
        respond_with_detailed_errors: put the exception type and text of a
            crashed handler into the InternalError's details.
        close_timeout: bound on the WebSocket closing handshake.
        max_message_size: the largest inbound message, in bytes of text after
            decompression; a larger one closes the connection with 1009.  The
            default, 256 KiB, takes OCPP's large messages (a 2.0.1 NotifyReport
            of 500 variables, a SetChargingProfile with the schema's 3 x 1024
            periods, a local list of 1,000 tokens) and bounds what one message
            can cost to decode and validate (~40 ms for the densest payload;
            see ``DEFAULT_MAX_MESSAGE_SIZE`` for the measurements).
        max_inbound_call_rate: the peer's CALLs (and 2.1 SENDs) accepted per
            second, sustained (a token bucket); a CALL beyond it is answered at
            once with a GenericError ("rate limit"), a SEND beyond it is
            dropped, both before their JSON is decoded (the id and action are
            read from the frame's head).  ``math.inf`` (the default) disables it.
        inbound_call_burst: how many CALLs may come at once on top of the
            rate (the bucket's size); None: one second's worth, at least 1.
        max_pending_calls: our ``call()``s on a connection not finished yet
            (waiting for a ``call_concurrency`` slot or for the answer); one
            more raises ``ProtocolStateError`` at once instead of queueing.
            (``OCPPClient`` bounds its calls with ``max_queued_calls``.)
        registration_gate: CSMS side: a :class:`RegistrationGate` (or True
            for a new one): every CALL but BootNotification from a station the
            CSMS has not answered ``Accepted`` is answered with a CALLERROR
            ``SecurityError`` before any handler sees it (2.0.1 B01.FR.10;
            1.6 §4.2).  None (the default): no gate.

    Every limit reached is reported as a ``"limit"`` event (``LimitEvent``).
    """

    call_timeout: float = 30.0
    call_concurrency: int = 1
    inbound_call_concurrency: int = 16
    ping_interval: float = 30.0
    pong_timeout: float = 30.0
    defer_pings_on_activity: bool = False
    strict_mode: bool | Sequence[str] = False
    strict_mode_validators: Sequence[Validator] = ()
    validation_policy: ValidationPolicy | None = None
    max_bad_messages: float = math.inf
    respond_with_detailed_errors: bool = False
    close_timeout: float = 5.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_inbound_call_rate: float = math.inf
    inbound_call_burst: int | None = None
    max_pending_calls: float = 1000
    registration_gate: RegistrationGate | None = None

    def __post_init__(self) -> None:
        gate: object = self.registration_gate
        if gate is True:
            object.__setattr__(self, "registration_gate", RegistrationGate())
        elif gate is False:
            object.__setattr__(self, "registration_gate", None)
        elif gate is not None and not isinstance(gate, RegistrationGate):
            raise TypeError(f"registration_gate takes a RegistrationGate or True, got {gate!r}")
        for name in ("call_timeout", "pong_timeout", "close_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        if not self.ping_interval >= 0:
            raise ValueError(f"ping_interval must be >= 0, got {self.ping_interval!r}")
        for name in ("call_concurrency", "inbound_call_concurrency", "max_message_size"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.max_inbound_call_rate > 0:
            raise ValueError(
                f"max_inbound_call_rate must be > 0 calls per second, got {self.max_inbound_call_rate!r}"
            )
        burst = self.inbound_call_burst
        if burst is not None and not (isinstance(burst, int) and burst >= 1):
            raise ValueError(f"inbound_call_burst must be None or an integer >= 1, got {burst!r}")
        pending = self.max_pending_calls
        if not (pending == math.inf or (isinstance(pending, int) and pending >= 1)):
            raise ValueError(
                f"max_pending_calls must be an integer >= 1 or math.inf, got {pending!r}"
            )
        if not self.max_bad_messages >= 0:
            raise ValueError(f"max_bad_messages must be >= 0, got {self.max_bad_messages!r}")
        policy = self.validation_policy
        if policy is not None and not isinstance(policy, ValidationPolicy):
            raise TypeError(
                f"validation_policy must be a ValidationPolicy or None, got {type(policy).__name__}"
            )
        if isinstance(self.strict_mode, str):
            raise TypeError("strict_mode takes True/False or a list of protocols, not a string")

    @property
    def inbound_call_capacity(self) -> float:
        """The size of the inbound call-rate bucket (see ``inbound_call_burst``)."""
        if self.inbound_call_burst is not None:
            return float(self.inbound_call_burst)
        rate = self.max_inbound_call_rate
        return rate if rate == math.inf else float(max(1, math.ceil(rate)))

    @property
    def pings_enabled(self) -> bool:
        """Whether the pinger runs."""
        return 0 < self.ping_interval < math.inf

    def replace(self, **changes: Unpack[ConnectionKwargs]) -> ConnectionOptions:
        """Return a copy with ``changes``; unknown names raise TypeError."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        # registration_gate=True/False is a shorthand __post_init__ turns into a gate or None
        return dataclasses.replace(self, **cast("dict[str, Any]", changes))


class ConnectionKwargs(TypedDict, total=False):
    """The connection options as keyword arguments, every one optional.

    What ``open_ocpp_client``, ``OCPPServer``, ``serve_ocpp`` and
    ``reconfigure()`` take as keywords to set a :class:`ConnectionOptions`
    field (see there for what each does and its default).  A type checker
    flags a misspelt name (``call_timout=5``) or a value of the wrong type;
    at run time an unknown name raises ``TypeError``.  Spread a dict of them
    to share settings::

        common: ConnectionKwargs = {"call_timeout": 10, "strict_mode": True}
        async with open_ocpp_client(url, identity="CP1", **common) as client: ...
    """

    call_timeout: float
    call_concurrency: int
    inbound_call_concurrency: int
    ping_interval: float
    pong_timeout: float
    defer_pings_on_activity: bool
    strict_mode: bool | Sequence[str]
    strict_mode_validators: Sequence[Validator]
    validation_policy: ValidationPolicy | None
    max_bad_messages: float
    respond_with_detailed_errors: bool
    close_timeout: float
    max_message_size: int
    max_inbound_call_rate: float
    inbound_call_burst: int | None
    max_pending_calls: float
    registration_gate: RegistrationGate | bool | None


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(ConnectionOptions))


def split_options(kwargs: dict[str, Any]) -> tuple[ConnectionOptions, dict[str, Any]]:
    """Take the connection options out of ``kwargs``; return them and the rest."""
    mine = {k: kwargs.pop(k) for k in list(kwargs) if k in OPTION_NAMES}
    return ConnectionOptions(**mine), kwargs
