"""devicecontroller: Devices and DeviceModels down to their nodes; twins and states up into DeviceStatus."""

from cloudcore.devicecontroller._status import StatusWriter

__all__ = ["StatusWriter"]
