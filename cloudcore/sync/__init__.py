"""Reliable sync: per-node acknowledged versions (ObjectSync) and the syncer that uses them."""

from cloudcore.sync._store import ObjectSyncStore, SyncedObject, sync_name
from cloudcore.sync._syncer import NodeSyncer, ObjectSource, resource_type_of

__all__ = ["NodeSyncer", "ObjectSource", "ObjectSyncStore", "SyncedObject", "resource_type_of", "sync_name"]
