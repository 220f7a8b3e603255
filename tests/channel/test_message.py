import json

import pytest

from kubeshore.message import (
    Message,
    MessageError,
    build_resource,
    edge_resource,
    encode_with_raw_content,
    parse_edge_resource,
    trim_node_prefix,
)


def test_envelope_round_trip_uses_kubeedge_field_names() -> None:
    msg = Message.new(
        source="edgecontroller",
        group="resource",
        operation="insert",
        resource="default/pod/nginx",
        content={"metadata": {"name": "nginx"}},
        resourceversion="12",
    )
    raw = json.loads(msg.to_json())
    assert set(raw) == {"header", "route", "content"}
    assert raw["header"]["resourceversion"] == "12"
    assert len(raw["header"]["msg_id"]) == 36
    assert raw["header"]["timestamp"] > 1_600_000_000_000  # milliseconds
    assert raw["route"] == {
        "source": "edgecontroller",
        "group": "resource",
        "operation": "insert",
        "resource": "default/pod/nginx",
    }
    back = Message.from_json(msg.to_json())
    assert back == msg


def test_content_may_be_a_json_string() -> None:
    frame = json.dumps(
        {"header": {"msg_id": "a", "timestamp": 1}, "route": {"operation": "update"}, "content": '{"x": 1}'}
    )
    msg = Message.from_json(frame)
    assert msg.content == '{"x": 1}'
    assert msg.content_data() == {"x": 1}
    assert Message.from_json(json.dumps({"route": {}, "content": "OK"})).content_data() == "OK"


def test_response_points_at_parent() -> None:
    msg = Message.new(source="edgecontroller", group="resource", operation="insert", resource="ns/pod/p")
    ack = msg.response()
    assert ack.header.parent_msg_id == msg.header.msg_id
    assert ack.route.operation == "response"
    assert ack.content == "OK"
    assert ack.route.resource == "ns/pod/p"


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json", "not JSON"),
        ("[1,2]", "must be a JSON object"),
        ('{"header": {}}', "no route"),
        ('{"route": {}, "header": {"timestamp": "soon"}}', "header.timestamp"),
    ],
)
def test_malformed_frames_are_named(frame: str, error: str) -> None:
    with pytest.raises(MessageError, match=error):
        Message.from_json(frame)


def test_raw_content_encoding_matches_model() -> None:
    frame = encode_with_raw_content(
        msg_id="m1",
        source="edgecontroller",
        group="resource",
        operation="update",
        resource="default/configmap/c",
        resourceversion="5",
        content_json='{"a":1}',
    )
    msg = Message.from_json(frame)
    assert msg.header.msg_id == "m1"
    assert msg.header.resourceversion == "5"
    assert msg.content == {"a": 1}


def test_resource_strings() -> None:
    assert build_resource("edge1", "default", "pod", "nginx") == "node/edge1/default/pod/nginx"
    assert build_resource("edge1", None, "node", "edge1") == "node/edge1/null/node/edge1"
    assert trim_node_prefix("node/edge1/default/pod/nginx") == ("edge1", "default/pod/nginx")
    assert edge_resource(None, "nodestatus", "e") == "null/nodestatus/e"
    r = parse_edge_resource("default/pod/nginx")
    assert (r.namespace, r.resource_type, r.name) == ("default", "pod", "nginx")
    assert parse_edge_resource("default/podlist", "query").name == ""
    with pytest.raises(MessageError):
        parse_edge_resource("default/pod")
    with pytest.raises(MessageError):
        trim_node_prefix("default/pod/x")
