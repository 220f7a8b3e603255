"""One copy of each small string map that many records repeat.

Thousands of twins carry the same reported-value metadata (``{"type": "int"}``), thousands of
Devices the same labels: each record keeps a reference to one shared map instead of a copy of its
own (a dict of one or two entries costs ~200 bytes). Holders replace a shared map, never change it.
"""

from __future__ import annotations

EMPTY: dict[str, str] = {}


class SharedMaps:
    """Equal maps given to :meth:`share` come back as one object, up to ``limit`` distinct maps;
    beyond that (maps that differ per record) a map is returned as given: kept, just not shared."""

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._maps: dict[frozenset[tuple[str, str]], dict[str, str]] = {}

    def share(self, m: dict[str, str]) -> dict[str, str]:
        if not m:
            return EMPTY
        try:
            key = frozenset(m.items())
        except TypeError:  # a value that is not hashable (not a string map): not shared
            return m
        found = self._maps.get(key)
        if found is None:
            if len(self._maps) >= self.limit:
                return m
            found = self._maps[key] = m
        return found
