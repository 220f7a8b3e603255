"""The Modbus TCP mapper (pymodbus): coils, discrete inputs, holding and input registers."""

from mappers.modbus.driver import ModbusDriver

Driver = ModbusDriver

__all__ = ["Driver", "ModbusDriver"]
