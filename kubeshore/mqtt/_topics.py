"""MQTT 3.1.1 topic names and topic filters: validation and matching (spec section 4.7)."""

from __future__ import annotations

MAX_TOPIC_BYTES = 65535


def _check_common(kind: str, text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"MQTT {kind} must be a str, not {type(text).__name__}")
    if not text:
        raise ValueError(f"MQTT {kind} must not be empty")
    if "\x00" in text:
        raise ValueError(f"MQTT {kind} {text!r} contains a NUL character")
    encoded = text.encode()
    if len(encoded) > MAX_TOPIC_BYTES:
        raise ValueError(f"MQTT {kind} is {len(encoded)} bytes of UTF-8, more than {MAX_TOPIC_BYTES}")
    return encoded


def encode_topic_name(topic: str) -> bytes:
    """A topic to publish to, UTF-8 encoded; ValueError names what is wrong with it."""
    encoded = _check_common("topic", topic)
    if "+" in topic or "#" in topic:
        raise ValueError(f"MQTT topic {topic!r}: wildcards (+, #) are only allowed in subscriptions")
    return encoded


def encode_topic_filter(topic_filter: str) -> bytes:
    """A subscription filter, UTF-8 encoded; ``+`` and ``#`` must each fill a whole level."""
    encoded = _check_common("topic filter", topic_filter)
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"MQTT topic filter {topic_filter!r}: '#' must be the whole last level")
        if "+" in level and level != "+":
            raise ValueError(f"MQTT topic filter {topic_filter!r}: '+' must be a whole level")
    return encoded


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter``.

    Wildcards in the first level never match topics starting with ``$`` (spec 4.7.2): ``#`` does not
    see ``$SYS/...`` nor ``$hw/...``; a filter that names ``$hw`` literally does.
    """
    filter_levels = topic_filter.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    topic_levels = topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True  # also matches the parent level: "a/#" matches "a"
        if i >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)
