"""Give memory the process no longer uses back to the operating system.

Bursts (a node receiving its devices, a mapper registering for all of them) leave freed memory
inside glibc's heap, which glibc keeps by default: a few MB of RSS on a node that holds 1,000
devices. ``malloc_trim`` returns free pages; edgecore calls it now and then. Elsewhere (musl, other
platforms) this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _trimmer() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _trimmer()


def release_free_memory() -> None:
    if _TRIM is not None:
        _TRIM(0)


async def release_periodically(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        # Walking the heap takes a few milliseconds: off the event loop.
        await asyncio.to_thread(release_free_memory)
