"""Mappers, the protocol drivers that talk to devices: the SDK a protocol author writes a driver with
(``mappers.sdk``) and the reference mappers built on it (virtual, Modbus TCP, OPC UA)."""
