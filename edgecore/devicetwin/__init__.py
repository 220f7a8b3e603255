"""DeviceTwin: devices, models and twins on the edge; KubeEdge's MQTT twin API; sync to the cloud."""

from edgecore.devicetwin._manager import CloudSender, DeviceListener, DeviceTwin, Publisher
from edgecore.devicetwin._state import Change, Device, Twin, TwinError
from edgecore.devicetwin._store import StoreUnavailable, TwinStore, open_engine

__all__ = [
    "Change",
    "CloudSender",
    "Device",
    "DeviceListener",
    "DeviceTwin",
    "Publisher",
    "StoreUnavailable",
    "Twin",
    "TwinError",
    "TwinStore",
    "open_engine",
]
