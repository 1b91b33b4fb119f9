"""Typed validation policies: outcomes, relaxations and the errors of a CALLERROR.

Checked, not run: ``make typecheck`` runs mypy --strict and pyright over this
folder.  The ``type: ignore`` lines must fail (``warn_unused_ignores`` would
say if they stopped failing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, assert_type

from ocpp_trio import (
    SCHEMA_VARIANTS,
    AuthAccept,
    CallErrorReceived,
    OCPPConnection,
    PolicyRule,
    ValidationPolicy,
    Validator,
    get_validator,
)


def policies(conn: OCPPConnection) -> None:
    lenient = ValidationPolicy(
        [
            PolicyRule("report", action="MeterValues", rule="additionalProperties"),
            PolicyRule("ignore", protocol="ocpp1.6", direction="request"),
        ],
        default="reject",
        relaxations={"numbers_as_strings", "enum_case"},
    )
    conn.reconfigure(validation_policy=lenient)
    assert_type(conn.validation_counts, Mapping[str, int])
    assert_type(
        lenient.outcome("ocpp1.6", "MeterValues", "request", "enum"),
        Literal["reject", "report", "ignore"],
    )
    AuthAccept(options={"validation_policy": lenient})
    earlier = get_validator("ocpp1.6", variant="pre-errata")
    assert_type(earlier, Validator)
    assert_type(earlier.variant, str | None)
    assert_type(SCHEMA_VARIANTS["ocpp1.6"], tuple[str, ...])
    PolicyRule("allow")  # type: ignore[arg-type]
    ValidationPolicy(relaxations={"be_nice"})  # type: ignore[arg-type]


def peer_errors(err: CallErrorReceived) -> None:
    assert_type(err.details, dict[str, Any])
    assert_type(err.raw_details, Any)
    assert_type(err.malformed, bool)
