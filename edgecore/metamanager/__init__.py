"""metamanager: the edge store of everything received from the cloud, and (later) its MetaServer."""

from edgecore.metamanager._manager import MetaManager
from edgecore.metamanager._store import (
    Change,
    EdgeStore,
    StoreOpenError,
    gvr_of,
    object_key,
    open_error,
    plural_of,
)

__all__ = [
    "Change",
    "EdgeStore",
    "MetaManager",
    "StoreOpenError",
    "gvr_of",
    "object_key",
    "open_error",
    "plural_of",
]
