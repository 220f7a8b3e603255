"""gRPC over HTTP/2 as its spec (PROTOCOL-HTTP2.md) defines it: status codes, length-prefixed
messages, ``grpc-timeout`` and the percent-encoded ``grpc-message``."""

from __future__ import annotations

import zlib
from enum import IntEnum
from urllib.parse import quote, unquote

MAX_MESSAGE = 4 * 1024 * 1024  # grpc's default receive limit; mappers and edgecore agree on it


class StatusCode(IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class RpcError(Exception):
    """A call that ended with a non-OK status; raised by handlers to fail a call, and by the client."""

    def __init__(self, code: StatusCode, details: str = "") -> None:
        super().__init__(f"{code.name}: {details}" if details else code.name)
        self.code = code
        self.details = details


# HTTP status -> gRPC status for responses that are not gRPC at all (the spec's mapping).
HTTP_TO_GRPC = {
    400: StatusCode.INTERNAL,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED,
    429: StatusCode.UNAVAILABLE,
    502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.UNAVAILABLE,
}

_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_timeout(value: str) -> float | None:
    """``grpc-timeout`` (e.g. ``9999m``) in seconds; None when malformed (then there is no deadline)."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


def format_timeout(seconds: float) -> str:
    """At most 8 digits, as the spec requires: milliseconds, or whole seconds for long deadlines."""
    ms = max(0, int(seconds * 1000))
    return f"{ms}m" if ms < 100_000_000 else f"{min(int(seconds), 99_999_999)}S"


_MESSAGE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if c != 0x25)  # printable ASCII but '%'


def encode_message_text(text: str) -> str:
    return quote(text, safe=_MESSAGE_SAFE)


def decode_message_text(text: str) -> str:
    return unquote(text, errors="replace")


def frame_message(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def decompress(payload: bytes, encoding: str, limit: int) -> bytes:
    """A compressed message (flag 1) in the stream's ``grpc-encoding``, at most ``limit`` bytes once
    decompressed: the limit is checked while decompressing, so a small bomb never becomes a large buffer."""
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=31)
    elif encoding == "deflate":
        inflater = zlib.decompressobj()
    elif encoding == "identity":
        raise RpcError(StatusCode.INTERNAL, "compressed message flag set, but grpc-encoding is identity")
    else:
        raise RpcError(StatusCode.UNIMPLEMENTED, f"message compressed with unsupported encoding {encoding!r}")
    try:
        out = inflater.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise RpcError(StatusCode.INTERNAL, f"invalid {encoding} message: {exc}") from None
    if len(out) > limit:
        raise RpcError(
            StatusCode.RESOURCE_EXHAUSTED,
            f"{encoding} message decompresses to more than the limit of {limit} bytes",
        )
    if not inflater.eof:
        raise RpcError(StatusCode.INTERNAL, f"truncated {encoding} message")
    return out


class MessageReader:
    """Splits a stream's DATA into length-prefixed messages; enforces the size limit, compressed and not."""

    __slots__ = ("_buf", "encoding", "limit")

    def __init__(self, encoding: str = "identity", limit: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self.encoding = encoding
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while len(buf) >= 5:
            length = int.from_bytes(buf[1:5], "big")
            if length > self.limit:
                raise RpcError(
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"message of {length} bytes is larger than the limit of {self.limit}",
                )
            if len(buf) < 5 + length:
                break
            compressed = buf[0]
            payload = bytes(buf[5 : 5 + length])
            del buf[: 5 + length]
            out.append(decompress(payload, self.encoding, self.limit) if compressed else payload)
        return out

    @property
    def held(self) -> int:
        """Bytes of an incomplete message kept until the rest arrives."""
        return len(self._buf)

    @property
    def partial(self) -> bool:
        return bool(self._buf)
