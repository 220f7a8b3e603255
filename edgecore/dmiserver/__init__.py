"""DMI on the edge: DeviceManagerService for mappers, and the client side that drives each mapper."""

from edgecore.dmiserver._registry import MAPPER_ANNOTATION, Mapper, MapperRegistry
from edgecore.dmiserver._server import DEFAULT_SOCKET, DmiServer, socket_path

__all__ = ["DEFAULT_SOCKET", "MAPPER_ANNOTATION", "DmiServer", "Mapper", "MapperRegistry", "socket_path"]
