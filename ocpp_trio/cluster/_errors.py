"""The errors of the cluster layer; all share the root ``OCPPError``."""

from __future__ import annotations

from .._core.errors import OCPPError


class ClusterError(OCPPError):
    """The root of the cluster layer's own errors."""


class ClusterUnavailable(ClusterError):
    """The shared backend (Redis) cannot be reached; local stations keep working.

    Raised at once (or within the adapter's ``op_timeout``) by cluster
    operations while the backend is down; they work again on their own once
    it is back.
    """


class StationOffline(ClusterError):
    """No instance of the cluster holds a connection of this station.

    Attributes:
        identity: the station identity.
    """

    def __init__(self, identity: str, message: str = "") -> None:
        self.identity = identity
        super().__init__(message or f"station {identity!r} is not connected to any instance")


class InstanceGone(StationOffline):
    """The instance that held the station stopped answering (it died or lost the backend).

    Attributes:
        identity: the station identity ("" for a request not about a station).
        instance: the instance that is gone.
    """

    def __init__(self, instance: str, identity: str = "") -> None:
        self.instance = instance
        what = f"station {identity!r}: " if identity else ""
        super().__init__(identity, f"{what}instance {instance!r} is gone (its presence expired)")


class RemoteError(ClusterError):
    """The instance holding the station failed in a way that has no better type.

    Attributes:
        kind: the name of the exception type on the remote instance.
    """

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(f"remote instance raised {kind}: {message}")
