"""The CSMS's registration gate: no CALL but BootNotification from a station not accepted.

OCPP 2.0.1 B01.FR.10 (and B02.FR.09 / B03.FR.08 for ``Pending`` and
``Rejected``): a CSMS answers any CALL other than BootNotificationRequest from
a station it has not accepted with a CALLERROR ``SecurityError``.  OCPP 1.6
§4.2 says the same of a Charge Point not accepted (it "SHALL NOT send any
other request"); a Central System enforcing it uses the same error.

A gate remembers the stations answered ``Accepted`` across their
connections (a station that reconnects does not boot again); a station
answered ``Pending`` or ``Rejected`` later is no longer accepted.  Give it
``is_known`` to accept stations registered before this process started (from
your database), and share one gate between the servers of one CSMS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, final


@final
class RegistrationGate:
    """Which stations a CSMS has accepted; pass as ``registration_gate=`` to the server.

    Args:
        accepted: identities accepted already.
        is_known: called for an identity not accepted in this process; True
            accepts it (e.g. a lookup of your registration table).
    """

    __slots__ = ("_accepted", "_is_known")

    def __init__(
        self,
        accepted: Iterable[str] = (),
        *,
        is_known: Callable[[str], bool] | None = None,
    ) -> None:
        self._accepted = set(accepted)
        self._is_known = is_known

    def __repr__(self) -> str:
        return f"<RegistrationGate accepted={len(self._accepted)}>"

    def is_accepted(self, identity: str) -> bool:
        """Whether ``identity`` may send CALLs other than BootNotification."""
        if identity in self._accepted:
            return True
        if self._is_known is not None and self._is_known(identity):
            self._accepted.add(identity)
            return True
        return False

    def accept(self, identity: str) -> None:
        """Mark ``identity`` accepted (as an ``Accepted`` BootNotification answer does)."""
        self._accepted.add(identity)

    def revoke(self, identity: str) -> None:
        """Forget ``identity``'s acceptance (as a ``Pending``/``Rejected`` answer does)."""
        self._accepted.discard(identity)

    def observe(self, identity: str, result: Mapping[str, Any]) -> None:
        """Take note of the BootNotification answer the CSMS sends ``identity``."""
        status = result.get("status")
        if status == "Accepted":
            self.accept(identity)
        elif status in ("Pending", "Rejected"):
            self.revoke(identity)
