"""devicecontroller: Devices and DeviceModels down to their nodes; twins and states up into DeviceStatus."""

from cloudcore.devicecontroller._controller import DEVICEMODELS, DEVICES, DEVICESTATUSES, DeviceController
from cloudcore.devicecontroller._status import StatusWriter

__all__ = ["DEVICEMODELS", "DEVICES", "DEVICESTATUSES", "DeviceController", "StatusWriter"]
