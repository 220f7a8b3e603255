"""The MQTT 3.1.1 packets kubeshore's client uses, encoded and decoded (OASIS MQTT 3.1.1, section 3).

Encoders return ``bytes`` ready for the transport. Decoding works on a receive buffer and offsets so
a buffer holding many packets is split without copying each packet first.
"""

from __future__ import annotations

from collections.abc import Iterator

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

DUP_FLAG = 0x08
SUBACK_FAILURE = 0x80
MAX_REMAINING_LENGTH = 268_435_455  # four bytes of variable-length integer

CONNACK_REFUSED = {
    1: "unacceptable protocol version (the broker does not speak MQTT 3.1.1)",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

_ONE_BYTE_LENGTHS = [bytes((n,)) for n in range(128)]


class ProtocolError(Exception):
    """The broker sent something MQTT 3.1.1 does not allow; the connection is dropped."""


class PacketTooLarge(Exception):
    """A packet whose declared length is over the receive limit: raised as soon as its fixed header is
    read, so the caller can skip its body instead of buffering it."""

    def __init__(self, first: int, header_start: int, body_start: int, length: int) -> None:
        super().__init__(f"packet of {length} bytes")
        self.first = first
        self.header_start = header_start
        self.body_start = body_start
        self.length = length


def remaining_length(n: int) -> bytes:
    """The fixed header's variable-length integer: 7 bits per byte, high bit = more bytes follow."""
    if n < 128:
        return _ONE_BYTE_LENGTHS[n]
    if n > MAX_REMAINING_LENGTH:
        raise ValueError(f"MQTT packet of {n} bytes is larger than the protocol allows")
    out = bytearray()
    while n:
        n, digit = divmod(n, 128)
        out.append(digit | 0x80 if n else digit)
    return bytes(out)


def length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def encode_connect(
    client_id: str, keepalive: int, username: str | None = None, password: str | None = None
) -> bytes:
    # protocol name "MQTT", level 4 (3.1.1), flags: clean session, no will; user name and password
    # when given (3.1.1 allows a password only with a user name)
    flags = 0x02
    payload = length_prefixed(client_id.encode())
    if username is not None:
        flags |= 0x80
        payload += length_prefixed(username.encode())
        if password is not None:
            flags |= 0x40
            payload += length_prefixed(password.encode())
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + keepalive.to_bytes(2, "big") + payload
    return bytes((CONNECT << 4,)) + remaining_length(len(body)) + body


def publish_header(qos: int, retain: bool, body_length: int) -> bytes:
    return bytes((PUBLISH << 4 | qos << 1 | retain,)) + remaining_length(body_length)


def encode_publish(encoded_topic: bytes, payload: bytes, qos: int, retain: bool, packet_id: int) -> bytes:
    """A whole PUBLISH; ``encoded_topic`` is the length-prefixed topic name."""
    if qos:
        body_length = len(encoded_topic) + 2 + len(payload)
        return b"".join(
            (
                publish_header(qos, retain, body_length),
                encoded_topic,
                packet_id.to_bytes(2, "big"),
                payload,
            )
        )
    return b"".join((publish_header(0, retain, len(encoded_topic) + len(payload)), encoded_topic, payload))


def encode_subscribe(packet_id: int, filters: list[bytes], qos: int) -> bytes:
    """One SUBSCRIBE for several filters (UTF-8 encoded), each asking for ``qos``."""
    body = packet_id.to_bytes(2, "big") + b"".join(length_prefixed(f) + bytes((qos,)) for f in filters)
    # SUBSCRIBE's fixed header has the reserved flags 0b0010 (spec 3.8.1).
    return bytes((SUBSCRIBE << 4 | 0x02,)) + remaining_length(len(body)) + body


def encode_puback(packet_id: int) -> bytes:
    return b"\x40\x02" + packet_id.to_bytes(2, "big")


def split_packets(
    buf: bytes | bytearray, max_length: int = MAX_REMAINING_LENGTH, pos: int = 0
) -> Iterator[tuple[int, int, int]]:
    """Yield ``(first byte, body start, body end)`` for every complete packet in ``buf`` from ``pos``.

    Stops at the first incomplete packet; the caller keeps the bytes after the last yielded end.
    Raises ``PacketTooLarge`` at a packet longer than ``max_length`` without waiting for its body.
    """
    size = len(buf)
    while size - pos >= 2:
        length = 0
        shift = 0
        i = pos + 1
        while True:
            if i >= size:
                return
            byte = buf[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 21:
                raise ProtocolError("remaining length longer than four bytes")
        if length > max_length:
            raise PacketTooLarge(buf[pos], pos, i, length)
        end = i + length
        if end > size:
            return
        yield buf[pos], i, end
        pos = end


def decode_publish(first: int, buf: bytes | bytearray, start: int, end: int) -> tuple[str, int, bytes]:
    """``(topic, packet id or 0, payload)`` of the PUBLISH in ``buf[start:end]``."""
    qos = (first >> 1) & 0x03
    if end - start < 2:
        raise ProtocolError("PUBLISH without a topic")
    topic_end = start + 2 + (buf[start] << 8 | buf[start + 1])
    if topic_end > end:
        raise ProtocolError("PUBLISH topic runs past the packet")
    try:
        topic = buf[start + 2 : topic_end].decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"PUBLISH topic is not UTF-8: {exc}") from None
    if qos == 0:
        return topic, 0, bytes(buf[topic_end:end])
    if qos > 1:
        raise ProtocolError(f"PUBLISH with QoS {qos}, but every subscription asked for at most QoS 1")
    if topic_end + 2 > end:
        raise ProtocolError("PUBLISH QoS 1 without a packet identifier")
    packet_id = buf[topic_end] << 8 | buf[topic_end + 1]
    return topic, packet_id, bytes(buf[topic_end + 2 : end])


def decode_packet_id(buf: bytes | bytearray, start: int, end: int) -> int:
    if end - start < 2:
        raise ProtocolError("packet without its packet identifier")
    return buf[start] << 8 | buf[start + 1]
