"""Exponential backoff with jitter: the one retry pacing every loop of the project uses.

Jitter (each pause drawn between ``jitter[0]`` and ``jitter[1]`` times the nominal delay) keeps many
clients from retrying in lockstep after a peer they share (a broker, cloudcore, the API server) returns.
"""

from __future__ import annotations

import asyncio
import random


def exponential(attempt: int, initial: float, maximum: float) -> float:
    """The nominal pause before retry ``attempt`` (0-based): ``initial * 2**attempt``, at most ``maximum``."""
    return float(min(initial * 2 ** max(0, attempt), maximum))


class Backoff:
    """``next()`` is the pause before the next attempt (and doubles the one after, up to ``maximum``);
    ``reset()`` after a success starts again from ``initial``."""

    def __init__(self, initial: float, maximum: float, *, jitter: tuple[float, float] = (1.0, 1.0)) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.attempt = 0

    @property
    def nominal(self) -> float:
        """The next pause without jitter (what a log line tells the user)."""
        return exponential(self.attempt, self.initial, self.maximum)

    def next(self) -> float:
        pause = self.nominal * random.uniform(*self.jitter)
        self.attempt += 1
        return pause

    def reset(self) -> None:
        self.attempt = 0

    async def sleep(self) -> None:
        await asyncio.sleep(self.next())
