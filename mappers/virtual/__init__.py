"""The virtual mapper: simulated properties (constants, random walks, sine waves, counters)."""

from mappers.virtual.driver import VirtualDriver

Driver = VirtualDriver

__all__ = ["Driver", "VirtualDriver"]
