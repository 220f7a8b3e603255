"""The OPC UA mapper (asyncua): node reads and writes, subscriptions where the server offers them."""

from mappers.opcua.driver import OpcUaDriver

Driver = OpcUaDriver

__all__ = ["Driver", "OpcUaDriver"]
