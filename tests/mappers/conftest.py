"""Fixtures shared by the mapper tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

Until = Callable[..., Coroutine[Any, Any, None]]


async def _until(cond: Callable[[], object], within: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"{what} not met within {within}s")
        await asyncio.sleep(0.02)


@pytest.fixture
def until() -> Until:
    """``await until(lambda: ..., within=s)``: poll a condition of a real peer."""
    return _until
