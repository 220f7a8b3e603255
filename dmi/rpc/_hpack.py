"""HPACK (RFC 7541) for gRPC's header blocks.

Decoding is complete (indexed fields, literals with and without indexing, dynamic table size
updates, Huffman strings), because peers — grpc-go, grpc C core — use all of it. Encoding only
emits static-table references and literals without indexing, never Huffman: always valid,
keeps no state shared with the peer, and our header blocks are a handful of short fields.
Huffman decoding uses the ``hpack`` package's table. Nothing decoded is cached beyond the
connection's own dynamic table: a cache keyed on the peer's bytes is memory the peer controls
(100 distinct 1 MiB values once kept 143 MB alive after their connection ended); peers that repeat
a value index it in the dynamic table, which HPACK bounds.

The decoded header list is bounded too (``Decoder.max_list_size``, counted as RFC 9113 §6.5.2 does:
name + value + 32 per field): a block over it is still decoded to the end, so the dynamic table stays
in step with the peer's, and then refused with ``HeaderListTooLarge``, a stream-level error.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

from hpack.huffman_table import decode_huffman

Header = tuple[str, str]

STATIC_TABLE: tuple[Header, ...] = (
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
)
_STATIC_FULL = {h: i + 1 for i, h in reversed(list(enumerate(STATIC_TABLE)))}
_STATIC_NAME = {h[0]: i + 1 for i, h in reversed(list(enumerate(STATIC_TABLE)))}
_ENTRY_OVERHEAD = 32  # RFC 7541 §4.1


class HpackError(Exception):
    """A header block the decoder cannot accept: a connection error (COMPRESSION_ERROR)."""


class HeaderListTooLarge(Exception):
    """A valid header block whose decoded list is over the limit: a stream error, not a connection one."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"header list of {size} bytes is larger than the limit of {limit}")
        self.size = size
        self.limit = limit


def _huffman(data: bytes) -> str:
    try:
        return decode_huffman(data).decode("utf-8", "replace")
    except Exception as exc:  # the hpack package raises its own error type
        raise HpackError(f"invalid Huffman string: {exc}") from None


def _integer(data: bytes | memoryview, pos: int, prefix_bits: int) -> tuple[int, int]:
    mask = (1 << prefix_bits) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            raise HpackError("truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
        if shift > 28:
            raise HpackError("integer too large")


def _string(data: bytes | memoryview, pos: int) -> tuple[str, int]:
    if pos >= len(data):
        raise HpackError("truncated string")
    huffman = data[pos] & 0x80
    length, pos = _integer(data, pos, 7)
    end = pos + length
    if end > len(data):
        raise HpackError("truncated string")
    raw = bytes(data[pos:end])
    return (_huffman(raw) if huffman else raw.decode("utf-8", "replace")), end


class Decoder:
    """One per connection and direction: the dynamic table is shared state with the peer's encoder."""

    def __init__(self, max_table_size: int = 4096, max_list_size: int = 1 << 62) -> None:
        self.max_list_size = max_list_size
        self._max_allowed = max_table_size  # what we advertised (SETTINGS_HEADER_TABLE_SIZE)
        self._max = max_table_size
        self._size = 0
        self._dynamic: deque[Header] = deque()

    def _lookup(self, index: int) -> Header:
        if index <= 0:
            raise HpackError("header index 0")
        if index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        i = index - len(STATIC_TABLE) - 1
        if i >= len(self._dynamic):
            raise HpackError(f"header index {index} beyond the dynamic table")
        return self._dynamic[i]

    def _add(self, header: Header) -> None:
        size = len(header[0].encode()) + len(header[1].encode()) + _ENTRY_OVERHEAD
        self._dynamic.appendleft(header)
        self._size += size
        self._evict()

    def _evict(self) -> None:
        while self._size > self._max and self._dynamic:
            name, value = self._dynamic.pop()
            self._size -= len(name.encode()) + len(value.encode()) + _ENTRY_OVERHEAD

    def decode(self, block: bytes) -> list[Header]:
        headers: list[Header] = []
        data = block
        pos = 0
        end = len(data)
        size = 0
        limit = self.max_list_size
        while pos < end:
            byte = data[pos]
            if byte & 0x80:  # indexed field
                index, pos = _integer(data, pos, 7)
                header = self._lookup(index)
                size += len(header[0]) + len(header[1]) + _ENTRY_OVERHEAD
                if size <= limit:
                    headers.append(header)
                continue
            if byte & 0xE0 == 0x20:  # dynamic table size update
                if headers or size:
                    raise HpackError("dynamic table size update after a header field")
                size_update, pos = _integer(data, pos, 5)
                if size_update > self._max_allowed:
                    raise HpackError(f"table size {size_update} above the advertised {self._max_allowed}")
                self._max = size_update
                self._evict()
                continue
            if byte & 0x40:  # literal with incremental indexing
                index, pos = _integer(data, pos, 6)
                indexing = True
            else:  # without indexing (0000) or never indexed (0001)
                index, pos = _integer(data, pos, 4)
                indexing = False
            if index:
                name = self._lookup(index)[0]
            else:
                name, pos = _string(data, pos)
            value, pos = _string(data, pos)
            header = (name, value)
            if indexing:
                self._add(header)
            size += len(name) + len(value) + _ENTRY_OVERHEAD
            if size <= limit:
                headers.append(header)
        if size > limit:
            raise HeaderListTooLarge(size, limit)
        return headers


def _encode_integer(value: int, prefix_bits: int, first: int) -> bytes:
    mask = (1 << prefix_bits) - 1
    if value < mask:
        return bytes((first | value,))
    out = bytearray((first | mask,))
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_string(value: str) -> bytes:
    raw = value.encode()
    return _encode_integer(len(raw), 7, 0) + raw


@lru_cache(maxsize=256)
def _encode_cached(name: str, value: str) -> bytes:
    return _encode_field(name, value)


def _encode_field(name: str, value: str) -> bytes:
    full = _STATIC_FULL.get((name, value))
    if full is not None:
        return _encode_integer(full, 7, 0x80)
    index = _STATIC_NAME.get(name)
    if index is not None:
        return _encode_integer(index, 4, 0x00) + _encode_string(value)
    return b"\x00" + _encode_string(name) + _encode_string(value)


# Only fields whose values come from our own code are cached: grpc-message carries error details, which
# may quote what a peer sent (an unknown method's path), and a cache keyed on those is the peer's memory.
_UNCACHED = frozenset({"grpc-message"})


def encode(headers: list[Header]) -> bytes:
    """A header block that never touches the peer's dynamic table."""
    return b"".join(_encode_field(n, v) if n in _UNCACHED else _encode_cached(n, v) for n, v in headers)
