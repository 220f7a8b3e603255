"""The KubeEdge (beehive) message envelope and resource strings, shared by cloudcore and edgecore.

One JSON message per websocket frame::

    {"header": {"msg_id", "parent_msg_id", "timestamp" (ms), "resourceversion", "sync"},
     "route": {"source", "group", "operation", "resource"},
     "content": <any JSON>}

``content`` may be an object or a string that itself holds JSON (KubeEdge sends both);
:meth:`Message.content_data` accepts either.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Operations (beehive model constants and the edge/cloudhub extras).
OP_INSERT = "insert"
OP_UPDATE = "update"
OP_DELETE = "delete"
OP_PATCH = "patch"
OP_QUERY = "query"
OP_UPLOAD = "upload"
OP_RESPONSE = "response"
OP_ERROR = "error"
OP_KEEPALIVE = "keepalive"
OP_CONNECTED = "connected"
OP_DISCONNECTED = "disconnected"
OP_GET = "get"
OP_LIST = "list"

# Groups.
GROUP_RESOURCE = "resource"
GROUP_TWIN = "twin"
GROUP_USER = "user"
GROUP_META = "meta"
GROUP_HUB = "hub"

# Module names used as route sources.
SOURCE_CLOUDHUB = "cloudhub"
SOURCE_EDGECONTROLLER = "edgecontroller"
SOURCE_DEVICECONTROLLER = "devicecontroller"
SOURCE_EDGEHUB = "websocket"
SOURCE_METAMANAGER = "metamanager"
SOURCE_EDGED = "edged"
SOURCE_TWIN = "twin"

# Resource types.
RT_POD = "pod"
RT_CONFIGMAP = "configmap"
RT_SECRET = "secret"
RT_SERVICE = "service"
RT_ENDPOINTS = "endpoints"
RT_ENDPOINTSLICE = "endpointslice"
RT_NODE = "node"
RT_NODESTATUS = "nodestatus"
RT_PODSTATUS = "podstatus"
RT_DEVICE = "device"
RT_DEVICEMODEL = "devicemodel"

NULL_NAMESPACE = "null"
ACK_OK = "OK"

_KNOWN_OPERATIONS = frozenset(
    {
        OP_INSERT,
        OP_UPDATE,
        OP_DELETE,
        OP_PATCH,
        OP_QUERY,
        OP_UPLOAD,
        OP_RESPONSE,
        OP_ERROR,
        OP_KEEPALIVE,
        OP_CONNECTED,
        OP_DISCONNECTED,
        OP_GET,
        OP_LIST,
        "get_result",
        "message",
        "publish",
        "subscribe",
        "unsubscribe",
        "connect",
        "detail",
        "delta",
        "document",
        "updated",
        "deleted",
        "unhold-upgrade",
        "applicationResponse",
    }
)


def is_known_operation(operation: str) -> bool:
    return operation in _KNOWN_OPERATIONS


class MessageError(ValueError):
    """A frame is not a valid message; the text says what is wrong with it."""


def now_ms() -> int:
    return int(time.time() * 1000)


class MessageHeader(BaseModel):
    model_config = ConfigDict(extra="ignore")

    msg_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    parent_msg_id: str = ""
    timestamp: int = Field(default_factory=now_ms)
    resourceversion: str = ""
    sync: bool = False
    type: str = ""


class MessageRoute(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source: str = ""
    destination: str = ""
    group: str = ""
    operation: str = ""
    resource: str = ""


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    header: MessageHeader = Field(default_factory=MessageHeader)
    route: MessageRoute = Field(default_factory=MessageRoute)
    content: Any = None

    @classmethod
    def new(
        cls,
        *,
        source: str,
        group: str,
        operation: str,
        resource: str,
        content: Any = None,
        resourceversion: str = "",
        parent_msg_id: str = "",
    ) -> Message:
        return cls(
            header=MessageHeader(resourceversion=resourceversion, parent_msg_id=parent_msg_id),
            route=MessageRoute(source=source, group=group, operation=operation, resource=resource),
            content=content,
        )

    def response(self, content: Any = ACK_OK, *, source: str | None = None) -> Message:
        """The reply to this message (KubeEdge ``NewRespByMessage``): same route, op ``response``."""
        return Message(
            header=MessageHeader(parent_msg_id=self.header.msg_id),
            route=MessageRoute(
                source=source or self.route.source,
                group=self.route.group,
                operation=OP_RESPONSE,
                resource=self.route.resource,
            ),
            content=content,
        )

    # Accessors in KubeEdge's naming, for readability at call sites.
    @property
    def msg_id(self) -> str:
        return self.header.msg_id

    @property
    def operation(self) -> str:
        return self.route.operation

    @property
    def resource(self) -> str:
        return self.route.resource

    def content_data(self) -> Any:
        """The content as JSON data, whether it was sent as an object or as a JSON string."""
        c = self.content
        if isinstance(c, str):
            try:
                return json.loads(c)
            except (ValueError, RecursionError):
                return c  # not JSON (or nested past the parser's limit): the caller sees a string
        return c

    def to_json(self) -> str:
        h = self.header
        header: dict[str, Any] = {"msg_id": h.msg_id}
        if h.parent_msg_id:
            header["parent_msg_id"] = h.parent_msg_id
        header["timestamp"] = h.timestamp
        if h.resourceversion:
            header["resourceversion"] = h.resourceversion
        if h.sync:
            header["sync"] = True
        r = self.route
        route = {k: v for k, v in (("source", r.source), ("destination", r.destination),
                                   ("group", r.group), ("operation", r.operation),
                                   ("resource", r.resource)) if v}  # fmt: skip
        return json.dumps({"header": header, "route": route, "content": self.content}, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | bytes) -> Message:
        return cls.from_data(parse_frame(data))

    @classmethod
    def from_data(cls, raw: dict[str, Any]) -> Message:
        """A message from an already parsed frame (see :func:`parse_frame`)."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise MessageError(f"invalid message field {where}: {first['msg']}") from exc


def parse_frame(data: str | bytes) -> dict[str, Any]:
    """Parse a frame into its JSON object, checking only its shape; hot paths (ACKs) read it directly."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"frame is not JSON: {exc}") from exc
    except RecursionError:
        # The C parser recurses per nesting level: a peer's 100,000 brackets must not be a traceback.
        raise MessageError("frame is not JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise MessageError(f"frame must be a JSON object, not {type(raw).__name__}")
    if not isinstance(raw.get("route"), dict):
        raise MessageError("frame has no route object")
    if not isinstance(raw.get("header", {}), dict):
        raise MessageError("frame header must be an object")
    return raw


def encode_with_raw_content(
    *,
    msg_id: str,
    source: str,
    group: str,
    operation: str,
    resource: str,
    resourceversion: str,
    content_json: str,
) -> str:
    """Encode a message whose content is already JSON text (fan-out: serialize an object once).

    ``msg_id`` and ``resourceversion`` must be plain tokens (a UUID, digits); the rest is escaped.
    """
    rv = f',"resourceversion":"{resourceversion}"' if resourceversion else ""
    return (
        f'{{"header":{{"msg_id":"{msg_id}","timestamp":{now_ms()}{rv}}},'
        f'"route":{{"source":{json.dumps(source)},"group":{json.dumps(group)},'
        f'"operation":{json.dumps(operation)},"resource":{json.dumps(resource)}}},'
        f'"content":{content_json}}}'
    )


# Resource strings (section 3.2): inside cloudcore `node/<node>/<ns>/<type>[/<name>]`; on the wire
# to and from the edge without the `node/<node>/` prefix.


def build_resource(node: str, namespace: str | None, resource_type: str, name: str = "") -> str:
    ns = namespace or NULL_NAMESPACE
    out = f"node/{node}/{ns}/{resource_type}"
    return f"{out}/{name}" if name else out


def edge_resource(namespace: str | None, resource_type: str, name: str = "") -> str:
    ns = namespace or NULL_NAMESPACE
    return f"{ns}/{resource_type}/{name}" if name else f"{ns}/{resource_type}"


def trim_node_prefix(resource: str) -> tuple[str, str]:
    """``node/<node>/rest`` -> (node, rest); raises MessageError for anything else."""
    parts = resource.split("/", 2)
    if len(parts) < 3 or parts[0] != "node" or not parts[1]:
        raise MessageError(f"resource {resource!r} does not start with node/<name>/")
    return parts[1], parts[2]


class EdgeResource(BaseModel):
    """A parsed edge-relative resource ``<ns>/<type>/<name>`` (``ParseResourceEdge``)."""

    namespace: str
    resource_type: str
    name: str = ""

    @property
    def cluster_scoped(self) -> bool:
        return self.namespace == NULL_NAMESPACE

    def key(self) -> str:
        return edge_resource(self.namespace, self.resource_type, self.name)


def parse_edge_resource(resource: str, operation: str = "") -> EdgeResource:
    parts = resource.split("/")
    if len(parts) >= 3 and all(parts[:3]):
        return EdgeResource(namespace=parts[0], resource_type=parts[1], name="/".join(parts[2:]))
    if len(parts) == 2 and all(parts) and operation in (OP_QUERY, OP_RESPONSE, OP_LIST, OP_GET):
        return EdgeResource(namespace=parts[0], resource_type=parts[1])
    raise MessageError(f"resource {resource!r} is not <namespace>/<type>/<name>")
