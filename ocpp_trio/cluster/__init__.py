"""Clustering: several CSMS instances that reach each other's stations.

``server.set_adapter(RedisAdapter("redis://..."))`` before serving; then
``server.call_station``, ``server.publish``/``subscribe`` and
``server.locate_station`` work across every instance sharing that Redis.
Without an adapter a server is a cluster of one (``LocalAdapter``).
"""

from ._errors import ClusterError as ClusterError
from ._errors import ClusterUnavailable as ClusterUnavailable
from ._errors import InstanceGone as InstanceGone
from ._errors import RemoteError as RemoteError
from ._errors import StationOffline as StationOffline
from ._interface import ClaimResult as ClaimResult
from ._interface import ClusterAdapter as ClusterAdapter
from ._interface import ClusterMessage as ClusterMessage
from ._interface import ClusterNode as ClusterNode
from ._interface import Holder as Holder
from ._local import LocalAdapter as LocalAdapter
from ._local import LocalHub as LocalHub
from ._redis import RedisAdapter as RedisAdapter

__all__ = [
    "ClaimResult",
    "ClusterAdapter",
    "ClusterError",
    "ClusterMessage",
    "ClusterNode",
    "ClusterUnavailable",
    "Holder",
    "InstanceGone",
    "LocalAdapter",
    "LocalHub",
    "RedisAdapter",
    "RemoteError",
    "StationOffline",
]
